"""The engine stage: plan, engine.json, the precision proof, against a fake TensorRT (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtq.engines.options import EngineOptions
from trtq.engines.stage import build_engine_file, engine_stage
from trtq.errors import TrtqError, UsageError

SAMPLES = Path(__file__).parents[1] / "trt_stub" / "inspector"


@pytest.fixture
def run_dir(tmp_path: Path, graph_file) -> Path:
    """A run folder holding model.trt.onnx (Q/DQ conv with an FP16 tail) and model.int8.onnx."""
    run = tmp_path / "run"
    run.mkdir()
    graph_file("qdq_conv", run / "model.trt.onnx", fp16=True)
    graph_file("qdq_conv", run / "model.int8.onnx")
    return run


def test_engine_stage_writes_plan_and_engine_json(fake_tensorrt, run_dir):
    trt = fake_tensorrt("11.4.0")
    trt.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
    run = run_dir
    summary = engine_stage(
        run, run / "model.trt.onnx", run / "model.int8.onnx", EngineOptions(batch=(1, 8, 32))
    )
    assert (run / "model.plan").read_bytes().startswith(b"PLAN:")
    meta = json.loads((run / "engine.json").read_text())
    assert meta["status"] == "ok"
    assert meta["tensorrt_version"] == "11.4.0" and meta["typing"] == "strong"
    assert meta["input_onnx"]["name"] == "model.trt.onnx" and len(meta["input_onnx"]["sha256"]) == 64
    assert meta["profiles"] == [{"x": {"min": [1, 3, 8, 8], "opt": [8, 3, 8, 8], "max": [32, 3, 8, 8]}}]
    assert meta["io_tensors"][0] == {
        "name": "x",
        "mode": "input",
        "dtype": "float",
        "shape": [-1, 3, 8, 8],
        "profiles": [[[1, 3, 8, 8], [8, 3, 8, 8], [32, 3, 8, 8]]],
    }
    assert meta["io_tensors"][1]["mode"] == "output"
    assert meta["build_options"]["batch"] == [1, 8, 32]
    assert set(meta["gpu"]) >= {"name", "compute_capability"}
    assert meta["plan"]["bytes"] == len((run / "model.plan").read_bytes())
    # the inspector ran with a context at the opt shape, so formats were resolved
    assert ("set_input_shape", "x", (8, 3, 8, 8)) in trt.state.log
    assert ("inspector", "JSON", True) in trt.state.log
    assert json.loads((run / "engine.layers.json").read_text()) == trt.state.inspector_json
    # the summary for report.json
    assert summary["precision"]["expected_int8_layers"] == 1  # counted in model.trt.onnx
    assert summary["precision"]["expect_fp16"] is True  # the graph casts to FP16
    assert summary["precision"]["by_precision"]["int8"] == 3
    assert summary["typing"] == "strong" and summary["graph"] == "model.trt.onnx"


def test_engine_stage_on_old_10_builds_the_int8_graph_weakly(fake_tensorrt, run_dir):
    trt = fake_tensorrt("10.3.0")
    trt.state.inspector_json = json.loads((SAMPLES / "trt10_int8_resnet_block.json").read_text())
    run = run_dir
    from trtq.engines.handoff import handoff_commands

    handoff = [c.to_json() for c in handoff_commands({"x": ((1, 3, 8, 8),) * 3}, EngineOptions())]
    summary = engine_stage(
        run, run / "model.trt.onnx", run / "model.int8.onnx", EngineOptions(), handoff=handoff
    )
    assert summary["graph"] == "model.int8.onnx" and summary["typing"] == "weak"
    assert summary["builder_flags"] == ["INT8", "FP16"]
    meta = json.loads((run / "engine.json").read_text())
    assert meta["builder_flags"] == ["INT8", "FP16"]
    assert meta["handoff"] == handoff  # engine.json names the trtexec / polygraphy commands too


def test_engine_stage_fails_loudly_on_an_fp32_engine(fake_tensorrt, run_dir):
    trt = fake_tensorrt("11.4.0")
    trt.state.inspector_json = json.loads((SAMPLES / "trt11_fp32_unfused.json").read_text())
    run = run_dir
    with pytest.raises(TrtqError, match=r"engine runs 0 weighted layers in INT8 .*no plan written"):
        engine_stage(
            run, run / "model.trt.onnx", run / "model.int8.onnx", EngineOptions(), expected_int8_layers=4
        )
    assert not (run / "model.plan").exists()
    meta = json.loads((run / "engine.json").read_text())
    assert meta["status"] == "precision_check_failed"
    assert "0 weighted layers in INT8" in meta["precision"]["error"]


def test_build_engine_file_refuses_to_overwrite(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt()
    trt.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
    onnx_path = graph_file("qdq_conv", tmp_path / "m.onnx")
    out = tmp_path / "model.plan"
    summary = build_engine_file(onnx_path, out)
    assert Path(summary["engine_json"]).name == "model.engine.json"
    with pytest.raises(UsageError, match="already exists"):
        build_engine_file(onnx_path, out)
    build_engine_file(onnx_path, out, force=True)


def test_same_inputs_give_the_same_engine_json(fake_tensorrt, tmp_path, graph_file):
    docs = []
    for _ in range(2):
        trt = fake_tensorrt()
        trt.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
        build_engine_file(graph_file("qdq_conv", tmp_path / "m.onnx"), tmp_path / "model.plan", force=True)
        meta = json.loads((tmp_path / "model.engine.json").read_text())
        meta.pop("build_seconds")
        docs.append(meta)
    assert docs[0] == docs[1]
