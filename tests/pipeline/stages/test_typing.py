"""TypingStage: model.trt.onnx (FP16 outside INT8, FP32 where asked or where FP16 overflows) and its summary."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trtq.calibration import Calibration
from trtq.config import BuildConfig, TypingConfig
from trtq.data import DataSource
from trtq.pipeline import InMemory, NamedFiles
from trtq.pipeline.stages import TypingStage
from trtq.placement import plan_qdq
from trtq.precision import to_strongly_typed
from trtq.qdq import insert_qdq


@pytest.fixture
def int8(onnx_graph):
    fp32 = onnx_graph("residual_cnn")
    amax = {t: 4.0 for t in plan_qdq(fp32).activations}
    return fp32, insert_qdq(fp32, plan_qdq(fp32), amax)


def test_active_only_when_enabled_and_wanted(run_context, tmp_path):
    stage = TypingStage()
    assert stage.active(run_context())  # a run folder takes model.trt.onnx
    assert not stage.active(run_context(BuildConfig(typing=TypingConfig(enabled=False))))
    assert not stage.active(run_context(sink=NamedFiles({"model.int8.onnx": tmp_path / "q.onnx"})))
    assert stage.active(run_context(sink=InMemory(frozenset({"model.trt.onnx"}))))


def test_ranges_from_calibration_json_overflow_and_keep_lists(run_context, int8, tmp_path):
    fp32, q = int8
    cal = Calibration.from_amax({"x": 1.0})
    cal.ranges = {"s": 1e6}  # the residual sum would overflow FP16
    config = BuildConfig(typing=TypingConfig(keep_fp32_op_types=("Gemm",)))
    ctx = run_context(config, fp32=fp32, int8=q, calibration=cal)
    TypingStage().run(ctx)
    kept = {d["node"]: d["reason"] for d in ctx.result.typing.fp32_nodes}
    assert set(kept) == {"add", "relu2", "fc"} and "overflow" in kept["add"]
    assert ctx.result.typing.ranges_from == "calibration data (calibration.json)"
    expected = to_strongly_typed(q, keep_fp32_op_types=("Gemm",), ranges={"s": 1e6})
    assert onnx.load(str(tmp_path / "staging" / "model.trt.onnx")) == ctx.typed == expected


def test_ranges_measured_on_the_data_without_calibration_ranges_and_none_without_data(run_context, int8):
    fp32, q = int8
    data = DataSource(
        "big", array=np.full((8, 16, 8, 8), 1e5, np.float32)
    )  # beyond FP16 already at the input
    ctx = run_context(fp32=fp32, int8=q, calib=data)
    TypingStage().run(ctx)
    assert ctx.result.typing.ranges_from == "2 batches of the calibration data (no --eval-data given)"
    assert any("overflow" in d["reason"] for d in ctx.result.typing.fp32_nodes)
    ctx = run_context(calib=None, int8=q)
    TypingStage().run(ctx)
    assert ctx.result.typing.ranges_from == "none (no data)" and ctx.result.typing.fp32_nodes == []
