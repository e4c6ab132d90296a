"""Both torch exporters give the graph trtq expects (single file, dynamic batch, BatchNorm folded, checked against
torch), auto says which ran, and models over the external-data threshold keep their weights beside the graph end to
end (export, Q/DQ, typed graph) instead of failing on protobuf's 2 GB limit (the threshold is lowered here)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
import torchvision

import trtq
import trtq.export.exporters as exporters
from trtq.errors import TrtqError
from trtq.export import export_onnx, resolve_model
from trtq.runners import OnnxRuntimeRunner

IMAGE = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)


def _check_graph(result, module, sample) -> None:
    """Independent of export_onnx's own parity check: another batch size through ONNX Runtime vs torch."""
    graph = result.model
    assert "BatchNormalization" not in {n.op_type for n in graph.graph.node}
    for value in (graph.graph.input[0], graph.graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param  # the batch axis is symbolic
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    other = np.concatenate([sample, sample[:1]])  # batch 3, not the export's 2
    with torch.no_grad():
        ref = module(torch.from_numpy(other)).numpy()
    with OnnxRuntimeRunner(graph) as r:
        got = r.infer({graph.graph.input[0].name: other})[graph.graph.output[0].name]
    assert got.shape == ref.shape
    assert float(np.max(np.abs(got - ref))) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_resnet18_through_each_exporter(exporter):
    torch.manual_seed(0)
    module = torchvision.models.resnet18().eval()
    result = export_onnx(module, IMAGE, exporter=exporter)
    assert result.exporter == exporter and result.exporter_reason == "asked for"
    assert result.opset == (17 if exporter == "legacy" else 18)
    assert result.max_abs_error is not None and result.max_abs_error < 1e-3
    _check_graph(result, module, IMAGE)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_small_vit_through_each_exporter(exporter):
    pytest.importorskip("timm")
    source = resolve_model("timm:test_vit")
    sample = np.random.default_rng(1).standard_normal((2, 3, 160, 160)).astype(np.float32)
    result = export_onnx(source, sample, exporter=exporter)
    assert result.exporter == exporter
    _check_graph(result, source.module.eval(), sample)


def test_auto_says_which_ran_and_falls_back_to_dynamo(monkeypatch):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU()).eval()
    result = export_onnx(module, IMAGE)
    assert result.exporter == "legacy" and result.exporter_reason.startswith("auto:")
    assert result.summary()["exporter"] == "legacy"
    real = exporters.export_file

    def legacy_breaks(*args):
        if args[-1] == "legacy":
            raise TrtqError("the legacy exporter failed: RuntimeError: stand-in")
        return real(*args)

    monkeypatch.setattr(exporters, "export_file", legacy_breaks)
    result = export_onnx(module, IMAGE)
    assert result.exporter == "dynamo" and "stand-in" in result.exporter_reason
    monkeypatch.setattr(exporters, "legacy_exporter_available", lambda: False)
    result = export_onnx(module, IMAGE)
    assert result.exporter == "dynamo" and "no TorchScript-based exporter" in result.exporter_reason


def test_cli_exporter_option_reaches_report(tmp_path, capsys):
    from trtq.cli import main

    data = np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    argv = ["build", "--model", "trtq.demo:DigitsNet", "--calib-data", str(tmp_path / "calib.npy"), "--out",
            str(tmp_path / "r"), "--exporter", "dynamo", "--json", "--no-engine"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["export"]["exporter"] == "dynamo" and doc["config"]["export"]["exporter"] == "dynamo"
    assert "dynamo exporter" in (tmp_path / "r" / "report.md").read_text()
    ts = tmp_path / "m.ts"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(1, 16, 3).eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    argv[2], argv[6] = str(ts), str(tmp_path / "r2")
    assert main(argv) == 1
    assert "cannot export a TorchScript model; use --exporter legacy" in capsys.readouterr().err


def test_large_model_keeps_external_data_end_to_end(tmp_path, monkeypatch):
    """Above the threshold every ONNX artifact is a small graph file plus `<name>.data`, and each still runs."""
    monkeypatch.setenv("TRTQ_EXTERNAL_DATA_THRESHOLD", "20000")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1)
    ).eval()  # about 51 kB of weights
    data = np.random.default_rng(0).standard_normal((16, 16, 8, 8)).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    result = trtq.build(net, tmp_path / "calib.npy", tmp_path / "run", calib="minmax", build_engine=False)
    run = tmp_path / "run"
    feed = data[:4]
    with torch.no_grad():
        ref = net(torch.from_numpy(feed)).numpy()
    for name in ("model.onnx", "model.int8.onnx", "model.trt.onnx"):
        graph, weights = run / name, run / f"{name}.data"
        assert weights.is_file() and weights.stat().st_size > 20000, name
        assert graph.stat().st_size < 20000, name  # the weights are not inline
        onnx.checker.check_model(str(graph), full_check=True)
        with OnnxRuntimeRunner(graph) as r:  # from the file: ONNX Runtime reads the data beside it
            got = next(iter(r.infer({"input": feed}).values()))
        assert float(np.max(np.abs(got - ref))) < 0.05 * float(np.max(np.abs(ref))), name
        assert f"{name}.data" in result.artifacts
    assert "external data" in (run / "report.md").read_text()
