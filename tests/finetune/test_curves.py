"""`trtq.finetune.curves`: training_curves.png, read through the figure's artists (not its pixels)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from trtq.finetune.curves import curves_figure, plot_curves, reference_labels
from trtq.finetune.train import EpochRecord, History

FP32, PTQ = "FP32 (ONNX Runtime)", "PTQ (ONNX Runtime)"


def _history(epochs: int = 2) -> History:
    recs = [EpochRecord(0, None, None, 2.0, 0.1, 0.0, True, False)]
    recs += [
        EpochRecord(e, 1.2 / e, 0.6, 1.0 / e, 0.7 + 0.01 * e, 0.01, True, False) for e in range(1, epochs + 1)
    ]
    return History(records=recs, best_epoch=epochs)


@pytest.fixture
def figure():
    figs = []

    def make(history: History, refs: dict[str, float]):
        figs.append(curves_figure(history, refs))
        figs[-1].canvas.draw()
        return figs[-1]

    yield make
    for fig in figs:
        plt.close(fig)


def _refs(ax) -> list:
    """The horizontal reference lines of a panel (axhline: y constant, x in axes coordinates 0..1)."""
    return [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [0, 1] and len(set(ln.get_ydata())) == 1]


def test_curves_are_a_png_made_the_same_way_every_time(tmp_path: Path) -> None:
    a = plot_curves(_history(), tmp_path / "a.png", {"FP32": 0.9})
    b = plot_curves(_history(), tmp_path / "b.png", {"FP32": 0.9})
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_epoch_ticks_are_whole_numbers_on_both_panels(figure, epochs: int) -> None:
    fig = figure(_history(epochs), {FP32: 0.8})
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
        assert all(lbl.get_text().lstrip("−-").isdigit() for lbl in ax.get_xticklabels() if lbl.get_text())


def test_equal_references_are_both_drawn_with_distinct_styles(figure) -> None:
    fig = figure(_history(), {FP32: 0.8, PTQ: 0.8})
    lines = _refs(fig.axes[1])
    assert [ln.get_ydata()[0] for ln in lines] == pytest.approx([80.0, 80.0])
    (a, b) = lines
    assert a.get_linestyle() != b.get_linestyle()
    assert a.get_linewidth() > b.get_linewidth()  # the wide one stays visible around the narrow one on top
    assert b.get_zorder() >= a.get_zorder() and a.get_color() != b.get_color()
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert f"{FP32}: 80.00%" in labels and f"{PTQ}: 80.00% (same as FP32)" in labels
    assert "best epoch (2)" in labels


def test_distinct_references_give_each_value_and_no_same_as(figure) -> None:
    fig = figure(_history(), {FP32: 0.91, PTQ: 0.4567})
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert f"{FP32}: 91.00%" in labels and f"{PTQ}: 45.67%" in labels
    assert not any("same as" in t for t in labels)
    assert reference_labels({"a": 0.5, "b (x)": 0.25, "c": 0.5}) == [
        "a: 50.00%",
        "b (x): 25.00%",
        "c: 50.00% (same as a)",
    ]


def test_legends_hide_no_data(figure) -> None:
    fig = figure(_history(5), {FP32: 0.8, PTQ: 0.75})
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend is not None
        box, frame = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert not box.overlaps(frame), (box, frame)  # below the panel: outside the data area
        assert box.y0 >= 0  # and still inside the figure
