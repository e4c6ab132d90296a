"""Typed results and report.json: what each summary records and the report.json layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from trtq.config import BuildConfig
from trtq.files import dumps_json
from trtq.pipeline.results import (
    REPORT_FORMAT,
    BuildResult,
    CalibrationSummary,
    EngineSummary,
    PlacementSummary,
    ReportSection,
    SensitivitySummary,
    TypingSummary,
)
from trtq.placement import PlacementConfig, plan_qdq
from trtq.sensitivity import FallbackResult, LayerSensitivity, SensitivityResult


def test_placement_summary_counts_and_lists_the_candidates_left_out(onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(exclude_nodes=("head",)))
    s = PlacementSummary.from_plan(plan)
    assert (s.quantized_nodes, s.activation_qdq, s.weight_qdq, s.scale_groups) == (
        len(plan.quantized_nodes), len(plan.activations), len(plan.weights), 0
    )  # fmt: skip
    assert s.skipped == [{"node": d.node, "op_type": d.op_type, "rule": d.rule, "reason": d.reason}
                         for d in plan.decisions if not d.quantized]  # fmt: skip
    assert s.skipped[0]["node"] == "head" and s.to_json()["qat_check"] is None


def test_placement_summary_records_the_rules_that_ran(onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(disable_rules=("Commuting",)))
    assert PlacementSummary.from_plan(plan).rules == plan.enabled_rules


def _sensitivity() -> SensitivitySummary:
    layers = [LayerSensitivity(f"n{i}", "Conv", 10, 0.9, 0.95, 0.1, 0.05, rank=i + 1) for i in range(12)]
    sens = SensitivityResult(
        "top1_agreement", 1.0, 0.8, 0.2, 64, layers, total_macs=120, timings={"total": 1.23456}
    )
    fb = FallbackResult(nodes=["n0"], metric=0.99, fp32_metric=1.0, int8_metric=0.8, metric_name="top1_agreement",
                        max_drop=2.0, met=True, int8_mac_share=0.9, all_int8_mac_share=1.0,
                        evaluations=[{"nodes": ["n0"]}, {"nodes": []}])  # fmt: skip
    return SensitivitySummary(sens, fb)


def test_sensitivity_summary_keeps_the_top_ten_and_counts_evaluations():
    doc = _sensitivity().to_json()
    assert (
        doc["ranked"] == [f"n{i}" for i in range(10)] and doc["layers"] == 12 and doc["analysis_s"] == 1.235
    )
    assert (doc["metric"], doc["samples"], doc["fp32_metric"], doc["int8_metric"]) == (
        "top1_agreement",
        64,
        1.0,
        0.8,
    )
    assert (
        doc["fallback"]["evaluations"] == 2
        and doc["fallback"]["nodes"] == ["n0"]
        and doc["fallback"]["met"] is True
    )
    assert SensitivitySummary().to_json() == {}


def test_build_result_to_json_is_report_json(tmp_path):
    cfg = BuildConfig(model="resnet18", out=str(tmp_path))
    result = BuildResult(
        out_dir=tmp_path, config=cfg, artifacts={"model.int8.onnx": tmp_path / "model.int8.onnx"},
        export=SimpleNamespace(summary=lambda: {"kind": "torchvision"}),
        calibration=CalibrationSummary(method="entropy", methods=["entropy"], tensors=3, samples=8),
        typing=TypingSummary(fp32_nodes=[], ranges_from="calibration data"), sensitivity=_sensitivity(),
        timings={"export": 1.23456}, warnings=["w"],
        sections=[ReportSection("QAT", "md", key="qat", data={"accuracy": 1}), ReportSection("Notes", "md only")],
    )  # fmt: skip
    doc = json.loads(dumps_json(result.to_json()))
    assert doc["format"] == REPORT_FORMAT == "trtq.report/2" and doc["out_dir"] == str(tmp_path)
    assert doc["config"] == json.loads(json.dumps(cfg.to_dict())) and isinstance(doc["plugins"], list)
    assert doc["artifacts"] == {"model.int8.onnx": str(tmp_path / "model.int8.onnx")}
    assert doc["export"] == {"kind": "torchvision"} and doc["placement"] is None and doc["validation"] is None
    assert doc["calibration"]["method"] == "entropy" and doc["typing"]["ranges_from"] == "calibration data"
    assert (
        doc["sensitivity"]["layers"] == 12
        and doc["timings_s"] == {"export": 1.235}
        and doc["warnings"] == ["w"]
    )
    assert doc["engine"] == EngineSummary().to_json() and doc["engine_status"] == "not attempted"
    assert (
        doc["qat"] == {"accuracy": 1} and "Notes" not in doc
    )  # only sections with a key go into report.json
    assert result.int8_onnx == tmp_path / "model.int8.onnx" and result.calib_method == "entropy"
    assert (
        BuildResult(out_dir=tmp_path).calib_method == ""
        and BuildResult(out_dir=tmp_path).to_json()["config"] is None
    )


def test_engine_summary_json_includes_its_validation():
    info = EngineSummary(status="built", built=True, info={"plan": "model.plan"},
                         validation=SimpleNamespace(to_json=lambda: {"samples": 3}), bench=[{"batch": 1}])  # fmt: skip
    doc = info.to_json()
    assert {k: doc[k] for k in ("status", "built", "info", "skipped_reason", "validation", "bench")} == {
        "status": "built", "built": True, "info": {"plan": "model.plan"}, "skipped_reason": None,
        "validation": {"samples": 3}, "bench": [{"batch": 1}],
    }  # fmt: skip
    assert BuildResult(out_dir=Path("r"), engine_info=info).engine_status == "built"
