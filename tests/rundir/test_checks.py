"""`trtq.rundir.checks`: --force replaces only trtq's own folders (never the current folder, its parents, home or
root, nor one holding an input), messages that fit the caller, and one-line errors for full and read-only disks."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.rundir.cases import hidden, run
from trtq.errors import TrtqError, UsageError, set_cli
from trtq.rundir import check_out_folder


def test_force_never_touches_a_folder_trtq_did_not_make(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    os.chmod(out, 0o755)
    with pytest.raises(UsageError, match=r"mine\.txt.*replaces only folders trtq made"):
        run(out, force=True)
    assert (out / "mine.txt").read_text() == "user data" and sorted(os.listdir(out)) == ["mine.txt"]
    assert out.stat().st_mode & 0o777 == 0o755 and hidden(tmp_path) == []


def test_force_refuses_a_trtq_folder_holding_a_users_file_and_names_it(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"notes\.txt"):
        run(out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.md").read_text() == "new"


def test_an_earlier_run_needs_force_and_the_message_fits_the_caller(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run(out)
    with pytest.raises(UsageError, match=r"pass force=True"):  # the Python API
        run(out)
    set_cli(True)
    try:
        with pytest.raises(UsageError, match=r"pass --force"):
            run(out)
    finally:
        set_cli(False)


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


def test_force_refuses_a_folder_that_holds_an_input_of_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run(out, files={"model.onnx": "m"})
    with pytest.raises(UsageError, match=r"model\.onnx is an input of this run but lies inside"):
        run(out, force=True, inputs=[str(out / "model.onnx"), None])


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
        run(tmp_path / "r", files={"report.md": "x", "model.onnx": "m"})
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
        run(tmp_path / "r")
