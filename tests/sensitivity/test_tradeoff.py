"""tradeoff.png: every evaluated set a point, the Pareto front a line, the chosen set marked and labelled, references."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from trtq.sensitivity.fallback import FallbackResult
from trtq.sensitivity.tradeoff import plot_tradeoff, tradeoff_figure


def _choice() -> FallbackResult:
    def ev(nodes, metric, measure, share, source="search", front=False):
        return {"nodes": nodes, "metric": metric, "measure": measure, "int8_mac_share": share,
                "met": metric >= 0.99, "source": source, "front": front}  # fmt: skip

    evaluations = [
        ev([], 0.96, 0.990, 1.0, "analysis", True),
        ev(["a"], 0.975, 0.993, 0.9, "analysis", True),
        ev(["b"], 0.97, 0.992, 0.8, "analysis"),
        ev(["a", "c"], 0.992, 0.996, 0.7, front=True),
        ev(["a", "b"], 0.985, 0.995, 0.6),
        ev(["a", "b", "c"], 0.995, 0.998, 0.4, front=True),
    ]
    return FallbackResult(nodes=["a", "c"], metric=0.992, fp32_metric=1.0, int8_metric=0.96,
                          metric_name="top1_agreement", max_drop=1.0, met=True, int8_mac_share=0.7,
                          all_int8_mac_share=1.0, evaluations=evaluations, fp32_measure=1.0, int8_measure=0.99,
                          measure=0.996)  # fmt: skip


def test_points_front_chosen_and_references_are_drawn():
    choice = _choice()
    fig = tradeoff_figure(choice)
    left, right = fig.axes
    points = np.concatenate([c.get_offsets() for c in left.collections if len(c.get_offsets()) > 1])
    assert len(points) == len(choice.evaluations)  # every evaluated set (analysis and search)
    front = next(line for line in left.get_lines() if line.get_label().startswith("Pareto front"))
    xs = sorted(set(np.round(front.get_xdata(), 6)))
    assert xs == [40.0, 70.0, 90.0, 100.0]  # the front's INT8 shares, in percent
    labels = {line.get_label(): line.get_ydata()[0] for line in left.get_lines()}
    assert labels["FP32"] == 100.0 and labels["all INT8"] == 96.0 and labels["budget (--max-drop 1)"] == 99.0
    star = next(c for c in left.collections if c.get_label() == "chosen")
    assert np.allclose(star.get_offsets(), [[70.0, 99.2]])
    text = " ".join(t.get_text() for t in left.texts)
    assert "chosen: 2 layer(s) FP16" in text and "70.0% of MACs INT8" in text and "99.20%" in text
    assert right.get_ylabel() == "cosine" and "0.9960" in " ".join(t.get_text() for t in right.texts)
    plt.close(fig)


def test_plot_is_written_as_png(tmp_path):
    path = plot_tradeoff(_choice(), tmp_path / "tradeoff.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
