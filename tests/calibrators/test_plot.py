"""Calibration histogram plots: one PNG per tensor with each method's threshold, most disagreeing tensors first."""

from __future__ import annotations

import pytest

from tests.calibration.cases import activations as _acts
from tests.calibration.cases import batches as _batches
from trtq.calibration import Calibration, calibrate, plot_thresholds
from trtq.calibrators.plot import disagreement, render_threshold_plots
from trtq.errors import UsageError
from trtq.progress import set_quiet

set_quiet(True)


@pytest.fixture
def convnet(onnx_graph):
    """The zoo's tiny_cnn exported (x -> y)."""
    return onnx_graph("tiny_cnn")


def test_plots_mark_the_most_disagreeing_tensors(convnet, tmp_path):
    cal = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    spread = disagreement(cal)
    files = plot_thresholds(cal, 2, tmp_path)
    top = sorted(spread, key=lambda t: -spread[t])[:2]
    assert len(files) == 2 and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    assert [f.name for f in files] == [f"calib_{t.strip('/').replace('/', '_')}.png" for t in top]
    cal.save(tmp_path / "c.json")
    with pytest.raises(UsageError, match="in memory only"):
        plot_thresholds(Calibration.load(tmp_path / "c.json"), 1, tmp_path)


def test_disagreement_is_the_relative_spread_of_the_thresholds():
    cal = Calibration(methods=["a", "b", "c"], amax={"a": {"t": 4.0, "u": 1.0}, "b": {"t": 2.0, "u": 1.0},
                                                   "c": {"t": 3.0, "u": 1.0}})  # fmt: skip
    assert disagreement(cal) == {"t": 0.5, "u": 0.0}


def test_named_tensors_in_order_and_unknown_ones_refused(convnet):
    cal = calibrate(convnet, _batches(2), _acts(convnet), ["minmax", "mse"])
    names = [n for n, _ in render_threshold_plots(cal, ["x", _acts(convnet)[1]])]
    assert names == ["calib_x.png", "calib_" + _acts(convnet)[1].strip("/").replace("/", "_") + ".png"]
    with pytest.raises(UsageError, match="tensor 'nope' was not calibrated"):
        render_threshold_plots(cal, ["nope"])
    assert render_threshold_plots(cal, 0) == []


def test_a_plot_reads_at_a_glance(convnet):
    """Each method's line with its value in a legend below the axes (off the data), max |x| said to coincide with
    minmax (its line lies on minmax's), and at most PLOT_BINS bars, not the 2048 that read as noise."""
    from trtq.calibrators.plot import PLOT_BINS, threshold_figure

    cal = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    t = _acts(convnet)[1]
    fig = threshold_figure(cal, t)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [x.get_text() for x in ax.get_legend().get_texts()]
    for m in cal.methods:
        assert f"{m}: {cal.amax[m][t]:.4g}" in labels
    assert f"max |x|: {cal.amax['minmax'][t]:.4g} (same as minmax)" in labels
    renderer = fig.canvas.get_renderer()
    box, frame = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert not box.overlaps(frame) and box.y0 >= 0
    (bars,) = ax.patches
    edges = bars.get_data().edges
    assert 16 < len(edges) - 1 <= PLOT_BINS
