"""What sensitivity analysis writes: sensitivity.json, the bar chart of the top layers, the report section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trtq.metrics import Metric, get_metric, is_known_metric
from trtq.sensitivity.analysis import SensitivityResult
from trtq.sensitivity.fallback import FallbackResult

__all__ = [
    "sensitivity_document",
    "plot_sensitivity",
    "has_alone_int8",
    "sensitivity_figure",
    "sensitivity_markdown",
    "format_metric",
    "format_points",
    "metric_info",
    "budget_unit",
    "pareto_markdown",
    "SENSITIVITY_FORMAT",
]

SENSITIVITY_FORMAT = "trtq.sensitivity/1"


def sensitivity_document(
    sensitivity: SensitivityResult | None, choice: FallbackResult | None
) -> dict[str, Any]:
    """The content of sensitivity.json: the per-layer table (when measured) and the fallback choice."""
    doc: dict[str, Any] = {"format": SENSITIVITY_FORMAT}
    if sensitivity is not None:
        doc.update(sensitivity.to_json())
        if choice is not None:
            chosen = set(choice.nodes)
            for entry in doc["layers"]:
                entry["fallback"] = entry["node"] in chosen
    if choice is not None:
        doc["fallback"] = choice.to_json()
    return doc


def metric_info(metric: str) -> Metric | None:
    """The registered metric of this name (None for a user function given as package.module:function)."""
    return get_metric(metric) if is_known_metric(metric) else None


def format_metric(metric: str, value: float | None) -> str:
    """A metric value for people, in the metric's unit (percent for fractions); 4 decimals for user metrics."""
    info = metric_info(metric)
    if value is None:
        return "—"
    return info.format(value) if info is not None else f"{value:.4f}"


def format_points(metric: str, value: float) -> str:
    """A difference of two metric values, signed, in the unit budgets use."""
    info = metric_info(metric)
    if info is None or info.unit == "value":
        return f"{value:+.4g}"
    return f"{100 * value:+.2f} pt" if info.unit == "fraction" else f"{value:+.2f} dB"


def budget_unit(metric: str) -> str:
    info = metric_info(metric)
    return info.budget_unit() if info is not None else "units of the metric"


def has_alone_int8(sensitivity: SensitivityResult) -> bool:
    """Whether the analysis measured the layers alone INT8 (`alone_int8=True`, `--alone-int8`)."""
    return any(layer.metric_quantized_alone is not None for layer in sensitivity.layers)


