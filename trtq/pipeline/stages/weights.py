"""Weight-side PTQ: the configured weight methods refine weights, biases and weight scales of the plan's layers.

Runs after calibration (learned rounding reconstructs from the calibrated, quantized layer inputs) and before
the fallback and quantize stages, which both write their Q/DQ graphs with the result (`ctx.weights`); a layer
the fallback keeps in FP16 keeps its own FP32 weights. Recorded in report.json ("weights") and report.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtq.pipeline.context import RunContext
from trtq.pipeline.results import ReportSection

__all__ = ["WeightsStage", "SECTION_TITLE", "weights_markdown"]

SECTION_TITLE = "Weight-side PTQ"


def weights_markdown(result: Any) -> str:
    """The report.md section of a `trtq.weights.WeightPTQ`."""
    lines = [f"Methods: **{', '.join(result.methods)}** on {len(result.layers)} layers "
             f"(weights, biases and weight scales only; TensorRT runs the graph as written).", "",
             "| method | seconds | what it did |", "|---|---:|---|"]  # fmt: skip
    for name in result.methods:
        info = ", ".join(f"{k} {_fmt(v)}" for k, v in result.summary.get(name, {}).items())
        lines.append(f"| {name} | {result.seconds.get(name, 0.0):.1f} | {info} |")
    stats = result.seconds.get("statistics")
    if stats is not None:
        lines.append(f"| (layer input statistics) | {stats:.1f} | one FP32 pass over the weight batches |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@dataclass
class WeightsStage:
    """Sets `ctx.weights` (a `trtq.weights.WeightPTQ`) when `--weight-ptq` names methods."""

    name: str = "weights"

    def active(self, ctx: RunContext) -> bool:
        return ctx.config.weights.enabled

    def check(self, ctx: RunContext) -> None:
        from trtq.errors import UsageError

        if ctx.inputs.calib is None:
            raise UsageError(
                "--weight-ptq needs --calib-data (the weight methods measure layer inputs on it)"
            )

    def run(self, ctx: RunContext) -> None:
        from trtq.export import onnx_input_shape
        from trtq.weights import weight_ptq

        cfg = ctx.config.weights
        fp32, plan = ctx.need("fp32", self.name), ctx.need("plan", self.name)
        cal = ctx.need("calibration", self.name)
        input_name, _ = onnx_input_shape(fp32)
        data = ctx.inputs.calib
        result = weight_ptq(
            fp32, plan, data.feeds(input_name, ctx.config.data.batch_size), cfg.methods,
            act_amax=cal.amax_for(), batches=min(cfg.batches, data.num_batches(ctx.config.data.batch_size)),
            format=ctx.config.format, seed=ctx.config.seed, params={"adaround_iters": cfg.adaround_iters},
        )  # fmt: skip
        ctx.weights = result
        ctx.result.sections.append(
            ReportSection(SECTION_TITLE, weights_markdown(result), key="weights", data=result.to_json())
        )
