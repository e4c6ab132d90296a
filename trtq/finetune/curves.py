"""The training-curves figure of a QAT run (training_curves.png): loss, and validation top-1 per epoch."""

from __future__ import annotations

from pathlib import Path

from trtq.finetune.train import History

__all__ = ["plot_curves"]


def plot_curves(history: History, path: Path, references: dict[str, float] | None = None) -> Path:
    """Training curves (loss; validation top-1 with reference lines such as FP32 and PTQ) as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trtq.files import write_bytes

    recs = history.records
    epochs = [r.epoch for r in recs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    trained = [r for r in recs if r.train_loss is not None]
    if trained:
        ax1.plot(
            [r.epoch for r in trained], [r.train_loss for r in trained], "o-", label="train (smoothed CE)"
        )
    ax1.plot(epochs, [r.val_loss for r in recs], "s-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    ax2.plot(epochs, [100 * r.val_top1 for r in recs], "s-", color="C1", label="QAT (fake-quant, torch)")
    for i, (label, value) in enumerate((references or {}).items()):
        ax2.axhline(100 * value, linestyle="--", color=f"C{i + 2}", label=label)
    ax2.axvline(history.best_epoch, color="grey", linewidth=0.8)
    ax2.set_xlabel("epoch (0 = calibrated, before training)")
    ax2.set_ylabel("validation top-1 (%)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
