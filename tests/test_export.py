"""Export: sources, dynamic batch, BatchNorm folding, parity check, determinism, and bad model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from trtq.errors import TrtqError, UsageError
from trtq.export import export_onnx, resolve_model
from trtq.runners import OnnxRuntimeRunner

SAMPLE = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
DIGIT = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)


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


def test_entry_point_torchscript_and_checkpoint_sources(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = resolve_model("trtq.demo:DigitsNet").module.eval()
    ts = tmp_path / "net.ts"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 8, 8)), str(ts))
    sd = tmp_path / "net.pt"
    torch.save(net.state_dict(), str(sd))
    ref = net(torch.from_numpy(DIGIT)).detach().numpy()
    for spec, kw in ((str(ts), {}), ("trtq.demo:DigitsNet", {"checkpoint": sd})):
        res = export_onnx(spec, DIGIT, **kw)
        with OnnxRuntimeRunner(res.model) as r:
            np.testing.assert_allclose(r.infer({"input": DIGIT})["output"], ref, rtol=1e-4, atol=1e-4)
    assert resolve_model(str(ts)).kind == "torchscript"


def test_onnx_is_passed_through(tmp_path: Path) -> None:
    export_onnx("trtq.demo:DigitsNet", DIGIT, tmp_path / "m.onnx")
    res = export_onnx(str(tmp_path / "m.onnx"), DIGIT)
    assert res.kind == "onnx" and res.model == onnx.load(str(tmp_path / "m.onnx"))


def test_pickled_model_needs_trust_pickle(tmp_path: Path) -> None:
    net = resolve_model("trtq.demo:DigitsNet").module
    path = tmp_path / "full.pt"
    torch.save(net, str(path))
    with pytest.raises(UsageError, match="trust-pickle"):
        resolve_model(str(path))
    assert resolve_model(str(path), trust_pickle=True).kind == "pickle"


def test_state_dict_given_as_model_says_how_to_use_it(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(resolve_model("trtq.demo:DigitsNet").module.state_dict(), str(path))
    with pytest.raises(UsageError, match="--checkpoint"):
        resolve_model(str(path))


@pytest.mark.parametrize(
    "content, match",
    [(None, "does not exist"), (b"", "is empty"), (b"\x00garbage" * 10, "not a PyTorch model file")],
)
def test_bad_model_files(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=match):
        resolve_model(str(path))


def test_corrupt_onnx_and_old_opset(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(UsageError, match="bad.onnx"):
        resolve_model(str(bad))
    export_onnx("trtq.demo:DigitsNet", DIGIT, tmp_path / "m.onnx", opset=11)
    with pytest.raises(UsageError, match="opset 11"):
        export_onnx(str(tmp_path / "m.onnx"), DIGIT)


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(UsageError, match="resnet18"):
        resolve_model("resnet1")


def test_parity_failure_reports_max_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import trtq.export as ex

    real = ex._ort_run
    monkeypatch.setattr(ex, "_ort_run", lambda m, s: [o + 1.0 for o in real(m, s)])
    with pytest.raises(TrtqError, match="max abs error 1"):
        export_onnx("trtq.demo:DigitsNet", DIGIT)


def test_wrong_input_shape_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot run on data of shape"):
        export_onnx("trtq.demo:DigitsNet", SAMPLE)
