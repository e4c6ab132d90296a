"""Checks before any work: may this run folder be made, or replaced with `--force`? And one-line messages for
file-system failures (no space, read-only, no permission)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trtq.errors import TrtqError, UsageError, option_hint, option_name
from trtq.rundir.marker import MARKER, read_marker

__all__ = [
    "check_out_folder",
    "foreign_entries",
    "listing",
    "os_error_message",
    "existing_parent",
    "FS_ERRNOS",
]

#: errno values that mean "this folder cannot take the run" (turned into one line naming the folder).
FS_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def listing(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _protected(out: Path) -> str | None:
    """Why `out` must never be replaced (None when it may be)."""
    absolute = Path(os.path.abspath(out))
    try:
        real = absolute.resolve()
    except OSError:
        real = absolute
    cwd = Path.cwd().resolve()
    try:
        home: Path | None = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        home = None
    if real == Path(real.anchor):
        return "is the root folder"
    if real == cwd:
        return "is the current folder"
    if real in cwd.parents:
        return "is a parent of the current folder"
    if home is not None and real == home:
        return "is your home folder"
    if home is not None and real in home.parents:
        return "is a parent of your home folder"
    return None


def check_out_folder(
    out: str | os.PathLike, force: bool, *, inputs: Iterable[Any] = (), option: str = "--out"
) -> None:
    """Refuse, before any work, a run folder that cannot be (re)placed safely.

    Args:
        out: the run folder.
        force: replace an earlier trtq run there.
        inputs: the run's input paths (model, data, caches); none may lie inside a folder being replaced.
        option: how the folder is named in messages.

    Raises:
        UsageError: `out` is a file or a link, a protected folder, not trtq's, holds files trtq did not write,
            holds an input, or is an earlier run and `force` is not set.
    """
    out = Path(out)
    if out.is_symlink():
        raise UsageError(f"{option} {out} is a symbolic link; give the folder it points to, or a new folder")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out} is a file, not a folder; choose a folder path")
    why = _protected(out)
    if why is not None:
        raise UsageError(f"{option} {out} {why}; trtq writes a run folder of its own: give a new folder name")
    if not out.exists():
        return
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    marker = read_marker(out)
    if marker is None:
        raise UsageError(
            f"{option} {out} already exists and holds files trtq did not write ({listing(entries)}); "
            f"{option_name('force')} replaces only folders trtq made: choose a new folder"
        )
    if not force:
        raise UsageError(
            f"{option} {out} holds an earlier trtq run; {option_hint('force')} to replace it, or choose another folder"
        )
    foreign = foreign_entries(out)
    if foreign:
        raise UsageError(
            f"{option} {out} holds files trtq did not write ({listing(foreign)}), which replacing it would "
            "delete; move them away or choose another folder"
        )
    real = out.resolve()
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)) or not str(item):
            continue
        p = Path(item)
        if p.exists() and (p.resolve() == real or real in p.resolve().parents):
            raise UsageError(
                f"{p} is an input of this run but lies inside {option} {out}, which the run replaces; "
                "copy it elsewhere or choose another folder"
            )


def foreign_entries(folder: Path) -> set[str]:
    """Entries of `folder` trtq did not write (all of them when it has no marker)."""
    entries = {p.name for p in folder.iterdir()}
    marker = read_marker(folder)
    return entries if marker is None else entries - set(marker.files) - {MARKER}


# errors of the file system ---------------------------------------------------------------------------------
class FileSystemError(TrtqError):
    """A write failed because the folder is full, read-only or not writable (one line; `errno` says which)."""

    def __init__(self, message: str, errno_: int | None, folder: Path | None) -> None:
        super().__init__(message)
        self.errno, self.folder = errno_, folder


def _user_folder(p: Path) -> Path:
    """The folder to name: a staging folder's parent (the staging folder is gone by the time the user reads it)."""
    import re

    return p.parent if re.match(r"^\..+\.partial-\d+\.\d+-[0-9a-f]+$", p.name) else p


def os_error_message(
    e: OSError, where: str | os.PathLike | None = None, *, written: int | None = None
) -> str:
    """One line for a file-system failure: what failed, where, and what to do (free space, permissions).

    Args:
        e: the error.
        where: the file or folder being written (default: the error's file name).
        written: bytes the run had written when the disk filled (said in the message).
    """
    place = Path(where) if where is not None else Path(e.filename) if e.filename else None
    folder = place if place is not None and place.is_dir() else place.parent if place is not None else None
    folder = _user_folder(folder) if folder is not None else None
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        free = ""
        if folder is not None:
            with contextlib.suppress(OSError):
                free = f"{shutil.disk_usage(existing_parent(folder)).free / 2**20:.1f} MiB free"
        done = f"the run had written {written / 2**20:.1f} MiB when it ran out, " if written else ""
        detail = f" ({done}{free})" if done or free else ""
        return f"no space left on the device of {folder}{detail}; free some space or choose another --out"
    if e.errno == errno.EROFS:
        return f"{folder} is on a read-only file system; choose a writable --out"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {folder}; choose a folder you can write to"
    reason = e.strerror or type(e).__name__
    return f"could not write {place}: {reason}" if place is not None else f"a file operation failed: {reason}"


def existing_parent(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
