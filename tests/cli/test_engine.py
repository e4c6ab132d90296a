"""`trtq engine` from the command line (TensorRT replaced by tests/trt_stub's fake where needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SAMPLES = Path(__file__).parents[1] / "trt_stub" / "inspector"


def test_engine_cli_without_tensorrt_is_one_line_exit_1(tmp_path, monkeypatch, capsys, graph_file):
    from trtq.cli import main

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    onnx_path = graph_file("linear_classifier", tmp_path / "m.onnx")
    assert main(["engine", "--onnx", str(onnx_path), "--out", str(tmp_path / "m.plan")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("trtq engine: failed: TensorRT is not installed") and "\n" not in err
    assert not (tmp_path / "m.plan").exists()


def test_engine_cli_bad_batch_is_usage_error(tmp_path, capsys, graph_file):
    from trtq.cli import main

    onnx_path = graph_file("linear_classifier", tmp_path / "m.onnx")
    assert main(["engine", "--onnx", str(onnx_path), "--batch", "8,1,2"]) == 2
    assert "need 1 <= min <= opt <= max" in capsys.readouterr().err


def test_engine_cli_with_fake_tensorrt(tmp_path, capsys, graph_file, fake_tensorrt):
    from trtq.cli import main

    fake = fake_tensorrt("11.4.0")
    fake.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
    onnx_path = graph_file("linear_classifier", tmp_path / "m.onnx", qdq=True)
    out = tmp_path / "m.plan"
    argv = ["engine", "--onnx", str(onnx_path), "--out", str(out), "--batch", "1,4,16", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.read_bytes().startswith(b"PLAN:")
    assert summary["profile"] == {"x": {"min": [1, 3, 4, 4], "opt": [4, 3, 4, 4], "max": [16, 3, 4, 4]}}
    assert json.loads((tmp_path / "m.engine.json").read_text())["status"] == "ok"
    assert main(argv) == 2  # refuses to overwrite without --force


def test_engine_text_and_options_reach_the_build(tmp_path, capsys, graph_file, fake_tensorrt):
    """The text summary, and `--typed weak` / `--precision fp16` / `--opt-level` as the build recipe sees them."""
    from trtq.cli import main

    fake = fake_tensorrt("10.3.0")
    fake.state.inspector_json = json.loads((SAMPLES / "trt10_int8_resnet_block.json").read_text())
    onnx_path = graph_file("linear_classifier", tmp_path / "m.onnx", qdq=True)
    argv = ["engine", "--onnx", str(onnx_path), "--out", str(tmp_path / "m.plan"), "--typed", "weak",
            "--precision", "fp16", "--opt-level", "1", "--min-int8-fraction", "0"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert fake.state.config.flags == ["FP16"] and fake.state.config.builder_optimization_level == 1
    assert "TensorRT 10.3.0, weakly typed" in out and "layers by precision: " in out
    assert f"details: {tmp_path / 'm.engine.json'}" in out