def plot_sensitivity(
    sensitivity: SensitivityResult,
    path: str | os.PathLike,
    chosen: list[str] | None = None,
    top: int = 20,
) -> Path:
    """Bar chart of the `top` highest-ranked layers: metric and output noise, alone FP16 (and alone INT8).

    Layers kept in FP16 (`chosen`) are drawn in bold. Written atomically (PNG).
    """
    import matplotlib.pyplot as plt

    from trtq.files import atomic_path

    fig = sensitivity_figure(sensitivity, chosen, top)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def sensitivity_figure(sensitivity: SensitivityResult, chosen: list[str] | None = None, top: int = 20) -> Any:
    """The matplotlib Figure `plot_sensitivity` saves (left: the metric, right: the output noise, log axis).

    When no single layer moves the metric (every delta 0, common with few samples), the left panel says so
    instead of staying blank; the log axis gets at most about six labelled decades.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sensitivity.layers[:top]
    chosen_set = set(chosen or [])
    names = [_short(layer.node) for layer in layers][::-1]
    info = metric_info(sensitivity.metric)
    scale = 100.0 if info is not None and info.unit == "fraction" else 1.0
    unit = " (points)" if scale == 100.0 else ""
    alone_q = has_alone_int8(sensitivity)  # the alone-INT8 bars only where they were measured (--alone-int8)
    recovered = [scale * (layer.metric_fp16_alone - sensitivity.int8_metric) for layer in layers][::-1]
    removed = [max(sensitivity.int8_noise - layer.noise_fp16_alone, 0.0) for layer in layers][::-1]
    lost: list[float] = []
    added: list[float] = []
    if alone_q:
        lost = [scale * (sensitivity.fp32_metric - layer.metric_quantized_alone) for layer in layers][::-1]
        added = [layer.noise_quantized_alone for layer in layers][::-1]

    height = 1.6 + 0.32 * len(layers)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, height), sharey=True)
    y = list(range(len(layers)))
    bar = 0.4 if alone_q else 0.6
    up, down = ([i + bar / 2 for i in y], [i - bar / 2 for i in y]) if alone_q else (y, y)
    ax1.barh(up, recovered, bar, color="#2b7bba", label="layer alone FP16: metric recovered / noise removed")
    if alone_q:
        ax1.barh(down, lost, bar, color="#e6862e", label="layer alone INT8: metric lost / noise added")
    ax1.set_xlabel(f"{sensitivity.metric}{unit}")
    if all(v == 0 for v in recovered + lost):
        ax1.set_xticks([])
        ax1.text(
            0.5, 0.5,
            f"no single layer changes {sensitivity.metric}\n"
            f"on these {sensitivity.samples} samples (every delta is 0)\n\nthe ranking uses the output noise →",
            transform=ax1.transAxes, ha="center", va="center", fontsize=10, color="0.3",
        )  # fmt: skip
    else:
        ax1.axvline(0, color="black", linewidth=0.6)
    positive = [v for v in removed + added if v > 0]
    # Eight decades below the largest bar are enough to compare layers; more would crowd the tick labels.
    floor = max(min(positive) / 3, max(positive) * 1e-8) if positive else 1e-12
    ax2.barh(up, [max(v, floor) for v in removed], bar, color="#2b7bba")
    if alone_q:
        ax2.barh(down, [max(v, floor) for v in added], bar, color="#e6862e")
    ax2.set_xlabel("output noise (relative error energy)")
    if positive:
        import math

        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax2.set_xscale("log")
        ax2.set_xlim(left=floor, right=max(positive) * 1.5)
        ax2.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
        if math.log10(max(positive) * 1.5 / floor) < 2:  # under two decades: label 2x and 5x too, compactly
            ax2.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
            compact = FuncFormatter(lambda v, _: f"{v:.0e}")
            ax2.xaxis.set_minor_formatter(compact)
            ax2.xaxis.set_major_formatter(compact)  # one notation: 1e-05 beside 2e-05, not $10^{-5}$
            ax2.tick_params(axis="x", which="both", labelsize=8)
        else:
            ax2.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_yticks(y)
    ax1.set_yticklabels(names, fontsize=8)
    for label, layer in zip(ax1.get_yticklabels(), layers[::-1]):
        if layer.node in chosen_set:
            label.set_fontweight("bold")
    fig.suptitle(
        f"Per-layer sensitivity (top {len(layers)} of {len(sensitivity.layers)}; bold: kept FP16)",
        fontsize=10,
    )
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.4 / height, 1, 1))
    return fig


def _rank_words(rank_by: str) -> str:
    if rank_by == "metric":
        return "the budget metric (a static order, cheapest recovery first)"
    what = "mean output cosine to FP32" if rank_by == "cosine" else "output KL to FP32"
    return f"{what}, re-measured each step given the layers already FP16 (greedy)"


def pareto_markdown(choice: FallbackResult, plot: str | None = None, rows: int = 12) -> list[str]:
    """The Pareto front table (highest INT8 share first, the chosen set marked) and the trade-off plot."""
    metric, measure = choice.metric_name, choice.measure_name
    front = sorted(choice.front, key=lambda e: -e["int8_mac_share"])
    chosen = frozenset(choice.nodes)
    lines = [
        f"Pareto front of the {len(choice.evaluations)} evaluated sets ({metric} against INT8 share of MACs; "
        "`--max-drop` takes the set meeting the budget with the highest INT8 share):",
        "",
        f"| INT8 share of MACs | layers FP16 | {metric} | {measure} | budget | |",
        "|---|---|---|---|---|---|",
    ]
    for e in front[:rows]:
        met = "—" if e.get("met") is None else "met" if e["met"] else "not met"
        mark = "**chosen**" if frozenset(e["nodes"]) == chosen else ""
        lines.append(
            f"| {100 * e['int8_mac_share']:.1f}% | {len(e['nodes'])} | {format_metric(metric, e['metric'])} | "
            f"{e['measure']:.5f} | {met} | {mark} |"
        )
    if len(front) > rows:
        lines.append(f"| … | {len(front) - rows} more in sensitivity.json | | | | |")
    lines.append("")
    if plot:
        lines += [f"![FP16 fallback trade-off]({plot})", ""]
    return lines


def _short(node: str, width: int = 48) -> str:
    return node if len(node) <= width else "…" + node[-(width - 1) :]


def sensitivity_markdown(
    sensitivity: SensitivityResult | None,
    choice: FallbackResult | None,
    plot: str | None = None,
    top: int = 15,
    mixed_name: str = "model.trt.onnx",
    tradeoff: str | None = None,
) -> str:
    """The report.md section: FP32 / all-INT8 / mixed table, the budget verdict, the Pareto front and its plot,
    the top layers, the per-layer plot."""
    metric = choice.metric_name if choice is not None else sensitivity.metric if sensitivity else "metric"
    lines: list[str] = []
    samples = sensitivity.samples if sensitivity is not None else None
    info = metric_info(metric)
    better = "higher" if info is None or info.higher_is_better else "lower"
    lines.append(
        f"Metric: **{metric}** ({better} is better)"
        + (f" on {samples} samples" if samples else "")
        + ", ONNX Runtime executing Q/DQ as written."
    )
    lines.append("")
    if choice is not None:
        lines += [
            "| model | metric | INT8 share of MACs |",
            "|---|---|---|",
            f"| FP32 | {format_metric(metric, choice.fp32_metric)} | 0.0% |",
            f"| all INT8 | {format_metric(metric, choice.int8_metric)} | "
            f"{100 * choice.all_int8_mac_share:.1f}% |",
            f"| mixed, {len(choice.nodes)} layer(s) FP16 ({mixed_name}) | {format_metric(metric, choice.metric)} | "
            f"{100 * choice.int8_mac_share:.1f}% |",
            "",
        ]
        if choice.max_drop is not None:
            verdict = "met" if choice.met else "**not met** (even with every analysed layer in FP16)"
            lines.append(
                f"Budget: at most {choice.max_drop:g} {budget_unit(metric)} worse than FP32: {verdict}; measured "
                f"drop {choice.drop:.2f} {budget_unit(metric)}, from {choice.searched} evaluations of candidate "
                "mixed models (the chosen set is the measured one, not a sum of single-layer numbers); candidates "
                f"ranked by {_rank_words(choice.rank_by)}."
            )
        else:
            lines.append(f"Fallback set given by the user ({len(choice.nodes)} layer(s)), measured as above.")
        lines.append("")
        if choice.nodes:
            lines.append("Kept out of INT8: " + ", ".join(f"`{n}`" for n in choice.nodes) + ".")
            lines.append("")
        if choice.max_drop is not None and choice.front:
            lines += pareto_markdown(choice, tradeoff)
        if choice.skipped_qdq:
            lines.append(
                f"{len(choice.skipped_qdq)} Q/DQ that re-planning asked for had no calibrated scale and were "
                "left out (the tensor stays high precision)."
            )
            lines.append("")
    if sensitivity is not None:
        chosen = set(choice.nodes) if choice is not None else set()
        total = max(sensitivity.total_macs, 1)
        alone_q = has_alone_int8(sensitivity)
        lines += [
            f"Ranking: {sensitivity.ranking}.",
            "",
            "| rank | node | op | MACs |" + (" alone INT8 |" if alone_q else "") + " alone FP16 | FP16 |",
            "|---|---|---|---|" + ("---|" if alone_q else "") + "---|---|",
        ]
        for layer in sensitivity.layers[:top]:
            q = f"{format_metric(metric, layer.metric_quantized_alone)} | " if alone_q else ""
            lines.append(
                f"| {layer.rank} | `{layer.node}` | {layer.op_type} | {100 * layer.macs / total:.1f}% | {q}"
                f"{format_metric(metric, layer.metric_fp16_alone)} "
                f"({format_points(metric, layer.metric_fp16_alone - sensitivity.int8_metric)}) | "
                f"{'yes' if layer.node in chosen else ''} |"
            )
        if len(sensitivity.layers) > top:
            blanks = " |" * (5 if alone_q else 4)
            lines.append(f"| … | {len(sensitivity.layers) - top} more in sensitivity.json |{blanks}")
        lines.append("")
        t = sensitivity.timings
        lines.append(
            f"Analysis: {len(sensitivity.layers)} layers x {2 if alone_q else 1} variant{'s' if alone_q else ''} "
            f"in {t.get('total', 0):.1f} s "
            f"({t.get('total', 0) / max(len(sensitivity.layers), 1):.2f} s per layer)."
        )
        lines.append("")
    if plot:
        lines += [f"![per-layer sensitivity]({plot})", ""]
    return "\n".join(lines)
