"""The report: report.json (every typed result and the configuration) and report.md (one page a person reads)."""

from __future__ import annotations

from dataclasses import dataclass

from trtq import artifacts as A
from trtq.pipeline.context import RunContext

__all__ = ["ReportStage"]


@dataclass
class ReportStage:
    """Writes report.json and report.md from `ctx.result` (run last)."""

    name: str = "report"

    def check(self, ctx: RunContext) -> None:
        return None

    def run(self, ctx: RunContext) -> None:
        import time

        from trtq.report import render_markdown

        ctx.result.timings["total"] = time.perf_counter() - ctx.started
        from trtq.pipeline.memory import process_peak_mb

        peak = process_peak_mb()
        if peak is not None and ctx.result.memory_mb:
            ctx.result.memory_mb["total"] = peak  # the process's peak so far (imports and export included)
        ctx.result.artifacts[A.REPORT_JSON] = ctx.sink.final(A.REPORT_JSON)
        ctx.result.artifacts[A.REPORT_MD] = ctx.sink.final(A.REPORT_MD)
        ctx.write_json(A.REPORT_JSON, ctx.result.to_json())
        ctx.write_text(A.REPORT_MD, render_markdown(ctx.result))
