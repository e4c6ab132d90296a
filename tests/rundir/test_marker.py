"""trtq.rundir.marker: the .trtq-run marker, the process identity of staging folders, modes under the umask."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rundir.test_folders import _run
from trtq.rundir.marker import (
    MARKER,
    MARKER_FORMAT,
    RunMarker,
    alive,
    file_mode,
    folder_mode,
    read_marker,
    start_ticks,
)


def test_a_marker_round_trips_and_a_foreign_or_broken_one_reads_as_none(tmp_path: Path) -> None:
    marker = RunMarker.new("build", "complete")
    marker.files = ["model.onnx"]
    marker.write(tmp_path)
    back = read_marker(tmp_path)
    assert back == marker and back.pid == os.getpid() and back.format == MARKER_FORMAT
    (tmp_path / MARKER).write_text(json.dumps({"format": "someone.else/1", "command": "x"}))
    assert read_marker(tmp_path) is None
    (tmp_path / MARKER).write_text("{not json")
    assert read_marker(tmp_path) is None
    assert read_marker(tmp_path / "missing") is None


def test_a_process_is_alive_only_with_its_own_start_time() -> None:
    me = os.getpid()
    assert alive(me, start_ticks(me)) and start_ticks(me) > 0
    assert not alive(me, start_ticks(me) + 1)  # a reused pid: another process
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not alive(proc.pid, 0)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_modes_follow_the_umask() -> None:
    with _umask(0o027):
        assert file_mode() == 0o640 and folder_mode() == 0o750


@pytest.mark.parametrize("mask, folder, file", [(0o002, 0o775, 0o664), (0o077, 0o700, 0o600)])
def test_folders_and_files_follow_the_umask(tmp_path: Path, mask: int, folder: int, file: int) -> None:
    with _umask(mask):
        _run(tmp_path / "r", files={"model.onnx": "m"})
    assert (tmp_path / "r").stat().st_mode & 0o777 == folder
    assert (tmp_path / "r" / "model.onnx").stat().st_mode & 0o777 == file
