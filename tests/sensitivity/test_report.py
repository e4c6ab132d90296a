"""What sensitivity writes: sensitivity.json, the metric formatting, the report section and the chart."""

from __future__ import annotations

import json

import pytest

from trtq.sensitivity import FallbackResult, LayerSensitivity, SensitivityResult
from trtq.sensitivity.report import (
    SENSITIVITY_FORMAT,
    budget_unit,
    format_metric,
    format_points,
    metric_info,
    plot_sensitivity,
    sensitivity_document,
    sensitivity_markdown,
)


def _sens(n: int = 3, metric: str = "top1_agreement") -> SensitivityResult:
    layers = [LayerSensitivity(f"/l{i}/Conv", "Conv", 100 * (i + 1), 0.9 - i / 100, 0.95 - i / 100, 0.1, 0.05,
                               rank=i + 1) for i in range(n)]  # fmt: skip
    return SensitivityResult(metric, 1.0, 0.8, 0.2, 64, layers, total_macs=100 * n * (n + 1) // 2 + 100,
                             timings={"total": 3.0})  # fmt: skip


def _choice(**kw) -> FallbackResult:
    base = dict(nodes=["/l0/Conv"], metric=0.99, fp32_metric=1.0, int8_metric=0.8, metric_name="top1_agreement",
                max_drop=2.0, met=True, int8_mac_share=0.75, all_int8_mac_share=0.9, evaluations=[{}, {}, {}])  # fmt: skip
    return FallbackResult(**{**base, **kw})


def test_formatting_follows_the_registered_metric_or_plain_numbers_for_user_metrics():
    assert format_metric("top1_accuracy", 0.98765) == "98.77%" and format_metric("snr_db", 20.0) == "20.00 dB"
    assert format_metric("pkg.mod:fn", 0.123456) == "0.1235" and format_metric("top1_accuracy", None) == "—"
    assert (
        format_points("top1_accuracy", 0.0125) == "+1.25 pt" and format_points("snr_db", -1.5) == "-1.50 dB"
    )
    assert format_points("mse", 0.001) == "+0.001" and format_points("pkg.mod:fn", 2.0) == "+2"
    assert (
        budget_unit("top1_accuracy") == "percentage points"
        and budget_unit("pkg.mod:fn") == "units of the metric"
    )
    assert metric_info("pkg.mod:fn") is None and metric_info("cosine").name == "cosine"


def test_the_document_marks_the_chosen_layers():
    doc = json.loads(json.dumps(sensitivity_document(_sens(), _choice())))
    assert doc["format"] == SENSITIVITY_FORMAT == "trtq.sensitivity/1"
    assert [layer["fallback"] for layer in doc["layers"]] == [True, False, False]
    assert doc["fallback"]["nodes"] == ["/l0/Conv"] and doc["fallback"]["drop_points"] == pytest.approx(1.0)
    assert "fallback" not in sensitivity_document(_sens(), None)["layers"][0]
    assert sensitivity_document(None, None) == {"format": SENSITIVITY_FORMAT}


def test_markdown_table_verdict_and_ranking():
    md = sensitivity_markdown(_sens(), _choice(), plot="sensitivity.png", mixed_name="model.mixed.onnx")
    assert md.startswith(
        "Metric: **top1_agreement** (higher is better) on 64 samples, ONNX Runtime executing Q/DQ as written."
    )
    assert "| FP32 | 100.00% | 0.0% |" in md and "| all INT8 | 80.00% | 90.0% |" in md
    assert "| mixed, 1 layer(s) FP16 (model.mixed.onnx) | 99.00% | 75.0% |" in md
    assert (
        "Budget: at most 2 percentage points worse than FP32: met; measured drop 1.00 percentage points, from 3 "
        "evaluations" in md
    )
    assert "candidates ranked by mean output cosine to FP32, re-measured each step" in md
    assert "Kept out of INT8: `/l0/Conv`." in md
    assert "| 1 | `/l0/Conv` | Conv | 14.3% | 90.00% | 95.00% (+15.00 pt) | yes |" in md
    assert "| 2 | `/l1/Conv` | Conv | 28.6% | 89.00% | 94.00% (+14.00 pt) |  |" in md
    assert (
        "Analysis: 3 layers x 2 variants in 3.0 s (1.00 s per layer)." in md
        and "![per-layer sensitivity](sensitivity.png)" in md
    )


def test_markdown_for_a_missed_budget_a_user_set_skipped_qdq_and_many_layers():
    missed = sensitivity_markdown(None, _choice(met=False, metric=0.9, skipped_qdq=["t1", "t2"]))
    assert "**not met** (even with every analysed layer in FP16)" in missed and "on 64 samples" not in missed
    assert "2 Q/DQ that re-planning asked for had no calibrated scale" in missed
    user = sensitivity_markdown(None, _choice(max_drop=None, met=None))
    assert "Fallback set given by the user (1 layer(s)), measured as above." in user
    many = sensitivity_markdown(_sens(20), None, top=15)
    assert "| … | 5 more in sensitivity.json | | | | | |" in many and "| FP32 |" not in many
    assert "(lower is better)" in sensitivity_markdown(_sens(metric="mse"), None)


def test_without_alone_int8_the_table_has_no_column_for_it():
    sens = _sens()
    for layer in sens.layers:
        layer.metric_quantized_alone = layer.noise_quantized_alone = None
    md = sensitivity_markdown(sens, _choice())
    assert "| rank | node | op | MACs | alone FP16 | FP16 |" in md and "alone INT8" not in md
    assert "| 1 | `/l0/Conv` | Conv | 14.3% | 95.00% (+15.00 pt) | yes |" in md
    assert "Analysis: 3 layers x 1 variant in 3.0 s" in md


def test_the_chart_is_a_png_written_atomically(tmp_path):
    path = plot_sensitivity(_sens(25), tmp_path / "s.png", chosen=["/l0/Conv"], top=20)
    assert path == tmp_path / "s.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]


def test_pareto_table_lists_the_front_with_the_chosen_set_and_the_plot():
    def ev(nodes, metric, share, front):
        return {"nodes": nodes, "metric": metric, "measure": 0.99 + share / 100, "int8_mac_share": share,
                "met": metric >= 0.98, "source": "search", "front": front}  # fmt: skip

    evals = [ev([], 0.8, 0.9, True), ev(["/l1/Conv"], 0.85, 0.7, False), ev(["/l0/Conv"], 0.99, 0.75, True)]
    choice = _choice(evaluations=evals, measure_name="cosine")
    md = sensitivity_markdown(_sens(), choice, tradeoff="tradeoff.png")
    assert "Pareto front of the 3 evaluated sets" in md and "![FP16 fallback trade-off](tradeoff.png)" in md
    assert "| 90.0% | 0 | 80.00% | 0.99900 | not met |  |" in md
    assert "| 75.0% | 1 | 99.00% | 0.99750 | met | **chosen** |" in md and "| 70.0% |" not in md  # dominated
    doc = sensitivity_document(_sens(), choice)["fallback"]
    assert [e["int8_mac_share"] for e in doc["pareto"]] == [0.9, 0.75] and doc["measure"] == "cosine"
