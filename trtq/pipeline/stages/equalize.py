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
        f"Cross-layer equalisation (`--weight-ptq equalize`, scales from the {result.mode}): {len(pairs)} conv pair(s), "  # type: ignore[attr-defined]
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
    model.onnx stays as written; calibration.json's tensors are the equalised graph's). With calibration data
    the scales balance the measured per-channel activation ranges (`--weight-batches` batches); without, they
    come from the weights alone (data-free)."""

    name: str = "equalize"

    def active(self, ctx: RunContext) -> bool:
        return ctx.config.weights.equalize

    def check(self, ctx: RunContext) -> None:
        return None

    def run(self, ctx: RunContext) -> None:
        import itertools

        from trtq.placement import normalize
        from trtq.progress import status
        from trtq.weights.equalize import channel_ranges, equalize_graph, find_pairs

        fp32 = normalize(ctx.need("fp32", self.name))
        ranges = None
        if ctx.inputs.calib is not None:
            tensors = [p.tensor for p in find_pairs(fp32)]
            with status("Equalisation: measuring per-channel activation ranges"):
                feeds = itertools.islice(ctx.feeds(ctx.inputs.calib), ctx.config.weights.batches)
                ranges = channel_ranges(fp32, tensors, feeds) if tensors else {}
        result = equalize_graph(fp32, ranges)
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
