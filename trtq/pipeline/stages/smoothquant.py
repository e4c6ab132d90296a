"""SmoothQuant (optional, `--smoothquant ALPHA`): the FP32 graph's activation outliers moved into the weights
before placement and calibration, so every later stage works on the smoothed graph (same FP32 function)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from trtq import artifacts as A
from trtq.errors import UsageError
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import ReportSection

__all__ = ["SmoothQuantStage", "SMOOTH_BATCHES", "smoothquant_markdown"]

#: Calibration batches the per-channel activation maxima are measured on.
SMOOTH_BATCHES = 8


def smoothquant_markdown(result: object) -> str:
    """The report.md section: one row per smoothed activation."""
    groups = result.groups  # type: ignore[attr-defined]
    lines = [
        f"SmoothQuant with alpha **{result.alpha}** (`--smoothquant`): {len(groups)} activation(s) smoothed; the "  # type: ignore[attr-defined]
        "outlier ratio is max / median of the per-channel max |x|.",
        "",
        "| activation | read by | how | outlier ratio before | after |",
        "|---|---|---|---|---|",
    ]
    for g in groups:
        lines.append(
            f"| `{g.tensor}` | {len(g.consumers)} | {g.mode} | {g.act_ratio:.1f} | {g.act_ratio_after:.1f} |"
        )
    return "\n".join(lines) + "\n"


@dataclass
class SmoothQuantStage:
    """Replaces `ctx.fp32` with the smoothed graph and writes it as model.smoothquant.onnx (the exported
    model.onnx stays as written; calibration.json's tensors are the smoothed graph's)."""

    name: str = "smoothquant"

    def active(self, ctx: RunContext) -> bool:
        return ctx.config.calibration.smoothquant is not None

    def check(self, ctx: RunContext) -> None:
        if ctx.inputs.calib is None:
            raise UsageError("--smoothquant measures the activations on --calib-data; give it")

    def run(self, ctx: RunContext) -> None:
        from trtq.placement import normalize
        from trtq.progress import status
        from trtq.smoothquant import channel_absmax, smooth_candidates, smooth_graph

        alpha = float(ctx.config.calibration.smoothquant)  # type: ignore[arg-type]
        fp32 = normalize(ctx.need("fp32", self.name))
        ctx.fp32 = fp32
        tensors = [g.tensor for g in smooth_candidates(fp32)]
        with status("SmoothQuant: measuring per-channel activation maxima"):
            feeds = itertools.islice(ctx.feeds(ctx.inputs.calib), SMOOTH_BATCHES)
            absmax = channel_absmax(fp32, tensors, feeds) if tensors else {}
        result = smooth_graph(fp32, absmax, alpha)
        ctx.fp32 = result.model
        ctx.write_onnx(A.SMOOTHQUANT_ONNX, result.model)
        if not result.groups:
            ctx.result.warnings.append(
                "--smoothquant found no LayerNorm output read by MatMul/Gemm: nothing smoothed"
            )
        ctx.result.sections.append(
            ReportSection(
                "SmoothQuant", smoothquant_markdown(result), key="smoothquant", data=result.to_json()
            )
        )
