"""`trtq.finetune.result`: metrics.json is `QATResult.to_json()`, with the keys earlier versions wrote."""

from __future__ import annotations

import json

import pytest

#: The keys of metrics.json for a run of the built-in loop with labelled validation data.
METRICS_KEYS = [
    "seed", "device", "calibration", "quantized_modules", "output_quantizers", "export_only", "config",
    "training", "export", "export_ptq", "export_check", "accuracy", "torch", "timings_s",
]  # fmt: skip


def test_metrics_json_is_to_json_with_the_established_keys(outlier_run) -> None:
    on_disk = json.loads((outlier_run.out_dir / "metrics.json").read_text())
    assert list(on_disk) == METRICS_KEYS
    mine = outlier_run.to_json()
    # metrics.json is written before the hand-off, whose time only the result holds
    assert set(on_disk["timings_s"]) == set(outlier_run.timings) - {"handoff"}
    for m in (on_disk, mine):
        m.pop("timings_s")
    assert json.loads(json.dumps(mine)) == on_disk
    assert list(on_disk["accuracy"]) == ["samples", "fp32", "ptq", "qat"]
    assert set(on_disk["accuracy"]["ptq"]) == {"top1", "agreement_with_fp32", "cosine_vs_fp32"}
    assert set(on_disk["torch"]) == {"fp32_top1", "ptq_top1", "qat_top1"}
    assert set(on_disk["calibration"]) == {"method", "samples", "amax"}
    assert on_disk["config"]["resolved_lr"] == 0.01 and on_disk["seed"] == 0
    assert set(on_disk["export"]) >= {"placement", "folded_batchnorms", "added_at_export", "nodes"}


def test_metrics_is_read_only_and_derived_from_the_typed_fields(outlier_run) -> None:
    with pytest.raises(AttributeError):
        outlier_run.metrics = {}
    copy = outlier_run.metrics
    copy["accuracy"] = None  # editing the returned dict changes nothing
    assert outlier_run.metrics["accuracy"]["qat"]["top1"] == outlier_run.accuracy.qat.top1
    assert "timings_s" not in outlier_run.metrics


def test_summary_json_is_what_the_cli_prints(outlier_run) -> None:
    s = outlier_run.summary_json()
    assert s["placement_matches_ptq"] is True and s["accuracy"] == outlier_run.metrics["accuracy"]
    assert s["artifacts"]["model.qat.onnx"].endswith("model.qat.onnx") and s["build"]["config"]
    assert s["config"]["calibration"]["method"] == "minmax" and s["config"]["train"]["epochs"] == 2
    json.dumps(s)  # plain JSON values only
