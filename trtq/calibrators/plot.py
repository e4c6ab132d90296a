"""Plots of calibration histograms with each method's threshold marked (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtq.artifacts import calib_plot_name
from trtq.errors import UsageError
from trtq.files import write_bytes

if TYPE_CHECKING:
    from trtq.calibration import Calibration

__all__ = [
    "plot_thresholds",
    "render_threshold_plots",
    "threshold_figure",
    "disagreement",
    "clipping",
    "plot_order",
    "PLOT_BINS",
]

_COLORS = {"entropy": "tab:red", "minmax": "black", "percentile": "tab:green", "mse": "tab:blue"}
#: Bins drawn: the calibration's 2048 would put several bins in one pixel column, which reads as noise.
PLOT_BINS = 256
#: colours for methods without one of their own (plugins), in order
_SPARE = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def disagreement(calibration: Calibration) -> dict[str, float]:
    """tensor -> (largest amax - smallest amax) / largest amax across the computed methods."""
    out: dict[str, float] = {}
    for t in calibration.tensors:
        values = [calibration.amax[m][t] for m in calibration.methods]
        hi = max(values)
        out[t] = (hi - min(values)) / hi if hi > 0 else 0.0
    return out


def clipping(calibration: Calibration) -> dict[str, float]:
    """tensor -> max |x| seen / the chosen method's amax (how far the threshold cuts into the range; >= 1)."""
    out: dict[str, float] = {}
    for t in calibration.tensors:
        rec = calibration.histograms.get(t)
        amax = calibration.amax[calibration.method][t]
        peak = max(abs(rec.min), abs(rec.max)) if rec is not None and rec.count else 0.0
        out[t] = peak / amax if amax > 0 and math.isfinite(peak) else 1.0
    return out


def plot_order(calibration: Calibration) -> list[str]:
    """Tensors in the order worth plotting: where methods disagree most (several computed), else where the
    one method clips most of the observed range (its widest tails)."""
    score = disagreement(calibration) if len(calibration.methods) > 1 else clipping(calibration)
    return sorted(calibration.tensors, key=lambda t: (-score[t], calibration.tensors.index(t)))


def plot_thresholds(
    calibration: Calibration, tensors_or_top_k: int | Sequence[str], out_dir: str | os.PathLike
) -> list[Path]:
    """Draw, per tensor, the |x| histogram (log y) with a vertical line at each method's amax.

    Args:
        calibration: a result of `calibrate()` in this process (histograms are kept in memory, not saved).
        tensors_or_top_k: tensor names, or k to plot the k tensors `plot_order` puts first (where the methods
            disagree most; with one method, where it clips the widest tail).
        out_dir: folder for the PNG files (`calib_<tensor>.png`).

    Returns:
        The files written, most disagreeing tensor first when k is given.
    """
    out = Path(out_dir)
    return [
        write_bytes(out / name, png) for name, png in render_threshold_plots(calibration, tensors_or_top_k)
    ]


def render_threshold_plots(
    calibration: Calibration, tensors_or_top_k: int | Sequence[str]
) -> list[tuple[str, bytes]]:
    """The plots of `plot_thresholds` as (file name, PNG bytes), most disagreeing tensor first."""
    if not calibration.histograms:
        raise UsageError(
            "this calibration has no histograms (they are kept in memory only, not in calibration.json); "
            "plot right after calibrate()"
        )
    if isinstance(tensors_or_top_k, int):
        tensors = plot_order(calibration)[: max(tensors_or_top_k, 0)]
    else:
        tensors = list(tensors_or_top_k)
    unknown = [t for t in tensors if t not in calibration.histograms]
    if unknown:
        raise UsageError(f"tensor {unknown[0]!r} was not calibrated; cannot plot it")

    written: list[tuple[str, bytes]] = []
    colors = {m: _COLORS.get(m) or _SPARE[i % len(_SPARE)] for i, m in enumerate(calibration.methods)}
    for t in tensors:
        fig = threshold_figure(calibration, t, colors)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        name = calib_plot_name(t)
        if name in {n for n, _ in written}:
            name = calib_plot_name(f"{t}_{len(written)}")
        written.append((name, buf.getvalue()))
    return written


def threshold_figure(calibration: Calibration, tensor: str, colors: dict[str, str] | None = None) -> Any:
    """The Figure of one tensor's plot: its |x| histogram (log count, `PLOT_BINS` bins) with a vertical line at
    each method's amax and at max |x|; the legend (each value) sits below the axes, where it hides nothing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colors = colors or {
        m: _COLORS.get(m) or _SPARE[i % len(_SPARE)] for i, m in enumerate(calibration.methods)
    }
    rec = calibration.histograms[tensor]
    hist = rec.coarse(PLOT_BINS)
    lines = len(calibration.methods) + 1
    rows = -(-lines // 3)
    fig = Figure(figsize=(7, 3.4 + 0.2 * rows), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if len(hist.counts):
        ax.stairs(np.maximum(hist.counts, 0.8), hist.edges, fill=True, color="0.7", baseline=0.8)
    ax.set_yscale("log")
    for m in calibration.methods:
        a = calibration.amax[m][tensor]
        ax.axvline(a, color=colors[m], linewidth=1.2, label=f"{m}: {a:.4g}")
    peak = max(abs(rec.min), abs(rec.max)) if rec.count else 0.0
    if math.isfinite(peak) and peak > 0:
        same = [m for m in calibration.methods if f"{calibration.amax[m][tensor]:.4g}" == f"{peak:.4g}"]
        note = f" (same as {', '.join(same)})" if same else ""  # its line then lies on theirs
        ax.axvline(peak, color="0.35", linewidth=1.0, linestyle="--", label=f"max |x|: {peak:.4g}{note}")
    ax.set_xlabel("|x|")
    ax.set_ylabel("count")
    ax.set_title(tensor if len(tensor) <= 70 else "..." + tensor[-67:], fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(lines, 3), frameon=False)
    fig.tight_layout()
    return fig
