"""sensitivity.png reads at a glance: a panel never stays blank, the log axis labels do not crowd."""

from __future__ import annotations

import matplotlib.pyplot as plt

from trtq.sensitivity.analysis import LayerSensitivity, SensitivityResult
from trtq.sensitivity.report import plot_sensitivity, sensitivity_figure


def _result(metric_delta: float, noise: list[float]) -> SensitivityResult:
    layers = [
        LayerSensitivity(
            node=f"/blocks.{i}/MatMul",
            op_type="MatMul",
            macs=1000,
            metric_quantized_alone=0.9 - metric_delta,
            metric_fp16_alone=0.9 + metric_delta,
            noise_quantized_alone=n,
            noise_fp16_alone=0.05 - n / 2,
            rank=i + 1,
        )  # fmt: skip
        for i, n in enumerate(noise)
    ]
    return SensitivityResult(metric="top1_agreement", fp32_metric=0.9, int8_metric=0.9, int8_noise=0.05,
                             samples=32, layers=layers, total_macs=20_000)  # fmt: skip


def _texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts)


def test_all_zero_deltas_are_said_on_the_left_panel():
    fig = sensitivity_figure(_result(0.0, [1e-4, 2e-4, 3e-4]))
    left = fig.axes[0]
    assert "every delta is 0" in _texts(left) and "32 samples" in _texts(left)
    plt.close(fig)
    fig = sensitivity_figure(_result(0.01, [1e-4, 2e-4, 3e-4]))
    assert _texts(fig.axes[0]) == ""  # a metric that moves is drawn, not explained away
    plt.close(fig)


def test_log_axis_labels_do_not_crowd_over_many_decades():
    """Noise spanning 28 decades used to get a label per few decades, running into each other."""
    fig = sensitivity_figure(_result(0.0, [10 ** (-28 + 1.4 * i) for i in range(20)]))
    right = fig.axes[1]
    fig.canvas.draw()
    lo, hi = right.get_xlim()
    labelled = [t for t in right.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert 2 <= len(labelled) <= 7
    boxes = sorted((t.get_window_extent() for t in labelled), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels overlap
    plt.close(fig)


def test_plot_is_written_as_png(tmp_path):
    path = plot_sensitivity(
        _result(0.01, [1e-4, 2e-4]), tmp_path / "sensitivity.png", chosen=["/blocks.0/MatMul"]
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_narrow_log_range_gets_several_readable_labels():
    """Within one decade the axis used to show a single label (or crowded minor ones); now a few, apart."""
    fig = sensitivity_figure(_result(0.0, [1.3e-5, 2.5e-5, 3.1e-5, 2.9e-5]))
    right = fig.axes[1]
    fig.canvas.draw()
    lo, hi = right.get_xlim()
    ticks = right.get_xticklabels() + right.get_xticklabels(minor=True)
    labelled = [t for t in ticks if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert 3 <= len(labelled) <= 8
    boxes = sorted((t.get_window_extent() for t in labelled), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))
    assert all("e-0" in t.get_text() and "$" not in t.get_text() for t in labelled)  # one notation throughout
    plt.close(fig)


def test_without_alone_int8_only_the_alone_fp16_bars_are_drawn():
    sens = _result(0.01, [1e-4, 2e-4, 3e-4])
    both = sensitivity_figure(sens)
    assert [len(ax.containers) for ax in both.axes] == [2, 2]
    plt.close(both)
    for layer in sens.layers:
        layer.metric_quantized_alone = layer.noise_quantized_alone = None
    fig = sensitivity_figure(sens)
    assert [len(ax.containers) for ax in fig.axes] == [1, 1]
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == ["layer alone FP16: metric recovered / noise removed"]
    plt.close(fig)
