"""Making, replacing and removing run folders (see `trtq.rundir`)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trtq.errors import TrtqError
from trtq.rundir.checks import (
    FS_ERRNOS,
    FileSystemError,
    check_out_folder,
    existing_parent,
    foreign_entries,
    listing,
    os_error_message,
)
from trtq.rundir.marker import MARKER, RunMarker, alive, command_name, folder_mode, read_marker, start_ticks

__all__ = ["staged_dir", "prepare_out_dir", "remove_run_folder", "clean_stale", "note_written", "record", "open_runs",
           "STAGING_NAME"]  # fmt: skip

#: name of a staging folder: .NAME.partial-PID.START-RANDOM
STAGING_NAME = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)\.(?P<start>\d+)-[0-9a-f]+$")
#: Folders of this process written in place (`prepare_out_dir`): root -> marker (their files are recorded
#: as they are written).
_OPEN: dict[Path, RunMarker] = {}


def _size(folder: Path) -> int:
    """Bytes of the files under `folder` (0 where it cannot be read)."""
    total = 0
    for p in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(mode=0o700)
        os.chmod(path, folder_mode())
    except OSError as e:
        raise TrtqError(os_error_message(e, path.parent)) from None


def _make_parent(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrtqError(os_error_message(e, existing_parent(parent))) from None


# removing -------------------------------------------------------------------------------------------------
def remove_run_folder(path: str | os.PathLike, *, staging: bool = False) -> bool:
    """Delete a run folder trtq made: what its marker lists, the marker, then the folder if empty.

    Args:
        path: the folder.
        staging: the folder is a staging folder trtq made in this run (everything in it is trtq's).

    Returns:
        True when the folder is gone; False when something trtq did not write kept it (left in place).
    """
    path = Path(path)
    if not path.is_dir():
        return True
    marker = read_marker(path)
    if staging:
        if not STAGING_NAME.match(path.name):
            raise TrtqError(f"refusing to delete {path}: not a trtq staging folder")
        names = [p.name for p in path.iterdir()]
    else:
        if marker is None:
            raise TrtqError(f"refusing to delete {path}: it has no {MARKER} marker, so trtq did not make it")
        names = [*marker.files, MARKER]
    for name in names:
        child = path / name
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
    try:
        path.rmdir()
    except OSError:
        return False
    return True


def clean_stale(out: str | os.PathLike, note: Any = None) -> list[Path]:
    """Remove staging folders of `out` left by runs that were killed (their process is gone).

    A folder is removed only when its name is a staging name of `out`, it carries trtq's marker, it was made
    on this host, and the process it names is no longer running (an empty one needs no marker).

    Returns:
        The folders removed.
    """
    out = Path(os.path.abspath(out))
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    host = socket.gethostname()
    for p in out.parent.iterdir():
        m = STAGING_NAME.match(p.name)
        if not m or m.group("name") != out.name or not p.is_dir() or p.is_symlink():
            continue
        pid, start = int(m.group("pid")), int(m.group("start"))
        if alive(pid, start):
            continue
        marker = read_marker(p)
        empty = not any(p.iterdir())
        if (marker is None or marker.host != host) and not empty:
            continue
        if remove_run_folder(p, staging=True):
            removed.append(p)
            if note is not None:
                note(f"removed {p}, the staging folder of an interrupted run (process {pid})")
    return removed


# replacing ------------------------------------------------------------------------------------------------
def _staging_name(out: Path) -> Path:
    pid = os.getpid()
    return out.parent / f".{out.name}.partial-{pid}.{start_ticks(pid)}-{secrets.token_hex(3)}"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one rename (Linux renameat2 RENAME_EXCHANGE); False where not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove_earlier(old: Path, out: Path) -> None:
    """Remove an earlier run moved aside to `old` (an empty folder, or one with trtq's marker)."""
    if not any(old.iterdir()):
        old.rmdir()
    elif not remove_run_folder(old):
        raise TrtqError(
            f"the new run is in {out}, but the earlier run left files trtq did not write in {old}"
        )


def _install(staging: Path, out: Path) -> None:
    """Put the finished `staging` folder at `out`; an earlier run there is removed afterwards."""
    if not out.exists():
        os.rename(staging, out)
    else:
        foreign = foreign_entries(out)
        if foreign:
            raise TrtqError(
                f"the new run is complete in {staging}, but {out} now holds files trtq did not write "
                f"({listing(foreign)}); move them away and rename {staging.name} to {out.name} yourself"
            )
        if _exchange(staging, out):
            old = staging  # the earlier run now sits at the staging path
        else:
            old = _staging_name(out)
            os.rename(out, old)
            os.rename(staging, out)
        _remove_earlier(old, out)
    note_written(out)


@contextlib.contextmanager
def staged_dir(
    out: str | os.PathLike, force: bool, *, command: str | None = None, inputs: Iterable[Any] = ()
) -> Iterator[Path]:
    """A hidden staging folder that becomes `out` when the block succeeds and disappears when it fails.

    Args:
        out: the run folder.
        force: replace an earlier trtq run at `out` (see `check_out_folder`).
        command: recorded in the marker (default: the trtq command running, or "python").
        inputs: the run's input paths (refused inside a folder being replaced).

    Raises:
        UsageError: see `check_out_folder`.
        TrtqError: the folder cannot be made or written (read-only, no space, no permission): one line naming
            the folder; or the finished run could not be moved into place (it is kept, and the message says
            where).
    """
    out = Path(out)
    check_out_folder(out, force, inputs=inputs)
    absolute = Path(os.path.abspath(out))
    _make_parent(absolute.parent)
    from trtq.progress import note

    clean_stale(absolute, note=note)
    staging = _staging_name(absolute)
    _make_folder(staging)
    marker = RunMarker.new(command or command_name(), "staging")
    try:
        marker.write(staging)
        yield staging
        marker.state = "complete"
        marker.files = sorted(p.name for p in staging.iterdir() if p.name != MARKER)
        marker.write(staging)
    except BaseException as e:
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        written = _size(staging) if full else None
        remove_run_folder(staging, staging=True)
        if isinstance(e, (OSError, FileSystemError)) and getattr(e, "errno", None) in FS_ERRNOS:
            fake = OSError(e.errno, getattr(e, "strerror", None) or str(e))
            raise TrtqError(os_error_message(fake, staging, written=written)) from None
        raise
    try:
        _install(staging, absolute)
    except OSError as e:
        raise TrtqError(
            f"the new run is complete in {staging} but could not be moved to {out}: {os_error_message(e)}"
        ) from None


def prepare_out_dir(
    out: str | os.PathLike, force: bool, *, command: str | None = None, inputs: Iterable[Any] = ()
) -> Path:
    """Make a run folder written in place (QAT, the demo); an earlier trtq run there is replaced.

    The folder gets the marker at once; every artifact written into it through `trtq.files` is recorded in
    the marker, so a later `--force` knows exactly what trtq wrote. A run written in place cannot keep the
    earlier run until it finishes: the earlier one is removed here.
    """
    out = Path(out)
    check_out_folder(out, force, inputs=inputs)
    absolute = Path(os.path.abspath(out))
    _make_parent(absolute.parent)
    if absolute.exists():
        old = _staging_name(absolute)
        os.rename(absolute, old)
        _remove_earlier(old, absolute)
    _make_folder(absolute)
    marker = RunMarker.new(command or command_name(), "in-place")
    try:
        marker.write(absolute)
    except OSError as e:
        raise TrtqError(os_error_message(e, absolute)) from None
    _OPEN[absolute] = marker
    return out


def record(path: str | os.PathLike) -> None:
    """Record `path` (inside a folder from `prepare_out_dir`) as trtq's, before anything is written in it."""
    note_written(path)


def note_written(path: str | os.PathLike) -> None:
    """Record a file written inside a folder made by `prepare_out_dir` in that folder's marker."""
    if not _OPEN:
        return
    absolute = Path(os.path.abspath(path))
    for root, marker in list(_OPEN.items()):
        if root in absolute.parents:
            top = absolute.relative_to(root).parts[0]
            if top != MARKER and top not in marker.files and not STAGING_NAME.match(top):
                marker.files.append(top)
                marker.files.sort()
                if root.is_dir():
                    marker.write(root)


def finish_in_place(out: str | os.PathLike) -> None:
    """Close a folder from `prepare_out_dir` once its run is complete: its marker says so, and an interruption
    of this process later no longer reports it as incomplete."""
    absolute = Path(os.path.abspath(out))
    marker = _OPEN.pop(absolute, None)
    if marker is not None and absolute.is_dir():
        marker.state = "complete"
        marker.write(absolute)


def open_runs() -> list[Path]:
    """Folders this process is writing in place (what an interrupted run leaves behind)."""
    return [p for p in _OPEN if p.is_dir()]
