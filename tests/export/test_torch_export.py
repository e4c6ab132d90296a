"""Export: dynamic batch, BatchNorm folding, parity on every output, determinism, several named inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

import trtq.export.torch_export as torch_export
from trtq.errors import TrtqError, UsageError
from trtq.export import export_onnx, export_sample, resolve_model
from trtq.runners import OnnxRuntimeRunner

SAMPLE = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
DIGIT = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)


def _tokens(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "features": rng.standard_normal((batch, 4)).astype(np.float32),
        "token_ids": rng.integers(0, 50, (batch, 6)).astype(np.int64),
    }


def test_torchvision_export_folds_bn_has_dynamic_batch_and_matches_torch(tmp_path: Path) -> None:
    res = export_onnx("resnet18", SAMPLE, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and "Identity" not in ops
    assert res.opset == 17 and res.max_abs_error is not None and res.max_abs_error < 1e-3
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # a batch size the export never saw runs and matches torch
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((5, 3, 64, 64)).astype(np.float32)
    ref = resolve_model("resnet18").module.eval()(torch.from_numpy(x)).detach().numpy()
    with OnnxRuntimeRunner(model) as r:
        got = r.infer({"input": x})["output"]
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4)


def test_same_inputs_and_seed_give_same_onnx_bytes(tmp_path: Path) -> None:
    export_onnx("resnet18", SAMPLE, tmp_path / "a.onnx")
    export_onnx("resnet18", SAMPLE, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_single_array_and_its_mapping_form_export_the_same_bytes() -> None:
    """A single array is the input "input", cast to float32 (a float64 array gives today's export)."""
    a = export_onnx("trtq.demo:DigitsNet", DIGIT.astype(np.float64))
    b = export_onnx("trtq.demo:DigitsNet", {"input": DIGIT})
    assert a.model.SerializeToString() == b.model.SerializeToString()
    assert [i.name for i in a.model.graph.input] == ["input"] and a.outputs == ["output"]
    assert a.model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT


def test_two_inputs_one_int64_export_named_with_dynamic_batch_and_parity(make_model) -> None:
    net = make_model("features_and_tokens")
    res = export_onnx(net, _tokens(2, 0))
    graph = res.model.graph
    assert [i.name for i in graph.input] == ["features", "token_ids"]
    assert [i.type.tensor_type.elem_type for i in graph.input] == [TensorProto.FLOAT, TensorProto.INT64]
    for value in (*graph.input, *graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch", value.name
    assert [(i.name, i.dtype.name) for i in res.inputs] == [("features", "float32"), ("token_ids", "int64")]
    # parity was checked (measured ~1e-7; float32 round-off only)
    assert res.max_abs_error is not None and res.max_abs_error < 1e-5
    # an unseen batch size, and other ids: ONNX Runtime follows torch, so the ids reach the graph
    feed = _tokens(5, 1)
    with OnnxRuntimeRunner(res.model) as r:
        got = r.infer(feed)["output"]
        other = r.infer({**feed, "token_ids": (feed["token_ids"] + 1) % 50})["output"]
    with torch.no_grad():
        ref = net(torch.from_numpy(feed["features"]), torch.from_numpy(feed["token_ids"])).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert np.abs(other - got).max() > 1e-2
    json.dumps(res.summary())
    # integer [batch, sequence] inputs get a dynamic sequence axis; the float input keeps its static dims
    assert res.summary()["inputs"][1] == {"name": "token_ids", "dtype": "int64", "dims": [None, None]}
    assert res.summary()["inputs"][0]["dims"] == [None, 4]
    assert graph.input[1].type.tensor_type.shape.dim[1].dim_param == "sequence"


def test_mapping_order_is_forward_argument_order(make_model) -> None:
    swapped = {"token_ids": _tokens(2, 0)["token_ids"], "features": _tokens(2, 0)["features"]}
    with pytest.raises(UsageError, match=r"cannot run on inputs token_ids int64\(2, 6\), features float32"):
        export_onnx(make_model("features_and_tokens"), swapped)


def test_an_input_the_model_does_not_use_is_named() -> None:
    class IgnoresMask(torch.nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return x + 1

    feed = {"x": np.ones((2, 3), np.float32), "mask": np.ones((2, 3), np.int64)}
    with pytest.raises(UsageError, match="does not use export sample input 'mask'"):
        export_onnx(IgnoresMask(), feed)


def test_parity_is_checked_on_every_output(monkeypatch: pytest.MonkeyPatch, make_model) -> None:
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    res = export_onnx(make_model("three_outputs"), x)
    assert res.outputs == ["output_0", "output_1", "output_2"]
    real = torch_export.ort_run
    monkeypatch.setattr(torch_export, "ort_run", lambda m, f: [*real(m, f)[:2], real(m, f)[2] + 1.0])
    with pytest.raises(TrtqError, match="max abs error 1"):
        export_onnx(make_model("three_outputs"), x)


def test_onnx_is_passed_through(tmp_path: Path) -> None:
    export_onnx("trtq.demo:DigitsNet", DIGIT, tmp_path / "m.onnx")
    res = export_onnx(str(tmp_path / "m.onnx"), DIGIT)
    assert res.kind == "onnx" and res.model == onnx.load(str(tmp_path / "m.onnx"))


def test_two_input_onnx_is_passed_through_with_a_checked_mapping(make_model) -> None:
    exported = export_onnx(make_model("features_and_tokens"), _tokens(2, 0)).model
    res = export_onnx(exported, _tokens(3, 1))
    assert res.kind == "onnx" and [i.name for i in res.inputs] == ["features", "token_ids"]
    with pytest.raises(UsageError, match="'token_ids' is not in the export sample"):
        export_onnx(exported, {"features": _tokens(3, 1)["features"]})


def test_old_opset_onnx_is_refused(tmp_path: Path) -> None:
    export_onnx("trtq.demo:DigitsNet", DIGIT, tmp_path / "m.onnx", opset=11)
    with pytest.raises(UsageError, match="opset 11"):
        export_onnx(str(tmp_path / "m.onnx"), DIGIT)


def test_parity_failure_reports_max_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch_export.ort_run
    monkeypatch.setattr(torch_export, "ort_run", lambda m, s: [o + 1.0 for o in real(m, s)])
    with pytest.raises(TrtqError, match="max abs error 1"):
        export_onnx("trtq.demo:DigitsNet", DIGIT)


def test_wrong_input_shape_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot run on data of shape"):
        export_onnx("trtq.demo:DigitsNet", SAMPLE)


def test_export_sample_random_shape_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    res = export_sample("trtq.demo:DigitsNet", out, shape="1,8,8")
    assert out.is_file() and res.inputs[0].dims == (None, 1, 8, 8)
    with pytest.raises(UsageError, match="exists"):
        export_sample("trtq.demo:DigitsNet", out, shape="1,8,8")
    with pytest.raises(UsageError, match="--shape expects C,H,W"):
        export_sample("trtq.demo:DigitsNet", tmp_path / "n.onnx", shape="1x8x8")
