"""The training-curves figure of a QAT run (training_curves.png): loss, and validation top-1 per epoch.

Reading it at a glance: epochs are whole numbers on both panels; each reference line (FP32, PTQ, ...) has its
own dash pattern and width, so two equal references stay visible one over the other, and its legend entry
gives the value (and says "same as X" when it equals an earlier one); the legends sit below the panels, where
they hide no data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trtq.finetune.train import History

__all__ = ["plot_curves", "curves_figure", "REFERENCE_STYLES", "reference_labels"]

#: Line style of the n-th reference line (cycled): a wide long-dashed line under a narrow dotted one, ...
REFERENCE_STYLES: tuple[dict[str, Any], ...] = (
    {"linestyle": "--", "linewidth": 3.2, "color": "C2", "zorder": 1.0},
    {"linestyle": ":", "linewidth": 1.8, "color": "C3", "zorder": 1.1},
    {"linestyle": "-.", "linewidth": 2.4, "color": "C4", "zorder": 1.2},
)


def _short(label: str) -> str:
    """A reference's name without its parenthesised detail: "FP32 (ONNX Runtime)" -> "FP32"."""
    return label.split(" (")[0].strip() or label


def reference_labels(references: dict[str, float]) -> list[str]:
    """Legend entries of the reference lines: the label, the value in %, and "(same as X)" for a repeat.

    Values are compared as shown (two decimals in %), so the legend never claims a difference it cannot show.
    """
    seen: dict[str, str] = {}
    labels = []
    for label, value in references.items():
        shown = f"{100 * value:.2f}%"
        same = seen.setdefault(shown, label)
        labels.append(f"{label}: {shown}" + (f" (same as {_short(same)})" if same != label else ""))
    return labels


def _legend_below(ax: Any, fontsize: float) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, fontsize=fontsize, frameon=False)


def curves_figure(history: History, references: dict[str, float] | None = None) -> Any:
    """The matplotlib Figure of `plot_curves` (axes: loss, validation top-1); close it when done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    recs = history.records
    epochs = [r.epoch for r in recs]
    refs = dict(references or {})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4 + 0.2 * max(len(refs) - 1, 0)))
    trained = [r for r in recs if r.train_loss is not None]
    if trained:
        ax1.plot(
            [r.epoch for r in trained], [r.train_loss for r in trained], "o-", label="train (smoothed CE)"
        )
    ax1.plot(epochs, [r.val_loss for r in recs], "s-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax2.plot(epochs, [100 * r.val_top1 for r in recs], "s-", color="C1", linewidth=1.5, zorder=3,
             label="QAT (fake-quant, torch)")  # fmt: skip
    for i, ((_, value), label) in enumerate(zip(refs.items(), reference_labels(refs))):
        ax2.axhline(100 * value, label=label, **REFERENCE_STYLES[i % len(REFERENCE_STYLES)])
    ax2.axvline(history.best_epoch, color="grey", linewidth=0.8, label=f"best epoch ({history.best_epoch})")
    ax2.set_xlabel("epoch (0 = calibrated, before training)")
    ax2.set_ylabel("validation top-1 (%)")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0.04, y=0.1)  # a line at the highest or lowest value stays clear of the frame
    _legend_below(ax1, 9)
    _legend_below(ax2, 8)
    fig.tight_layout()
    return fig


def plot_curves(history: History, path: Path, references: dict[str, float] | None = None) -> Path:
    """Training curves (loss; validation top-1 with reference lines such as FP32 and PTQ) as a PNG."""
    import io

    import matplotlib.pyplot as plt

    from trtq.files import write_bytes

    fig = curves_figure(history, references)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
