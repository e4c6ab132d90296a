"""trtq.rundir.checks: which run folders may be made or replaced, and one-line file-system errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from trtq.errors import UsageError
from trtq.rundir.checks import check_out_folder, existing_parent, foreign_entries, listing, os_error_message
from trtq.rundir.marker import RunMarker


@pytest.mark.parametrize("which", ["cwd", "parent", "home", "root"])
def test_force_never_replaces_the_current_folder_its_parents_home_or_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    (work / "precious.txt").write_text("x")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = {"cwd": Path("."), "parent": Path(".."), "home": tmp_path / "home", "root": Path("/")}[which]
    why = {"cwd": "is the current folder", "parent": "is a parent of the current folder",
           "home": "is your home folder", "root": "is the root folder"}[which]  # fmt: skip
    with pytest.raises(UsageError, match=why):
        check_out_folder(out, True)
    assert (work / "precious.txt").read_text() == "x"


def test_a_new_or_empty_folder_is_fine_and_a_file_or_link_is_refused(tmp_path: Path) -> None:
    check_out_folder(tmp_path / "new", False)
    (tmp_path / "empty").mkdir()
    check_out_folder(tmp_path / "empty", False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match=r"--out .*f is a file, not a folder"):
        check_out_folder(tmp_path / "f", True)
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(UsageError, match="is a symbolic link"):
        check_out_folder(tmp_path / "link", True, option="--qat-out")


def test_foreign_entries_are_what_the_marker_does_not_list(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "mine.txt").write_text("x")
    assert foreign_entries(tmp_path) == {"a.json", "mine.txt"}  # no marker: nothing is trtq's
    RunMarker(command="build", state="complete", files=["a.json"]).write(tmp_path)
    assert foreign_entries(tmp_path) == {"mine.txt"}


def test_listing_names_a_few_and_counts_the_rest() -> None:
    assert listing(["b", "a"]) == "a, b"
    assert listing([f"f{i}" for i in range(8)], limit=3) == "f0, f1, f2 and 5 more"


def test_file_system_errors_are_one_line_naming_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "run" / "model.onnx"
    full = os_error_message(OSError(errno.ENOSPC, "No space left", str(target)), written=3 * 2**20)
    assert full.startswith(f"no space left on the device of {tmp_path / 'run'} (the run had written 3.0 MiB")
    assert "MiB free" in full and "\n" not in full
    assert os_error_message(OSError(errno.EROFS, "ro"), tmp_path) == (
        f"{tmp_path} is on a read-only file system; choose a writable --out"
    )
    assert "no permission to write in" in os_error_message(OSError(errno.EACCES, "denied", str(target)))
    staging = tmp_path / ".run.partial-12.34-abc123"
    assert f"{tmp_path} is on a read-only" in os_error_message(OSError(errno.EROFS, "ro"), staging / "x")
    assert os_error_message(OSError(errno.EIO, "I/O error")) == "a file operation failed: I/O error"


def test_existing_parent_walks_up_to_a_folder_that_exists(tmp_path: Path) -> None:
    assert existing_parent(tmp_path / "a" / "b" / "c") == tmp_path
    assert existing_parent(tmp_path) == tmp_path
    assert os.path.isdir(existing_parent(Path("/no/such/place")))
