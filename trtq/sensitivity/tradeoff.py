"""The trade-off plot of the FP16 fallback: metric against INT8 share of MACs (tradeoff.png).

Every mixed model the fallback evaluated is a point (the analysis's alone-FP16 models lighter); the Pareto front
(`trtq.sensitivity.search.pareto_front`) is the line; the chosen set is marked and labelled; FP32, all-INT8 and
the budget are reference lines. A second panel shows the continuous measure the search ranked on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trtq.sensitivity.fallback import FallbackResult
from trtq.sensitivity.report import format_metric, metric_info

__all__ = ["plot_tradeoff", "tradeoff_figure"]


def plot_tradeoff(choice: FallbackResult, path: str | os.PathLike) -> Path:
    """Write `tradeoff_figure(choice)` as a PNG, atomically."""
    import matplotlib.pyplot as plt

    from trtq.files import atomic_path

    fig = tradeoff_figure(choice)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _scale(metric: str) -> tuple[float, str]:
    info = metric_info(metric)
    return (100.0, " (%)") if info is not None and info.unit == "fraction" else (1.0, "")


def tradeoff_figure(choice: FallbackResult) -> Any:
    """The matplotlib Figure: left the budget metric, right the measure, both against INT8 share of MACs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = choice.evaluations
    has_measure = choice.fp32_measure is not None and any(e.get("measure") is not None for e in evals)
    fig, axes = plt.subplots(
        1, 2 if has_measure else 1, figsize=(13 if has_measure else 7, 5.2), squeeze=False
    )
    chosen = frozenset(choice.nodes)
    panels = [("metric", choice.metric_name, choice.fp32_metric, choice.int8_metric, choice.metric)]
    if has_measure:
        panels.append(
            ("measure", choice.measure_name, choice.fp32_measure, choice.int8_measure, choice.measure)
        )
    for ax, (key, name, fp32, int8, mine) in zip(axes[0], panels):
        scale, unit = _scale(name) if key == "metric" else (1.0, "")
        for source, color, size in (("analysis", "#b9c6d3", 16), ("search", "#5b6b7a", 22)):
            pts = [e for e in evals if e.get("source", "search") == source and e.get(key) is not None]
            label = (
                "alone-FP16 models (analysis)"
                if source == "analysis"
                else "mixed models the search evaluated"
            )
            ax.scatter([100 * e["int8_mac_share"] for e in pts], [scale * e[key] for e in pts], s=size,
                       color=color, label=f"{label} ({len(pts)})", zorder=2)  # fmt: skip
        front = sorted(choice.front, key=lambda e: e["int8_mac_share"])
        if key == "metric" and front:
            ax.step([100 * e["int8_mac_share"] for e in front], [scale * e[key] for e in front], where="pre",
                    color="#2b7bba", linewidth=1.6, label="Pareto front (metric vs INT8 MACs)", zorder=3)  # fmt: skip
        elif front:
            ax.plot([100 * e["int8_mac_share"] for e in front], [scale * e[key] for e in front], color="#2b7bba",
                    linewidth=1.2, alpha=0.7, label="the metric's Pareto front", zorder=3)  # fmt: skip
        ax.axhline(scale * fp32, color="black", linestyle="--", linewidth=0.9, label="FP32")
        if int8 is not None:
            ax.axhline(scale * int8, color="#e6862e", linestyle=":", linewidth=1.2, label="all INT8")
        if key == "metric" and choice.max_drop is not None:
            d = choice.max_drop / (100.0 if choice.unit == "fraction" else 1.0)
            limit = fp32 - d if choice.higher_is_better else fp32 + d
            ax.axhline(scale * limit, color="#c0392b", linestyle="-.", linewidth=0.9,
                       label=f"budget (--max-drop {choice.max_drop:g})")  # fmt: skip
        if mine is not None:
            x, y = 100 * choice.int8_mac_share, scale * mine
            ax.scatter([x], [y], marker="*", s=260, color="#c0392b", edgecolor="black", zorder=5,
                       label="chosen")  # fmt: skip
            value = format_metric(name, mine) if key == "metric" else f"{y:.5f}"
            text = f"chosen: {len(chosen)} layer(s) FP16\n{x:.1f}% of MACs INT8, {name} {value}"
            (left, end), (lo, hi) = ax.get_xlim(), ax.get_ylim()
            right = (x - left) < 0.5 * (end - left)  # the label goes where the axes have room
            low = (y - lo) < 0.35 * (hi - lo)
            ax.annotate(text, (x, y), xytext=(14 if right else -14, 30 if low else -36), textcoords="offset points",
                        ha="left" if right else "right", fontsize=8,
                        arrowprops={"arrowstyle": "-", "color": "0.4"},
                        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})  # fmt: skip
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("INT8 share of MACs (%)")
        ax.set_ylabel(f"{name}{unit}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    budget = f", --max-drop {choice.max_drop:g}" if choice.max_drop is not None else ""
    fig.suptitle(
        f"FP16 fallback trade-off: {choice.metric_name} against INT8 share of MACs "
        f"(ranked by {choice.rank_by}{budget}; {len(evals)} mixed models evaluated)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
