"""`trtq quantize`: FP32 ONNX + calibration.json -> model.int8.onnx (+ model.trt.onnx, placement.json)."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto

from trtq.calibration import Calibration
from trtq.cli import main


def _calibration_file(tmp_path, amax):
    path = tmp_path / "calibration.json"
    Calibration.from_amax(amax, method="entropy").save(path)
    return path


def test_cli_quantize_writes_outputs_and_refuses_overwrite(tmp_path, capsys, graph_file):
    model = graph_file("conv_relu_conv", tmp_path / "model.onnx")
    cal = _calibration_file(tmp_path, {"x": 2.0, "r1": 3.0})
    out, trt, plan = tmp_path / "model.int8.onnx", tmp_path / "model.trt.onnx", tmp_path / "plan.json"
    argv = ["quantize", "--model", str(model), "--calibration", str(cal), "--out", str(out)]
    argv += ["--trt-out", str(trt), "--plan-out", str(plan)]
    assert main([*argv, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (
        payload["quantized_nodes"] == 2 and payload["activation_qdq"] == 2 and payload["method"] == "entropy"
    )
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    typed = onnx.load(str(trt))
    onnx.checker.check_model(typed, full_check=True)
    assert any(t.data_type == TensorProto.FLOAT16 for t in typed.graph.initializer)
    assert json.loads(plan.read_text())["activations"] == ["x", "r1"]

    before = out.read_bytes()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv, "--force", "--exclude", "conv2", "-q"]) == 0
    assert len(onnx.load(str(out)).graph.node) < len(onnx.load_from_string(before).graph.node)
    assert main(["quantize", "--model", str(tmp_path / "missing.onnx"), "--calibration", str(cal)]) == 2


def test_without_trt_out_only_the_int8_graph_is_written(tmp_path, capsys, graph_file):
    model = graph_file("conv_relu_conv", tmp_path / "model.onnx")
    cal = _calibration_file(tmp_path, {"x": 2.0, "r1": 3.0})
    out = tmp_path / "q" / "model.int8.onnx"
    assert main(["quantize", "-m", str(model), "-c", str(cal), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.int8.onnx"]
    assert "quantized 2 layers: 2 activation and 2 weight Q/DQ pairs (thresholds: entropy)" in text
    assert f"wrote {out}" in text


def test_outputs_that_collide_with_inputs_or_each_other_are_refused(tmp_path, capsys, graph_file):
    model = graph_file("conv_relu_conv", tmp_path / "model.onnx")
    cal = _calibration_file(tmp_path, {"x": 2.0, "r1": 3.0})
    before = model.read_bytes()
    assert main(["quantize", "-m", str(model), "-c", str(cal), "-o", str(model), "--force"]) == 2
    assert "is one of the inputs" in capsys.readouterr().err and model.read_bytes() == before
    same = str(tmp_path / "x.onnx")
    assert main(["quantize", "-m", str(model), "-c", str(cal), "-o", same, "--trt-out", same]) == 2
    assert "must be different paths" in capsys.readouterr().err
