"""Cross-layer equalisation (optional, `--weight-ptq equalize`): the FP32 graph's conv pairs equalised before
placement and calibration, so every later stage works on the equalised graph (same FP32 function)."""

from __future__ import annotations

from dataclasses import dataclass

from trtq import artifacts as A
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import ReportSection

__all__ = ["EqualizeStage", "equalize_markdown"]


def equalize_markdown(result: object) -> str:
    """The report.md section: one row per equalised pair."""
    pairs = result.pairs  # type: ignore[attr-defined]
    lines = [
        f"Cross-layer equalisation (`--weight-ptq equalize`): {len(pairs)} conv pair(s), "
        f"{result.iterations} sweep(s); the range ratio is max / median of the first conv's per-channel "  # type: ignore[attr-defined]
        "max |w|. A ReLU6 between a pair becomes Relu + Min with per-channel bounds.",
        "",
        "| first | second | via | scale min | scale max | range ratio before | after |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for p in pairs:
        lines.append(
            f"| `{p.first}` | `{p.second}` | {' '.join(p.via) or '-'} | {float(p.scale.min()):.3g} | "
            f"{float(p.scale.max()):.3g} | {p.ratio_before:.1f} | {p.ratio_after:.1f} |"
        )
    return "\n".join(lines) + "\n"


@dataclass
class EqualizeStage:
    """Replaces `ctx.fp32` with the equalised graph and writes it as model.equalized.onnx (the exported
    model.onnx stays as written; calibration.json's tensors are the equalised graph's). Data-free."""

    name: str = "equalize"

    def active(self, ctx: RunContext) -> bool:
        return ctx.config.weights.equalize

    def check(self, ctx: RunContext) -> None:
        return None

    def run(self, ctx: RunContext) -> None:
        from trtq.placement import normalize
        from trtq.weights.equalize import equalize_graph

        result = equalize_graph(normalize(ctx.need("fp32", self.name)))
        ctx.fp32 = result.model
        ctx.write_onnx(A.EQUALIZED_ONNX, result.model)
        if not result.pairs:
            ctx.result.warnings.append(
                "--weight-ptq equalize found no conv -> (Relu/Clip/zero Pad) -> conv pair: nothing equalised"
            )
        ctx.result.sections.append(
            ReportSection(
                "Cross-layer equalisation", equalize_markdown(result), key="equalize", data=result.to_json()
            )  # fmt: skip
        )
