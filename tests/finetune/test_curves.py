"""`trtq.finetune.curves`: training_curves.png."""

from __future__ import annotations

from pathlib import Path

from trtq.finetune.curves import plot_curves
from trtq.finetune.train import EpochRecord, History


def test_curves_are_a_png_made_the_same_way_every_time(tmp_path: Path) -> None:
    history = History(
        records=[
            EpochRecord(0, None, None, 2.0, 0.1, 0.0, True, False),
            EpochRecord(1, 1.2, 0.6, 1.0, 0.7, 0.01, True, False),
        ],
        best_epoch=1,
    )
    a = plot_curves(history, tmp_path / "a.png", {"FP32": 0.9})
    b = plot_curves(history, tmp_path / "b.png", {"FP32": 0.9})
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()
