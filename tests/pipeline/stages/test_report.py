"""ReportStage: report.json (the typed results and the configuration) and report.md, written last."""

from __future__ import annotations

import json

from trtq.pipeline.results import REPORT_FORMAT
from trtq.pipeline.stages import ReportStage


def test_writes_report_json_and_md_listing_themselves(run_context, tmp_path):
    ctx = run_context()
    ctx.result.timings["export"] = 0.5
    ctx.result.warnings.append("a careful user reads this")
    ReportStage().run(ctx)
    staging, out = tmp_path / "staging", tmp_path / "out"
    doc = json.loads((staging / "report.json").read_text())
    assert doc["format"] == REPORT_FORMAT and doc["warnings"] == ["a careful user reads this"]
    assert doc["artifacts"] == {"report.json": str(out / "report.json"), "report.md": str(out / "report.md")}
    assert set(doc["timings_s"]) == {"export", "total"} and doc["timings_s"]["total"] >= 0
    assert doc["config"]["format_version"] == "trtq.config/1"
    md = (staging / "report.md").read_text()
    assert md.startswith("# trtq build report\n") and "- a careful user reads this" in md
    assert "| [report.json](report.json) |" in md and "| export | 0.50 |" in md
