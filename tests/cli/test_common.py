"""What every command prints: JSON with --json, text unless --quiet, informational lines on stderr, the summary."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from trtq.cli._common import emit, info, summary_text
from trtq.metrics import get_metric
from trtq.pipeline.results import BuildResult, CalibrationSummary
from trtq.validate import Comparison, ValidationResult


def test_emit_prints_json_or_text_or_nothing(capsys):
    emit(Namespace(json=True), {"x": float("nan"), "p": Path("a")}, "text")
    assert json.loads(capsys.readouterr().out) == {"x": None, "p": "a"}
    emit(Namespace(json=False, quiet=False), {"x": 1}, "text")
    assert capsys.readouterr().out == "text\n"
    emit(Namespace(json=False, quiet=True), {"x": 1}, "text")
    emit(Namespace(), {"x": 1}, None)
    assert capsys.readouterr() == ("", "")


def test_info_goes_to_stderr_unless_quiet_or_json(capsys):
    info(Namespace(), "note")
    assert capsys.readouterr() == ("", "note\n")
    info(Namespace(quiet=True), "note")
    info(Namespace(json=True), "note")
    assert capsys.readouterr() == ("", "")


def test_summary_text_shows_each_models_headline_metrics_and_where_things_are():
    val = ValidationResult(
        reference="fp32", samples=10, metrics=[get_metric(m) for m in ("top1_accuracy", "top1_agreement", "cosine", "snr_db")],
        reference_metrics={"top1_accuracy": 0.9, "top1_agreement": 1.0},
        candidates={"int8": Comparison("int8", {"top1_accuracy": 0.8, "top1_agreement": 0.95, "cosine": 0.99, "snr_db": 20.0})},
    )  # fmt: skip
    result = BuildResult(out_dir=Path("runs/r"), validation=val, warnings=["w1"], timings={"total": 12.34},
                         calibration=CalibrationSummary(method="mse", methods=["mse"], tensors=1))  # fmt: skip
    lines = summary_text(result).splitlines()
    assert lines[0] == "FP32 (model.onnx)".ljust(34) + "  top-1 90.00%  top-1 agreement with FP32 100.00%"
    assert (
        lines[1]
        == "INT8 (model.int8.onnx)".ljust(34)
        + "  top-1 80.00%  top-1 agreement with FP32 95.00%  cosine vs FP32 0.99"
    )
    assert lines[2:] == ["warning: w1", "calibration: mse; total 12.3 s", "engine: not attempted",
                         "run folder: runs/r (report.md)"]  # fmt: skip
