"""EngineStage: skipped with the reason where TensorRT is absent or the step is off; with TensorRT (replaced by
stand-ins here) it builds, validates the engine against FP32 and benchmarks it."""

from __future__ import annotations

import sys
from pathlib import Path

from trtq.config import BuildConfig
from trtq.config.build import EngineConfig
from trtq.pipeline import build
from trtq.pipeline.stages import EngineStage


def test_the_engine_step_can_be_turned_off(run_context):
    ctx = run_context(BuildConfig(engine=EngineConfig(enabled=False)))
    EngineStage().run(ctx)
    assert ctx.result.engine_status == "skipped (--no-engine)" and not ctx.result.engine_info.built


def test_without_tensorrt_the_status_names_the_tensorrt_ready_onnx(run_context, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    ctx = run_context()
    ctx.result.artifacts["model.int8.onnx"] = tmp_path / "out" / "model.int8.onnx"
    EngineStage().run(ctx)
    info = ctx.result.engine_info
    assert info.status == (
        "skipped: the engine step needs an NVIDIA GPU with TensorRT (TensorRT is not installed); "
        f"TensorRT-ready ONNX: {tmp_path / 'out' / 'model.int8.onnx'}"
    )
    assert info.skipped_reason.startswith("TensorRT is not installed") and ctx.result.engine is None
    ctx.result.artifacts["model.trt.onnx"] = tmp_path / "out" / "model.trt.onnx"
    EngineStage().run(ctx)
    assert info.status.endswith(
        f"TensorRT-ready ONNX: {tmp_path / 'out' / 'model.trt.onnx'}"
    )  # the typed graph first


def test_engine_step_builds_validates_and_benchmarks_where_tensorrt_is_present(
    digits_files: tuple[Path, Path, Path], tmp_path: Path, tensorrt_stand_ins: dict[str, object]
) -> None:
    """The wiring of the engine step, with TensorRT's parts replaced (no TensorRT here; see tests/engines/)."""
    calls = tensorrt_stand_ins
    ts, calib, val = digits_files
    res = build(str(ts), calib_data=calib, eval_data=val, out=tmp_path / "run", calib="minmax")
    assert calls["stage"] == ("model.trt.onnx", "model.int8.onnx", (1, 8, 32))
    assert res.engine == b"serialized engine" and (tmp_path / "run" / "model.plan").is_file()
    assert calls["bench"] == (["model.plan"], (1, 8))
    assert res.engine_info.validation.value("candidate", "top1_agreement") >= 0.97
    assert res.engine_status.startswith("built; engine vs FP32: top-1 agreement")
    assert (tmp_path / "run" / "bench.json").is_file()
