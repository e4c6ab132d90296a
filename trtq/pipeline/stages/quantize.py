"""Quantization: Q/DQ inserted where the plan says, with the calibrated scales -> `model.int8.onnx`."""

from __future__ import annotations

from dataclasses import dataclass

from trtq import artifacts as A
from trtq.errors import UsageError
from trtq.onnx_io import check_onnx
from trtq.pipeline.context import RunContext

__all__ = ["QuantizeStage"]


@dataclass
class QuantizeStage:
    """Sets `ctx.int8` and writes it (as `model.int8.onnx`, or `artifact` for `trtq sensitivity`'s mixed model)."""

    name: str = "quantize"
    artifact: str = A.INT8_ONNX

    def check(self, ctx: RunContext) -> None:
        return None

    def run(self, ctx: RunContext) -> None:
        from trtq.qdq import insert_qdq

        fp32, plan = ctx.need("fp32", self.name), ctx.need("plan", self.name)
        cal = ctx.need("calibration", self.name)
        amax = cal.amax_for()
        missing = [t for t in plan.activations if t not in amax]
        if missing:
            raise UsageError(
                f"{cal.origin} has no amax for {len(missing)} tensor(s) the placement quantizes (first: "
                f"{missing[0]!r}); recalibrate this model with the same placement options"
            )
        ctx.int8 = insert_qdq(fp32, plan, amax, format=ctx.config.format, weights=ctx.weights,
                              weight_storage=ctx.config.weights.storage)  # fmt: skip
        check_onnx(ctx.int8, full_check=True)
        ctx.write_onnx(self.artifact, ctx.int8)
