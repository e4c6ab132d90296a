"""Writing artifacts safely: temporary file then rename, never a half-written file, never a silent overwrite."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
    """Yield a temporary path beside `path`; on success rename it over `path`, on any error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, force: bool) -> Iterator[Path]:
    """A hidden staging folder that becomes `out` on success and disappears on any failure."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; choose a folder path")
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"output folder {out} already exists and is not empty; pass --force to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


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
    """Refuse to overwrite an existing user file unless force is set."""
    p = Path(path)
    if p.exists() and not force:
        raise UsageError(f"{p} already exists; pass --force to overwrite it or choose another path")


def prepare_out_dir(out: str | os.PathLike, force: bool) -> Path:
    """Create a run folder; refuse a non-empty existing one unless force (then clear trtq's own files)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; choose a folder path")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageError(
                f"output folder {out} already exists and is not empty; pass --force to overwrite it"
            )
        for child in out.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out
