"""Model sources: entry points, TorchScript, .pt2, checkpoints, pickles only when trusted, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from trtq.errors import UsageError
from trtq.export import ModelSource, export_onnx, input_channels, resolve_model
from trtq.runners import OnnxRuntimeRunner

DIGIT = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)


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


def test_exported_program_and_wrapped_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(4)
    net = resolve_model("trtq.demo:DigitsNet").module.eval()
    ref = net(torch.from_numpy(DIGIT)).detach().numpy()
    pt2 = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 8, 8),)), str(pt2))
    loaded = resolve_model(str(pt2))
    assert loaded.kind == "exported_program"
    np.testing.assert_allclose(loaded.module(torch.from_numpy(DIGIT)).detach().numpy(), ref, rtol=1e-5)
    # a training checkpoint {"state_dict": ..., "epoch": ...} loads its state dict
    ck = tmp_path / "ck.pth"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, str(ck))
    fresh = resolve_model("trtq.demo:DigitsNet", checkpoint=ck, seed=99).module.eval()
    np.testing.assert_allclose(fresh(torch.from_numpy(DIGIT)).detach().numpy(), ref, rtol=1e-6)


def test_module_and_modelproto_objects_are_sources() -> None:
    net = torch.nn.Conv2d(5, 2, 3)
    source = resolve_model(net)
    assert (source.kind, source.spec, source.module, source.is_onnx) == ("module", "Conv2d", net, False)
    proto = onnx.ModelProto()
    assert resolve_model(proto).is_onnx and resolve_model(proto).kind == "onnx"


def test_checkpoint_that_does_not_fit_names_the_file(tmp_path: Path) -> None:
    ck = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), str(ck))
    with pytest.raises(UsageError, match="other.pth does not fit the model"):
        resolve_model("trtq.demo:DigitsNet", checkpoint=ck)
    with pytest.raises(UsageError, match="missing.pth does not exist"):
        resolve_model("trtq.demo:DigitsNet", checkpoint=tmp_path / "missing.pth")


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


def test_corrupt_onnx_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(UsageError, match="bad.onnx"):
        resolve_model(str(bad))
    with pytest.raises(UsageError, match="missing.onnx does not exist"):
        resolve_model(str(tmp_path / "missing.onnx"))


def test_entry_point_errors_name_the_option() -> None:
    with pytest.raises(UsageError, match="cannot import 'no_such_pkg_trtq.mod' for --model"):
        resolve_model("no_such_pkg_trtq.mod:make")
    with pytest.raises(UsageError, match="has no callable 'NoSuchNet'"):
        resolve_model("trtq.demo:NoSuchNet")
    with pytest.raises(UsageError, match="returned TrtqError, not a torch.nn.Module"):
        resolve_model("trtq.errors:TrtqError")


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(UsageError, match="resnet18"):
        resolve_model("resnet1")


def test_input_channels_from_module_and_onnx(tmp_path: Path) -> None:
    digits = resolve_model("trtq.demo:DigitsNet")
    assert input_channels(digits) == 1
    assert input_channels(ModelSource("linear", "module", module=torch.nn.Linear(4, 2))) is None
    export_onnx(digits, DIGIT, tmp_path / "m.onnx")
    assert input_channels(resolve_model(str(tmp_path / "m.onnx"))) == 1


def test_an_unknown_weights_name_lists_the_valid_ones():
    from trtq.errors import UsageError
    from trtq.export.sources import resolve_model

    with pytest.raises(
        UsageError, match=r"--weights 'FOO' is not a weight of resnet18; choose from DEFAULT, IMAGENET1K_V1"
    ):
        resolve_model("resnet18", weights="FOO")


def test_weights_that_cannot_be_downloaded_say_how_to_pass_a_checkpoint(monkeypatch):
    import urllib.error

    import torchvision

    from trtq.errors import TrtqError
    from trtq.export.sources import resolve_model

    def offline(*a, **k):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(
        TrtqError, match=r"could not be downloaded \(URLError: .*--model resnet18 --checkpoint FILE\.pth"
    ):
        resolve_model("resnet18", weights="DEFAULT")
