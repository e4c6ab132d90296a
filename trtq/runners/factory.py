"""`make_runner`: the right runner for an artifact, chosen by what it is.

An ONNX model (a path ending in .onnx, a `ModelProto`, or its serialized bytes) runs in ONNX Runtime;
a serialized TensorRT engine (a path ending in .plan, .engine or .trt) runs in TensorRT. The TensorRT
runner module is imported only when an engine is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnx

from trtq.errors import UsageError
from trtq.runners.base import BaseRunner

__all__ = ["make_runner", "ONNX_SUFFIXES", "ENGINE_SUFFIXES"]

#: File suffixes run by ONNX Runtime.
ONNX_SUFFIXES = (".onnx",)
#: File suffixes run by TensorRT (serialized engines).
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")

_ACCEPTED = "give .onnx, .plan or .engine (or .trt)"


def _onnx_runner(model: str | os.PathLike | bytes | onnx.ModelProto, **kwargs: Any) -> BaseRunner:
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(model, **kwargs)


def make_runner(
    artifact: str | os.PathLike | bytes | onnx.ModelProto,
    *,
    threads: int | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> BaseRunner:
    """A runner for an artifact: ONNX -> ONNX Runtime (CPU), serialized engine -> TensorRT (GPU).

    The runner is returned inactive; use it as a context manager.

    Args:
        artifact: a path to an .onnx / .plan / .engine / .trt file, an `onnx.ModelProto`, or the bytes of
            a serialized ONNX model.
        threads: ONNX Runtime intra-op threads (ignored for engines).
        name: the runner's name (default: the file name; "onnxruntime" for in-memory models).
        **kwargs: passed to the runner's constructor (`OnnxRuntimeRunner` or `TensorRTRunner`).

    Returns:
        An `OnnxRuntimeRunner` or a `TensorRTRunner`.

    Raises:
        UsageError: the file does not exist, has another suffix, or the bytes are not an ONNX model.
    """
    if isinstance(artifact, onnx.ModelProto):
        return _onnx_runner(artifact, threads=threads, name=name or "onnxruntime", **kwargs)
    if isinstance(artifact, (bytes, bytearray)):
        try:
            parsed = onnx.load_from_string(bytes(artifact))
        except Exception:  # protobuf raises DecodeError (and others) on non-ONNX bytes
            parsed = None
        if parsed is None or not parsed.HasField("graph"):
            raise UsageError(
                f"the {len(artifact)} bytes given are not a serialized ONNX model; give an engine as a "
                ".plan/.engine/.trt path"
            )
        return _onnx_runner(bytes(artifact), threads=threads, name=name or "onnxruntime", **kwargs)
    if not isinstance(artifact, (str, os.PathLike)):
        raise UsageError(f"cannot run a {type(artifact).__name__}; {_ACCEPTED} file, or an onnx.ModelProto")
    path = Path(artifact)
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return _onnx_runner(path, threads=threads, name=name or path.name, **kwargs)
    if suffix in ENGINE_SUFFIXES:
        from trtq.runners.tensorrt import TensorRTRunner

        return TensorRTRunner(path, name=name or path.name, **kwargs)
    raise UsageError(f"{path}: cannot run a {suffix or 'suffix-less'} file; {_ACCEPTED}")
