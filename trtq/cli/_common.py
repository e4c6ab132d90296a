"""Helpers the command modules share: printing results as text or JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from trtq.files import json_default

__all__ = ["emit", "info"]


def emit(args: Any, payload: dict[str, Any], text: str | None = None) -> None:
    """Print `payload` as JSON with --json, else `text` (unless --quiet)."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=json_default))
    elif text and not getattr(args, "quiet", False):
        print(text)


def info(args: Any, line: str) -> None:
    """An informational line on stderr (silenced by --quiet and --json)."""
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        print(line, file=sys.stderr)
