"""ONNX models above protobuf's 2 GB limit: external data from export to engine.

A protobuf message cannot be serialized past 2 GiB, so a large model cannot become one `.onnx` file, one
`SerializeToString()` for ONNX Runtime, or one in-memory `onnx.checker` call. trtq keeps such models in memory as
usual (a ModelProto holds them fine) and, wherever they leave memory, writes the weights to one external data
file beside the graph, `<name>.data` (ONNX's external data format, which ONNX Runtime, the ONNX checker and
TensorRT's `parse_from_file` all read):

- `save_onnx`: the artifact (`model.onnx` + `model.onnx.data`), both written atomically;
- `session_input`: what ONNX Runtime gets (bytes, or a temporary file pair for large models);
- `check_onnx`, `infer_shapes`: the checker and shape inference on large models (a file, or a weightless copy).

"Large" means the initializers hold more than `external_data_threshold()` bytes: 2 GiB less a margin for the
graph itself, or `TRTQ_EXTERNAL_DATA_THRESHOLD` (bytes; tests set it low to send small models down this path).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PROTOBUF_LIMIT",
    "external_data_threshold",
    "tensor_bytes",
    "is_large",
    "save_onnx",
    "data_file",
    "session_input",
    "check_onnx",
    "check_onnx_file",
    "infer_shapes",
]

PROTOBUF_LIMIT = 2**31 - 1
_MARGIN = 64 << 20  # room for the graph besides the weights
#: initializers smaller than this stay inline even in a model with external data (shapes, scales)
_INLINE_BYTES = 1024


def external_data_threshold() -> int:
    """Initializer bytes above which a model is written with external data."""
    env = os.environ.get("TRTQ_EXTERNAL_DATA_THRESHOLD")
    return int(env) if env else PROTOBUF_LIMIT - _MARGIN


def _nbytes(t: Any) -> int:
    if t.raw_data:
        return len(t.raw_data)
    return t.ByteSize()


def tensor_bytes(model: Any) -> int:
    """Bytes held by the main graph's initializers (what decides external data)."""
    return sum(_nbytes(t) for t in model.graph.initializer)


def is_large(model: Any) -> bool:
    """Whether `model` must leave memory with external data."""
    return tensor_bytes(model) > external_data_threshold()


def data_file(path: str | os.PathLike) -> Path:
    """The external data file of an ONNX file: `model.onnx` -> `model.onnx.data`."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def _raw(t: Any) -> bytes:
    if t.raw_data:
        return bytes(t.raw_data)
    from onnx import numpy_helper

    return numpy_helper.to_array(t).tobytes()


def _big(model: Any) -> list[Any]:
    return [t for t in model.graph.initializer if t.data_location != 1 and _nbytes(t) >= _INLINE_BYTES]


@contextlib.contextmanager
def _weightless(model: Any, location: str) -> Iterator[list[tuple[Any, bytes]]]:
    """Temporarily point every large initializer at `location` (offsets in order) without its data in the proto.

    Yields (tensor, bytes) in file order; the model is restored on exit, whatever happens.
    """
    import onnx

    moved: list[tuple[Any, bytes, Any]] = []
    offset = 0
    try:
        for t in _big(model):
            data = _raw(t)
            saved = onnx.TensorProto()
            saved.CopyFrom(t)
            t.ClearField("raw_data")
            for fld in (
                "float_data",
                "int32_data",
                "int64_data",
                "double_data",
                "uint64_data",
                "string_data",
            ):
                t.ClearField(fld)
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(data)))):
                entry = t.external_data.add()
                entry.key, entry.value = k, v
            moved.append((t, data, saved))
            offset += len(data)
            pad = (-offset) % 4096  # page-aligned, as onnx's own writer does
            offset += pad
        yield [(t, d) for t, d, _ in moved]
    finally:
        for t, _, saved in moved:
            t.CopyFrom(saved)


def _write_pair(model: Any, path: Path) -> None:
    from trtq.files import atomic_path

    data_path = data_file(path)
    with _weightless(model, data_path.name) as tensors:
        with atomic_path(data_path) as tmp, open(tmp, "wb") as f:
            for _, data in tensors:
                f.write(data)
                f.write(b"\0" * ((-f.tell()) % 4096))
        with atomic_path(path) as tmp:
            tmp.write_bytes(model.SerializeToString(deterministic=True))


def save_onnx(model: Any, path: str | os.PathLike) -> Path:
    """Save atomically: weights inline, or in `<name>.data` beside it when the model is large."""
    from trtq.files import write_bytes

    path = Path(path)
    if is_large(model):
        _write_pair(model, path)
        return path
    return write_bytes(path, model.SerializeToString(deterministic=True))


@contextlib.contextmanager
def session_input(model: Any) -> Iterator[bytes | str]:
    """What to hand ONNX Runtime (or a parser): the serialized model, or for a large one a temporary file path."""
    if not is_large(model):
        yield model.SerializeToString()
        return
    with tempfile.TemporaryDirectory(prefix="trtq-large-") as tmp:
        path = Path(tmp) / "model.onnx"
        _write_pair(model, path)
        yield str(path)


def check_onnx_file(path: str | os.PathLike, full_check: bool = False) -> None:
    """`onnx.checker` on a file (external data beside it is read from the file, any size)."""
    import onnx

    onnx.checker.check_model(str(path), full_check=full_check)


def check_onnx(model: Any, full_check: bool = False) -> None:
    """`onnx.checker.check_model` for a model of any size."""
    import onnx

    if not is_large(model):
        onnx.checker.check_model(model, full_check=full_check)
        return
    with session_input(model) as path:
        check_onnx_file(path, full_check=full_check)


def infer_shapes(model: Any, **kwargs: Any) -> Any:
    """`onnx.shape_inference.infer_shapes` for a model of any size.

    A large model is inferred on a weightless copy (its initializers point at a file that is never read); the
    result carries the inferred `value_info` and must not be used for its weights.
    """
    import onnx

    if not is_large(model):
        return onnx.shape_inference.infer_shapes(model, **kwargs)
    with _weightless(model, "weights.not-read"):
        skeleton = onnx.ModelProto()
        skeleton.CopyFrom(model)
    return onnx.shape_inference.infer_shapes(skeleton, **kwargs)
