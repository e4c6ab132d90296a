"""Writing artifacts safely: temporary file then rename, never a half-written file, never a silent overwrite.

Files get the mode the umask asks for (0644 with the usual 022), a full disk, a read-only file system or a
missing permission become one line naming the folder (`TrtqError`), and run folders are made, replaced and
removed by `trtq.rundir` (re-exported here as `staged_dir` and `prepare_out_dir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trtq.errors import UsageError

__all__ = [
    "staged_dir",
    "atomic_path",
    "write_bytes",
    "write_text",
    "write_json",
    "save_onnx",
    "prepare_out_dir",
    "check_writable",
    "json_default",
    "dumps_json",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on any error remove it.

    Raises:
        trtq.rundir.checks.FileSystemError (a TrtqError): the folder is full, read-only or not writable (one line
            naming it and the free space).
    """
    from trtq.rundir import FS_ERRNOS, file_mode, note_written, os_error_message
    from trtq.rundir.checks import FileSystemError

    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, path)
    except BaseException as e:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in FS_ERRNOS:
            raise FileSystemError(os_error_message(e, path.parent), e.errno, path.parent) from None
        raise
    note_written(path)


def staged_dir(out: str | os.PathLike, force: bool, **kwargs: Any) -> Any:
    """`trtq.rundir.staged_dir`: a hidden staging folder that becomes `out` only when the run succeeds."""
    from trtq.rundir import staged_dir as _staged

    return _staged(out, force, **kwargs)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON a strict parser reads: NaN and infinities become null."""
    return write_text(path, dumps_json(obj) + "\n")


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """`json.dumps` with numpy values, paths, and NaN/infinity written as null (strict JSON)."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=False, default=json_default, allow_nan=False)


def _finite(obj: Any) -> Any:
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():  # numpy scalar
        return _finite(obj.item())
    return obj


def json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_onnx(model: Any, path: str | os.PathLike) -> Path:
    """Save an onnx.ModelProto atomically: weights inline, or above protobuf's 2 GB limit in `<name>.data` beside
    it (`trtq.onnx_io`)."""
    from trtq.onnx_io import save_onnx as save

    return save(model, path)


def check_writable(path: str | os.PathLike, force: bool) -> None:
    """Refuse to overwrite an existing file unless force is set; never replace a folder with a file."""
    from trtq.errors import option_hint

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p} is a folder; give a file path")
    if p.exists() and not force:
        raise UsageError(f"{p} already exists; {option_hint('force')} to overwrite it or choose another path")


def prepare_out_dir(out: str | os.PathLike, force: bool, **kwargs: Any) -> Path:
    """`trtq.rundir.prepare_out_dir`: a run folder written in place, with trtq's marker."""
    from trtq.rundir import prepare_out_dir as _prepare

    return _prepare(out, force, **kwargs)
