"""EqualizeStage: off unless --weight-ptq names equalize; data-free; swaps in the equalised graph and reports it."""

from __future__ import annotations

import numpy as np
import onnx

from tests.weights.test_equalize import RANGES, _chain, _x
from trtq.config import BuildConfig, WeightsConfig
from trtq.pipeline.stages.equalize import EqualizeStage
from trtq.pipeline.stages.weights import WeightsStage
from trtq.runners.onnxrt import OnnxRuntimeRunner


def _config(*methods: str) -> BuildConfig:
    return BuildConfig(weights=WeightsConfig(methods=methods))


def test_off_unless_asked_and_the_weights_stage_only_for_methods_after_calibration(run_context):
    assert not EqualizeStage().active(run_context(_config("bias-correction")))
    ctx = run_context(_config("equalize"), calib=None)
    assert EqualizeStage().active(ctx) and not WeightsStage().active(ctx)
    EqualizeStage().check(ctx)  # data-free: no calibration data needed
    both = run_context(_config("equalize", "bias-correction"))
    assert EqualizeStage().active(both) and WeightsStage().active(both)


def _assert_same_function(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    """The two graphs compute the same outputs on random input (1e-4 relative)."""
    feed = {"x": _x(4, 5)}
    with OnnxRuntimeRunner(a) as r:
        before = r.infer(feed)["y"]
    with OnnxRuntimeRunner(b) as r:
        after = r.infer(feed)["y"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * float(np.abs(before).max()))


def test_run_swaps_in_the_equalised_graph_with_the_same_function(run_context, tmp_path):
    fp32 = _chain(RANGES)
    ctx = run_context(_config("equalize"), calib=None, fp32=fp32)
    EqualizeStage().run(ctx)
    written = onnx.load(str(tmp_path / "staging" / "model.equalized.onnx"))
    assert written.SerializeToString() == ctx.fp32.SerializeToString()
    (section,) = ctx.result.sections
    assert (
        section.key == "equalize" and section.data["pairs"] == 2 and section.data["bounds_per_channel"] == 2
    )
    assert "| first | second | via |" in section.markdown
    _assert_same_function(fp32, ctx.fp32)
    assert [n.op_type for n in ctx.fp32.graph.node].count("Min") == 2


def test_with_calibration_data_the_scales_come_from_the_measured_activation_ranges(run_context):
    from trtq.data import DataSource

    fp32 = _chain(RANGES)
    ctx = run_context(_config("equalize"), calib=DataSource(name="x", array=_x(16, 0)), fp32=fp32)
    EqualizeStage().run(ctx)
    (section,) = ctx.result.sections
    assert section.data["mode"] == "activations" and section.data["pairs"] == 2
    free = run_context(_config("equalize"), calib=None, fp32=fp32)
    EqualizeStage().run(free)
    assert free.result.sections[0].data["mode"] == "weights"
    assert ctx.fp32.SerializeToString() != free.fp32.SerializeToString()
    _assert_same_function(fp32, ctx.fp32)
