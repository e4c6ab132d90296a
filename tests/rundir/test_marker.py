"""`trtq.rundir.marker`: the .trtq-run marker listing what trtq wrote, process identity, and modes under the umask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.rundir.cases import hidden, run
from trtq.rundir import MARKER, read_marker
from trtq.rundir.marker import alive, start_ticks


def test_a_run_folder_carries_the_marker_listing_what_trtq_wrote(tmp_path: Path) -> None:
    run(tmp_path / "r", files={"a.json": "{}", "b.onnx": "x"}, command="build")
    marker = read_marker(tmp_path / "r")
    assert marker is not None and marker.state == "complete" and marker.command == "build"
    assert marker.files == ["a.json", "b.onnx"] and marker.pid == os.getpid()
    assert json.loads((tmp_path / "r" / MARKER).read_text())["format"] == "trtq.run/1"
    assert hidden(tmp_path) == []  # no staging folder left beside it


def test_folders_and_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        run(tmp_path / "r", files={"model.onnx": "m"})
    finally:
        os.umask(old)
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o775
    assert (tmp_path / "r" / "model.onnx").stat().st_mode & 0o777 == 0o664
    old = os.umask(0o077)
    try:
        run(tmp_path / "private", files={"model.onnx": "m"})
    finally:
        os.umask(old)
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "private" / "model.onnx").stat().st_mode & 0o777 == 0o600


def test_a_marker_that_is_not_trtqs_reads_as_none(tmp_path: Path) -> None:
    assert read_marker(tmp_path) is None  # none at all
    (tmp_path / MARKER).write_text("not json")
    assert read_marker(tmp_path) is None
    (tmp_path / MARKER).write_text(json.dumps({"format": "someone.else/1", "command": "build"}))
    assert read_marker(tmp_path) is None
    (tmp_path / MARKER).write_text(json.dumps({"format": "trtq.run/1", "command": "qat", "future": 1}))
    assert read_marker(tmp_path).command == "qat"  # unknown keys of a later version are ignored


def test_a_process_is_alive_only_while_it_runs_with_the_same_start() -> None:
    me = os.getpid()
    assert alive(me, start_ticks(me)) and alive(me, 0)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not alive(proc.pid, 0)
    if start_ticks(me):  # /proc is there: a reused pid (another start time) is not the run
        assert not alive(me, start_ticks(me) + 1)
