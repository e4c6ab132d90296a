"""`trtq.rundir.folders`: staged run folders, the one-rename swap, removing a run, stale staging folders, in-place
folders (the --force checks are in test_checks.py, the marker and modes in test_marker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rundir.cases import hidden, run
from trtq.errors import TrtqError, UsageError
from trtq.files import write_json, write_text
from trtq.rundir import (
    MARKER,
    clean_stale,
    prepare_out_dir,
    read_marker,
    remove_run_folder,
    staged_dir,
)
from trtq.rundir.marker import start_ticks


def test_the_earlier_run_stays_until_the_new_one_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run(out, files={"report.md": "old"})
    with pytest.raises(RuntimeError), staged_dir(out, True) as staging:
        write_text(staging / "report.md", "half")
        assert (out / "report.md").read_text() == "old"  # still there while the new run is written
        raise RuntimeError("stage failed")
    assert (out / "report.md").read_text() == "old" and hidden(tmp_path) == []
    inode = out.stat().st_ino
    run(out, force=True, files={"report.md": "new", "extra.json": "{}"})
    assert (out / "report.md").read_text() == "new" and read_marker(out).files == ["extra.json", "report.md"]
    assert out.stat().st_ino != inode and hidden(tmp_path) == []  # swapped in, the old one removed


def test_remove_run_folder_deletes_only_what_the_marker_lists(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run(out)
    (out / "late.txt").write_text("added by the user")
    assert remove_run_folder(out) is False
    assert sorted(os.listdir(out)) == ["late.txt"]
    with pytest.raises(TrtqError, match="no .trtq-run marker"):
        remove_run_folder(out)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_folders_of_killed_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "r"
    dead = tmp_path / f".r.partial-{_dead_pid()}.123-abc123"
    dead.mkdir()
    (dead / "model.onnx").write_text("45 MB of a killed run")
    (dead / MARKER).write_text(
        json.dumps({"format": "trtq.run/1", "command": "build", "host": os.uname().nodename})
    )
    live = tmp_path / f".r.partial-{os.getpid()}.{start_ticks(os.getpid())}-abc124"  # a run going on now
    live.mkdir()
    (live / MARKER).write_text((dead / MARKER).read_text())
    unmarked = tmp_path / f".r.partial-{_dead_pid()}.0-abc125"  # not provably trtq's: left alone
    unmarked.mkdir()
    (unmarked / "x").write_text("?")
    other = tmp_path / f".other.partial-{_dead_pid()}.0-abc126"  # another --out's
    other.mkdir()
    notes: list[str] = []
    assert clean_stale(out, note=notes.append) == [dead]
    assert not dead.exists() and live.exists() and unmarked.exists() and other.exists()
    assert len(notes) == 1 and "interrupted run" in notes[0]
    run(out)  # a run removes them itself
    assert (out / "report.md").exists() and not dead.exists()


def test_in_place_folders_record_every_artifact_written_into_them(tmp_path: Path) -> None:
    out = tmp_path / "qat"
    prepare_out_dir(out, False, command="qat")
    write_json(out / "metrics.json", {"a": 1})
    write_text(out / "checkpoints" / "last.pt", "w")
    run(out / "run")  # a staged run inside it (QAT's run/): recorded once in place, its staging folder never
    marker = read_marker(out)
    assert marker.state == "in-place" and marker.files == ["checkpoints", "metrics.json", "run"]
    prepare_out_dir(out, True)  # an earlier in-place run is trtq's: replaced
    assert os.listdir(out) == [MARKER]
    (out / "mine.txt").write_text("x")
    with pytest.raises(UsageError, match=r"mine\.txt"):
        prepare_out_dir(out, True)
