"""Presenting a bench.json document: a rich table and a PNG plot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trtq.files import write_bytes

__all__ = ["render_table", "print_table", "plot_bench", "bench_figure", "display_names"]


def display_names(doc: Mapping[str, Any]) -> dict[str, str]:
    """artifact -> the name a table or plot shows: the file name, or the path where two file names are equal."""
    rows = doc["results"]
    by_name: dict[str, set[str]] = {}
    for r in rows:
        by_name.setdefault(r["name"], set()).add(r.get("artifact", r["name"]))
    return {
        r.get("artifact", r["name"]): r["name"]
        if len(by_name[r["name"]]) == 1
        else r.get("artifact", r["name"])
        for r in rows
    }


def render_table(doc: Mapping[str, Any]) -> Any:
    """A rich Table of the results; artifact names are never cut (rows stay distinguishable)."""
    from rich.table import Table

    table = Table(title="latency (ms) and throughput")
    for col in ("artifact", "backend", "batch", "min", "median", "mean", "p90", "p95", "p99", "items/s"):
        left = col in ("artifact", "backend")
        table.add_column(col, justify="left" if left else "right", no_wrap=True, overflow="fold")
    names = display_names(doc)
    for r in doc["results"]:
        backend = r["backend"] + (" +graph" if r.get("cuda_graph") else "")
        table.add_row(
            names[r.get("artifact", r["name"])],
            backend,
            str(r["batch"]),
            *(f"{r[k]:.3f}" for k in ("min_ms", "median_ms", "mean_ms", "p90_ms", "p95_ms", "p99_ms")),
            f"{r['throughput_per_s']:.1f}",
        )
    return table


def print_table(doc: Mapping[str, Any], file: Any = None) -> None:
    """Print the table; when the output is not a terminal (a pipe, a file), as wide as the table needs."""
    from rich.console import Console

    console = Console(file=file)
    if not console.is_terminal:
        table = render_table(doc)
        width = console.measure(table, options=console.options.update_width(10_000)).maximum
        console = Console(file=file, width=max(width, 80))
    console.print(render_table(doc))


def plot_bench(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Median latency (whisker to p99) and throughput per batch size, one line per artifact (PNG)."""
    import io

    import matplotlib.pyplot as plt

    fig = bench_figure(doc)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def bench_figure(doc: Mapping[str, Any]) -> Any:
    """The Figure `plot_bench` saves: the x axis is labelled with the batch sizes measured, latency on a log
    axis, artifacts drawn side by side around each batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_thr) = plt.subplots(1, 2, figsize=(11, 4))
    shown = display_names(doc)
    batches = sorted({r["batch"] for r in doc["results"]})
    # side by side around each batch size (a small factor on the log axis), so whiskers do not hide each other
    spread = 1.06 ** (np.arange(len(shown)) - (len(shown) - 1) / 2)
    for k, (artifact, name) in enumerate(shown.items()):
        rows = sorted(
            (r for r in doc["results"] if r.get("artifact", r["name"]) == artifact), key=lambda r: r["batch"]
        )
        b = np.array([r["batch"] for r in rows], dtype=float)
        med = np.array([r["median_ms"] for r in rows])
        up = np.array([r["p99_ms"] for r in rows]) - med
        ax_lat.errorbar(b * spread[k], med, yerr=[np.zeros_like(med), up], marker="o", capsize=3, label=name)
        ax_thr.plot(b, [r["throughput_per_s"] for r in rows], marker="o", label=name)
    ax_lat.set_yscale("log")
    ax_thr.set_ylim(bottom=0)
    for ax, title, ylabel in (
        (ax_lat, "latency: median, whisker to p99 (log scale)", "ms"),
        (ax_thr, "throughput", "items / s"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
