"""What a run reads, checked before any stage (trtq.pipeline.inputs): warnings for inputs that give silently wrong
results, and messages that say what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from trtq.config import BuildConfig
from trtq.errors import UsageError
from trtq.pipeline.inputs import load_inputs


def _conv_onnx(path: Path, dtype: int = TensorProto.FLOAT) -> Path:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["xf" if dtype != TensorProto.FLOAT else "x", "w"], ["y"], pads=[1, 1, 1, 1])
    ]
    if dtype != TensorProto.FLOAT:
        nodes.insert(0, helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", dtype, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], [w])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _config(model: str, data: Path) -> BuildConfig:
    cfg = BuildConfig(model=model, out="unused")
    return cfg.with_overrides(data=cfg.data.__class__(calib_data=str(data)))


def test_an_integer_array_is_fed_raw_and_a_warning_says_so(tmp_path: Path) -> None:
    np.save(tmp_path / "u8.npy", np.random.default_rng(0).integers(0, 255, (4, 3, 8, 8)).astype(np.uint8))
    inputs = load_inputs(_config(str(_conv_onnx(tmp_path / "m.onnx")), tmp_path / "u8.npy"))
    (warning,) = inputs.warnings
    assert (
        "holds uint8 values, fed to the model as they are" in warning and "(x / 255 - mean) / std" in warning
    )
    np.save(tmp_path / "f.npy", np.zeros((4, 3, 8, 8), np.float32))
    assert load_inputs(_config(str(tmp_path / "m.onnx"), tmp_path / "f.npy")).warnings == []
    # a model that takes uint8 itself: nothing to warn about
    u8_model = _conv_onnx(tmp_path / "u8.onnx", TensorProto.UINT8)
    assert load_inputs(_config(str(u8_model), tmp_path / "u8.npy")).warnings == []


def test_a_torchvision_model_without_weights_is_reported_as_random(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    (warning,) = load_inputs(_config("resnet18", tmp_path / "x.npy")).warnings
    assert (
        warning.startswith("--model resnet18 was built with random weights")
        and "--weights DEFAULT" in warning
    )
    torch.save(torch.nn.Module().state_dict(), tmp_path / "empty.pt")
    cfg = _config("resnet18", tmp_path / "x.npy")
    from dataclasses import replace

    from trtq.export.sources import resolve_model

    state = tmp_path / "r18.pt"
    torch.save(resolve_model("resnet18").module.state_dict(), state)
    cfg = replace(cfg, export=replace(cfg.export, checkpoint=str(state)))
    assert load_inputs(cfg).warnings == []  # the user's own weights


def test_a_channels_last_array_gets_the_transpose_to_do(tmp_path: Path) -> None:
    np.save(tmp_path / "nhwc.npy", np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(UsageError, match=r"looks channels-last.*x\.transpose\(0, 3, 1, 2\)"):
        load_inputs(_config(str(_conv_onnx(tmp_path / "m.onnx")), tmp_path / "nhwc.npy"))
    from trtq.demo import DigitsNet

    ts = tmp_path / "net.ts"
    torch.jit.save(torch.jit.trace(DigitsNet().eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    np.save(tmp_path / "nhwc1.npy", np.zeros((4, 8, 8, 1), np.float32))
    from trtq.export import export_onnx

    with pytest.raises(UsageError, match=r"looks channels-last"):
        export_onnx(str(ts), np.load(tmp_path / "nhwc1.npy")[:2], None)


def test_an_array_of_the_wrong_shape_is_not_told_to_set_channels(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(UsageError) as e:
        load_inputs(_config(str(_conv_onnx(tmp_path / "m.onnx")), tmp_path / "one.npy"))
    assert "--channels" not in str(e.value) and "save them with shape (N, 3, 8, 8)" in str(e.value)


def test_nan_names_the_sample_not_the_batch(tmp_path: Path) -> None:
    from trtq.data import load_data

    x = np.zeros((40, 3, 8, 8), np.float32)
    x[37, 0, 0, 0] = np.nan
    ds = load_data(x, what="--calib-data")
    with pytest.raises(
        UsageError, match=r"--calib-data: sample 37 \(row 37 of the array\) contains NaN or Inf"
    ):
        list(ds.iter_batches(16))
