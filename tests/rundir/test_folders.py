"""Run folders: the marker, --force only over trtq's own folders, the one-rename swap, stale staging folders,
modes under the umask, full and read-only file systems (trtq.rundir)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trtq.errors import TrtqError, UsageError, set_cli
from trtq.files import write_json, write_text
from trtq.rundir import (
    MARKER,
    clean_stale,
    finish_in_place,
    open_runs,
    prepare_out_dir,
    read_marker,
    remove_run_folder,
    staged_dir,
)
from trtq.rundir.marker import start_ticks


def _run(out: Path, force: bool = False, files: dict[str, str] | None = None, **kw: object) -> None:
    with staged_dir(out, force, **kw) as staging:  # type: ignore[arg-type]
        for name, text in (files or {"report.md": "new"}).items():
            write_text(staging / name, text)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_run_folder_carries_the_marker_listing_what_trtq_wrote(tmp_path: Path) -> None:
    _run(tmp_path / "r", files={"a.json": "{}", "b.onnx": "x"}, command="build")
    marker = read_marker(tmp_path / "r")
    assert marker is not None and marker.state == "complete" and marker.command == "build"
    assert marker.files == ["a.json", "b.onnx"] and marker.pid == os.getpid()
    assert json.loads((tmp_path / "r" / MARKER).read_text())["format"] == "trtq.run/1"
    assert _hidden(tmp_path) == []  # no staging folder left beside it


def test_force_never_touches_a_folder_trtq_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    os.chmod(out, 0o755)
    with pytest.raises(UsageError, match=r"mine\.txt.*replaces only folders trtq made"):
        _run(out, force=True)
    assert (out / "mine.txt").read_text() == "user data" and sorted(os.listdir(out)) == ["mine.txt"]
    assert out.stat().st_mode & 0o777 == 0o755 and _hidden(tmp_path) == []


def test_force_refuses_a_trtq_folder_holding_a_users_file_and_names_it(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"notes\.txt"):
        _run(out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.md").read_text() == "new"


def test_an_earlier_run_needs_force_and_the_message_fits_the_caller(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out)
    with pytest.raises(UsageError, match=r"pass force=True"):  # the Python API
        _run(out)
    set_cli(True)
    try:
        with pytest.raises(UsageError, match=r"pass --force"):
            _run(out)
    finally:
        set_cli(False)


def test_force_refuses_a_folder_that_holds_an_input_of_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out, files={"model.onnx": "m"})
    with pytest.raises(UsageError, match=r"model\.onnx is an input of this run but lies inside"):
        _run(out, force=True, inputs=[str(out / "model.onnx"), None])


def test_the_earlier_run_stays_until_the_new_one_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out, files={"report.md": "old"})
    with pytest.raises(RuntimeError), staged_dir(out, True) as staging:
        write_text(staging / "report.md", "half")
        assert (out / "report.md").read_text() == "old"  # still there while the new run is written
        raise RuntimeError("stage failed")
    assert (out / "report.md").read_text() == "old" and _hidden(tmp_path) == []
    inode = out.stat().st_ino
    _run(out, force=True, files={"report.md": "new", "extra.json": "{}"})
    assert (out / "report.md").read_text() == "new" and read_marker(out).files == ["extra.json", "report.md"]
    assert out.stat().st_ino != inode and _hidden(tmp_path) == []  # swapped in, the old one removed


def test_remove_run_folder_deletes_only_what_the_marker_lists(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out)
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
    _run(out)  # a run removes them itself
    assert (out / "report.md").exists() and not dead.exists()


def test_in_place_folders_record_every_artifact_written_into_them(tmp_path: Path) -> None:
    out = tmp_path / "qat"
    prepare_out_dir(out, False, command="qat")
    write_json(out / "metrics.json", {"a": 1})
    write_text(out / "checkpoints" / "last.pt", "w")
    _run(out / "run")  # a staged run inside it (QAT's run/): recorded once in place, its staging folder never
    marker = read_marker(out)
    assert marker.state == "in-place" and marker.files == ["checkpoints", "metrics.json", "run"]
    assert open_runs() == [out.resolve()]  # an interruption now reports it as incomplete
    finish_in_place(out)
    assert read_marker(out).state == "complete" and open_runs() == []
    prepare_out_dir(out, True)  # an earlier in-place run is trtq's: replaced
    assert os.listdir(out) == [MARKER]
    (out / "mine.txt").write_text("x")
    with pytest.raises(UsageError, match=r"mine\.txt"):
        prepare_out_dir(out, True)


def test_a_full_disk_is_one_line_with_the_free_space_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Path.write_text

    def full(self: Path, *a: object, **k: object) -> int:
        if self.name.startswith(".model.onnx"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(
        TrtqError, match=r"no space left on the device of .* MiB free\); free some space"
    ) as e:
        _run(tmp_path / "r", files={"report.md": "x", "model.onnx": "m"})
    assert "\n" not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == []


def test_a_read_only_folder_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.mkdir

    def read_only(self: Path, *a: object, **k: object) -> None:
        if ".partial-" in self.name:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(
        TrtqError, match=rf"{tmp_path} is on a read-only file system; choose a writable --out"
    ):
        _run(tmp_path / "r")
