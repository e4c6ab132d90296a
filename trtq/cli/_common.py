"""Helpers the command modules share: printing results as text or JSON, the build summary."""

from __future__ import annotations

import sys
from typing import Any

from trtq.files import dumps_json

__all__ = ["emit", "info", "summary_text"]


def emit(args: Any, payload: dict[str, Any], text: str | None = None) -> None:
    """Print `payload` as JSON with --json, else `text` (unless --quiet)."""
    if getattr(args, "json", False):
        from trtq.cli._guard import pending_json

        text_json = dumps_json(payload)
        if not pending_json(text_json):
            print(text_json)
    elif text and not getattr(args, "quiet", False):
        print(text)


def info(args: Any, line: str) -> None:
    """An informational line on stderr (silenced by --quiet and --json)."""
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        print(line, file=sys.stderr)


#: The metrics `trtq build` prints (all that were computed; the rest are in report.md).
_SUMMARY_METRICS = ("top1_accuracy", "top1_agreement", "map50_95", "map50", "miou", "cosine")


def summary_text(result: Any) -> str:
    """The lines `trtq build` prints: each model's metrics, calibration, engine status, the run folder."""
    from trtq.report import accuracy_rows

    lines = []
    val = result.validation
    for label, values in accuracy_rows(val):
        parts = [label.ljust(34)]
        for m in val.metrics:
            if values.get(m.name) is not None and m.name in _SUMMARY_METRICS:
                parts.append(f"{m.heading} {m.format(values[m.name])}")
        lines.append("  ".join(parts))
    lines += [f"warning: {w}" for w in result.warnings]
    lines.append(f"calibration: {result.calib_method}; total {result.timings.get('total', 0):.1f} s")
    lines.append(f"engine: {result.engine_status}")
    lines.append(f"run folder: {result.out_dir} (report.md)")
    return "\n".join(lines)
