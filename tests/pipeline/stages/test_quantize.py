"""QuantizeStage: Q/DQ where the plan says with the calibrated amax -> model.int8.onnx (or the mixed model)."""

from __future__ import annotations

import onnx
import pytest

from trtq.calibration import Calibration
from trtq.errors import UsageError
from trtq.pipeline.stages import QuantizeStage
from trtq.placement import plan_qdq
from trtq.qdq import insert_qdq


def test_run_inserts_qdq_and_writes_the_artifact_it_is_named_for(run_context, onnx_graph, tmp_path):
    fp32 = onnx_graph("conv_relu_conv")
    plan = plan_qdq(fp32)
    cal = Calibration.from_amax({"x": 2.0, "r1": 3.0, "other": 1.0})
    ctx = run_context(fp32=fp32, plan=plan, calibration=cal)
    QuantizeStage(artifact="model.mixed.onnx").run(ctx)
    expected = insert_qdq(fp32, plan, {"x": 2.0, "r1": 3.0})
    assert ctx.int8.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert onnx.load(str(tmp_path / "staging" / "model.mixed.onnx")) == ctx.int8
    assert list(ctx.result.artifacts) == ["model.mixed.onnx"]


def test_missing_amax_names_the_calibration_and_the_first_tensor(run_context, onnx_graph):
    fp32 = onnx_graph("conv_relu_conv")
    ctx = run_context(
        fp32=fp32, plan=plan_qdq(fp32), calibration=Calibration.from_amax({"x": 2.0}, method="minmax")
    )
    with pytest.raises(
        UsageError, match=r"the minmax amax mapping has no amax for 1 tensor\(s\) .*\(first: 'r1'\)"
    ):
        QuantizeStage().run(ctx)
    assert ctx.int8 is None
