"""report.md from typed results: the accuracy table, calibration, placement, typing, engine, artifacts, timings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from trtq.metrics import get_metric
from trtq.pipeline.results import (
    BuildResult,
    CalibrationSummary,
    PlacementSummary,
    ReportSection,
    TypingSummary,
)
from trtq.report import MODEL_LABELS, accuracy_rows, render_markdown
from trtq.validate import Comparison, ValidationResult


def _validation(data: str = "eval") -> ValidationResult:
    metrics = [get_metric(m) for m in ("top1_accuracy", "top1_agreement", "cosine", "snr_db")]
    return ValidationResult(
        reference="fp32", samples=300, data=data, metrics=metrics,
        reference_metrics={"top1_accuracy": 0.9733, "top1_agreement": 1.0},
        candidates={
            "int8": Comparison("int8", {"top1_accuracy": 0.97, "top1_agreement": 0.99, "cosine": 0.998765, "snr_db": 31.4159}),
            "engine": Comparison("engine", {"top1_accuracy": 0.5}),
        },
    )  # fmt: skip


def _result(**kw) -> BuildResult:
    return BuildResult(out_dir=Path("run"), **kw)


def test_accuracy_rows_label_the_models_and_keep_missing_values_as_none():
    rows = accuracy_rows(_validation())
    assert [label for label, _ in rows] == [MODEL_LABELS["fp32"], MODEL_LABELS["int8"], "engine"]
    assert rows[0][1] == {"top1_accuracy": 0.9733, "top1_agreement": 1.0, "cosine": None, "snr_db": None}
    assert rows[2][1]["cosine"] is None and accuracy_rows(None) == []


def test_the_accuracy_table_formats_each_metric_in_its_unit():
    md = render_markdown(_result(validation=_validation()))
    assert "## Accuracy (300 samples of the evaluation data, ONNX Runtime executing Q/DQ as written)" in md
    assert "| model | top-1 | top-1 agreement with FP32 | cosine vs FP32 | SNR vs FP32 |" in md
    assert "| FP32 (model.onnx) | 97.33% | 100.00% | — | — |" in md
    assert "| INT8 (model.int8.onnx) | 97.00% | 99.00% | 0.998765 | 31.42 dB |" in md
    assert "| engine | 50.00% | — | — | — |" in md


def test_the_data_is_named_as_it_was_given():
    assert "(300 samples of the calibration data (no --eval-data given)," in render_markdown(
        _result(validation=_validation("calibration (no --eval-data)"))
    )
    assert "(300 samples of val.npz," in render_markdown(_result(validation=_validation("val.npz")))
    assert "## Accuracy" not in render_markdown(_result())


def test_calibration_from_data_with_method_scores_cache_and_qat():
    cal = CalibrationSummary(method="mse", methods=["minmax", "mse"], tensors=5, samples=64, choose_metric="cosine",
                             scores={"minmax": {"cosine": 0.99, "mse": 0.01}, "mse": {"cosine": 0.999, "mse": 0.001}},
                             warnings=["tensor 'x' was exactly zero"])  # fmt: skip
    md = render_markdown(_result(calibration=cal, artifacts={"calib_x.png": Path("run/calib_x.png")}))
    assert "Method: **mse** over 64 samples, 5 activation tensors." in md
    assert "chosen by **cosine**" in md and "| method | cosine vs FP32 | mse |" in md
    assert "| minmax | 0.99 | 0.01 |" in md and "| **mse** | 0.999 | 0.001 |" in md
    assert "Note: tensor 'x' was exactly zero." in md and "![calib_x.png](calib_x.png)" in md
    cache = CalibrationSummary(method="cache", methods=["cache"], tensors=3, source="cache", cache="c.cache")
    assert "Scales from the TensorRT calibration cache `c.cache` (3 tensors)." in render_markdown(
        _result(calibration=cache)
    )
    qat = CalibrationSummary(method="qat", methods=[], tensors=0, source="qat")
    assert "## Calibration" not in render_markdown(_result(calibration=qat))


def test_placement_lists_what_stayed_in_high_precision_up_to_40_rows():
    skipped = [
        {"node": f"n{i}", "op_type": "Conv", "rule": "SmallConv", "reason": "few channels"} for i in range(45)
    ]
    pl = PlacementSummary(quantized_nodes=7, activation_qdq=6, weight_qdq=7, scale_groups=0, skipped=skipped)
    md = render_markdown(_result(placement=pl))
    assert "7 weighted layers quantized; 6 activation and 7 weight Q/DQ pairs." in md
    assert "| `n0` | Conv | SmallConv | few channels |" in md and "| `n39` |" in md and "| `n40` |" not in md
    assert "| … 5 more in report.json | | | |" in md


def test_typed_graph_section_engine_status_artifacts_timings_and_extra_sections():
    typing = TypingSummary(
        fp32_nodes=[{"node": "add", "op_type": "Add", "reason": "FP16 overflow"}], ranges_from="cal"
    )
    result = _result(typing=typing, artifacts={"model.onnx": Path("run/model.onnx")}, timings={"export": 1.234},
                     sections=[ReportSection("QAT", "the QAT table\n\n")], warnings=["read me"],
                     export=SimpleNamespace(source="resnet18", kind="torchvision", opset=17, nodes=52, notes=[],
                                            exporter="legacy", exporter_reason="the default"))  # fmt: skip
    result.engine_info.status = "skipped: no GPU"
    md = render_markdown(result)
    assert md.startswith(
        "# trtq build report\n\nModel: `resnet18` (torchvision, opset 17, 52 nodes, legacy exporter (the default)).\n"
    )
    assert "## Warnings\n\n- read me\n" in md
    assert " 1 node(s) stay FP32 (ranges from cal):" in md and "| `add` | Add | FP16 overflow |" in md
    assert "## QAT\n\nthe QAT table\n" in md
    assert "## Engine\n\nskipped: no GPU\n" in md
    assert "| [model.onnx](model.onnx) | FP32 export: the reference every later stage starts from |" in md
    assert "| export | 1.23 |" in md and md.endswith("\n")
    assert md.index("## QAT") < md.index("## Typed graph") < md.index("## Engine") < md.index("## Artifacts")


def test_without_results_only_the_skeleton_is_rendered():
    md = render_markdown(_result())
    assert md == (
        "# trtq build report\n\n## Engine\n\nnot attempted\n\n## Artifacts\n\n| file | what it is |\n|---|---|\n\n"
        "## Timings\n\n| stage | seconds |\n|---|---|\n"
    )
