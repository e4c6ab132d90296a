"""Helpers the run-folder tests share: a staged run that writes a few files, and the hidden entries of a folder."""

from __future__ import annotations

from pathlib import Path

from trtq.files import write_text
from trtq.rundir import staged_dir


def run(out: Path, force: bool = False, files: dict[str, str] | None = None, **kw: object) -> None:
    with staged_dir(out, force, **kw) as staging:  # type: ignore[arg-type]
        for name, text in (files or {"report.md": "new"}).items():
            write_text(staging / name, text)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
