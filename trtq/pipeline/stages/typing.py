"""The typed graph: `model.trt.onnx`, the non-INT8 remainder FP16 with graph I/O FP32 (TensorRT 10.12+ / 11).

Nodes whose FP32 values would overflow FP16 stay FP32; the ranges come from calibration.json (measured on the
calibration data), so `trtq build` and `trtq quantize --trt-out` type the same graph the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from trtq import artifacts as A
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import TypingSummary

__all__ = ["TypingStage"]


@dataclass
class TypingStage:
    """Sets `ctx.typed`, writes `model.trt.onnx`, records which nodes stay FP32 and why."""

    name: str = "typed_graph"

    def active(self, ctx: RunContext) -> bool:
        return ctx.config.typing.enabled and ctx.wants(A.TYPED_ONNX)

    def check(self, ctx: RunContext) -> None:
        return None

    def run(self, ctx: RunContext) -> None:
        from trtq.precision import DEFAULT_DATA_MAX, fp32_nodes, measure_ranges, to_strongly_typed
        from trtq.progress import status

        cfg = ctx.config.typing
        int8 = ctx.need("int8", self.name)
        cal = ctx.calibration
        if cal is not None and cal.ranges:
            ranges, source = cal.ranges, "calibration data (calibration.json)"
        elif ctx.inputs.validation is not None and ctx.fp32 is not None:
            from trtq.pipeline.stages.calibrate import RANGE_BATCHES

            feeds = itertools.islice(ctx.feeds(ctx.inputs.validation), RANGE_BATCHES)
            ranges, source = (
                measure_ranges(ctx.fp32, feeds),
                f"{RANGE_BATCHES} batches of {ctx.inputs.validation_phrase}",
            )
        else:
            ranges, source = {}, "none (no data)"
        kw = {
            "keep_fp32_nodes": cfg.keep_fp32_nodes,
            "keep_fp32_op_types": cfg.keep_fp32_op_types,
            "ranges": ranges,
            "data_max": cfg.data_max or DEFAULT_DATA_MAX,
        }
        with status("typing the non-INT8 remainder FP16 (model.trt.onnx)"):
            ctx.typed = to_strongly_typed(int8, **kw)
        ctx.write_onnx(A.TYPED_ONNX, ctx.typed)
        decisions = fp32_nodes(int8, **kw)
        ctx.result.typing = TypingSummary(
            fp32_nodes=[{"node": d.node, "op_type": d.op_type, "reason": d.reason} for d in decisions],
            ranges_from=source,
        )
