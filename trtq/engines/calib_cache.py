"""TensorRT calibration cache files (implicit INT8, TensorRT <= 10): the format and a calibrator serving one.

Format (TensorRT's own; one header line, then one line per tensor)::

    TRT-<version>-<Algorithm>
    <tensor name>: <scale as big-endian IEEE-754 float32 bits, 8 hex digits>

with version = major*10000 + minor*100 + patch for TensorRT >= 10 (10.3.0 -> 100300) and
major*1000 + minor*100 + patch for 8.x (8.6.1 -> 8601). The cache is INT8 by definition, so
scale = `trtq.formats.INT8.scale(amax)` (amax / 127). `trtexec --int8 --calib=FILE` and an
IInt8EntropyCalibrator2 whose read_calibration_cache() returns the bytes use it; a header that does not
match the running TensorRT version and algorithm makes TensorRT ignore the file.

TensorRT 11 removed the IInt8Calibrator family; trtq's main path is explicit Q/DQ. Where the running
TensorRT still has the calibrators (10.x, e.g. JetPack 6), an FP32 graph without Q/DQ can be built INT8
from trtq's cache: `make_cache_calibrator` returns a calibrator that serves the file and never asks for
data. Importing this module imports neither tensorrt nor onnx.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from trtq.engines import compat
from trtq.errors import UsageError
from trtq.files import write_text

__all__ = [
    "DEFAULT_CACHE_VERSION",
    "DEFAULT_ALGORITHM",
    "ALGORITHMS",
    "CacheHeader",
    "trt_version_code",
    "parse_trt_cache_header",
    "read_trt_cache_header",
    "write_trt_cache",
    "read_trt_cache",
    "cache_scales",
    "retarget_cache",
    "make_cache_calibrator",
]

#: The TensorRT version written into a cache header unless told otherwise (JetPack 6's TensorRT). The
#: writer, `trtq calibrate --trt-version` and `trtq build` all default to it.
DEFAULT_CACHE_VERSION: tuple[int, int, int] = (10, 3, 0)
#: The header algorithm trtq writes by default; `trtexec --calib` expects it.
DEFAULT_ALGORITHM = "EntropyCalibration2"
#: Algorithm names TensorRT writes in the header.
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")

_HEADER = re.compile(r"^TRT-(\d+)-([A-Za-z0-9_]+)$")
_LINE = re.compile(r"^(.+): ?([0-9A-Fa-f]{1,8})$")
#: Scale written for a zero/negative/non-finite amax: a zero scale produces broken engines.
_MIN_SCALE = 1e-12
#: Old names -> new names (kept for one release).
_DEPRECATED = {"cache_version_number": "trt_version_code", "read_cache_header": "parse_trt_cache_header"}


def _int8() -> Any:
    """The INT8 format; imported on use so that importing this module (the CLI does) stays free of onnx."""
    from trtq.formats import INT8

    return INT8


class CacheHeader(tuple):
    """(version code, algorithm) of a calibration cache; compares equal to the plain tuple."""

    __slots__ = ()

    def __new__(cls, version: int, algorithm: str) -> CacheHeader:
        return super().__new__(cls, (version, algorithm))

    @property
    def version(self) -> int:
        """The NV_TENSORRT_VERSION code (100300 for 10.3.0)."""
        return self[0]

    @property
    def algorithm(self) -> str:
        """The calibrator algorithm ("EntropyCalibration2", ...)."""
        return self[1]


def trt_version_code(version: Sequence[int]) -> int:
    """NV_TENSORRT_VERSION as TensorRT writes it in a cache header (10.3.0 -> 100300; 8.6.1 -> 8601).

    Raises:
        UsageError: `version` is not three non-negative integers.
    """
    if len(version) != 3 or any(int(v) < 0 for v in version):
        raise UsageError(f"TensorRT version must be (major, minor, patch), got {tuple(version)!r}")
    major, minor, patch = (int(v) for v in version)
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def _header(first_line: str, source: str) -> CacheHeader:
    m = _HEADER.match(first_line.strip())
    if not m:
        raise UsageError(
            f"{source} does not start with a TensorRT header: expected a TRT-<version>-<Algorithm> header "
            f"like 'TRT-100300-EntropyCalibration2', got {first_line.strip()[:40]!r}; it is not a TensorRT "
            "calibration cache"
        )
    return CacheHeader(int(m.group(1)), m.group(2))


def parse_trt_cache_header(data: bytes, source: str = "calibration cache") -> CacheHeader:
    """The header of cache bytes (their first line).

    Args:
        data: the cache file's bytes.
        source: how errors name the cache (e.g. "--calib-cache calib.cache").

    Raises:
        UsageError: the first line is not a TensorRT cache header.
    """
    return _header(data.split(b"\n", 1)[0].decode("utf-8", "replace"), source)


def _read_lines(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"calibration cache {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"calibration cache {p} is not a readable text file ({e})") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def read_trt_cache_header(path: str | os.PathLike) -> CacheHeader:
    """(version code, algorithm) from a cache file's header line.

    Raises:
        UsageError: a missing or unreadable file, or no TensorRT header.
    """
    lines = _read_lines(path)
    return _header(lines[0] if lines else "", f"calibration cache {path}")


def _scales(lines: Sequence[str], source: str, *, positive: bool) -> dict[str, float]:
    """tensor -> scale from the lines after the header (line numbers count the header as line 1)."""
    out: dict[str, float] = {}
    for number, line in enumerate(lines, start=2):
        m = _LINE.match(line)
        if not m:
            raise UsageError(f"{source} line {number} is not '<tensor>: <8 hex digits>': {line[:60]!r}")
        name, hexval = m.group(1).strip(), m.group(2).zfill(8)  # some writers drop leading zeros
        scale = struct.unpack(">f", bytes.fromhex(hexval))[0]
        if positive and not (math.isfinite(scale) and scale > 0):
            raise UsageError(f"{source} line {number}: scale of {name!r} is {scale}, not positive")
        if name in out:
            raise UsageError(f"{source} lists tensor {name!r} twice")
        out[name] = scale
    return out


def write_trt_cache(
    path: str | os.PathLike,
    amax: Mapping[str, float],
    trt_version: Sequence[int] = DEFAULT_CACHE_VERSION,
    algorithm: str = DEFAULT_ALGORITHM,
) -> Path:
    """Write per-tensor amax as a TensorRT calibration cache (scale = INT8.scale(amax)), atomically.

    A zero, negative or non-finite amax is written as a tiny positive scale (TensorRT builds broken
    engines from a zero scale).

    Args:
        path: the cache file to write.
        amax: tensor name -> amax, in the order to write.
        trt_version: the TensorRT version that will read the file (it must match exactly).
        algorithm: the calibrator algorithm in the header; trtexec --calib expects EntropyCalibration2.

    Returns:
        The path written.

    Raises:
        UsageError: an unknown algorithm, a malformed version, or a tensor name with a newline.
    """
    if algorithm not in ALGORITHMS:
        raise UsageError(
            f"unknown calibration cache algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}"
        )
    int8 = _int8()
    lines = [f"TRT-{trt_version_code(trt_version)}-{algorithm}"]
    for name, value in amax.items():
        if "\n" in name:
            raise UsageError(
                f"tensor name {name!r} contains a newline and cannot go into a calibration cache"
            )
        v = float(value)
        scale = int8.scale(v) if math.isfinite(v) and v > 0 else _MIN_SCALE
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    return write_text(path, "\n".join(lines) + "\n")


def read_trt_cache(path: str | os.PathLike) -> dict[str, float]:
    """tensor name -> amax (= INT8.amax(scale)) from a TensorRT calibration cache file.

    Accepts hex values with dropped leading zeros (as some writers produce) and colons in tensor names.

    Raises:
        UsageError: missing file, no header, a malformed line, a non-positive or non-finite scale, a
            tensor listed twice.
    """
    lines = _read_lines(path)
    source = f"calibration cache {path}"
    _header(lines[0] if lines else "", source)
    int8 = _int8()
    return {name: float(int8.amax(s)) for name, s in _scales(lines[1:], source, positive=True).items()}


def cache_scales(data: bytes, source: str = "calibration cache") -> dict[str, float]:
    """tensor name -> scale of cache bytes, as written (no positivity check; for reports and tests).

    Raises:
        UsageError: no header or a malformed line.
    """
    parse_trt_cache_header(data, source)
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines()[1:] if ln.strip()]
    return _scales(lines, source, positive=False)


def retarget_cache(data: bytes, version: Sequence[int]) -> tuple[bytes, bool]:
    """Rewrite the header's version to the running TensorRT's; returns (cache, whether it changed).

    TensorRT ignores a cache whose header names another version and then tries to calibrate without
    data. trtq's caches hold explicit scales computed outside TensorRT, valid for any 10.x, so the
    header is set to the running version.
    """
    header = parse_trt_cache_header(data)
    want = trt_version_code(version)
    if header.version == want:
        return data, False
    _, _, rest = data.partition(b"\n")
    return f"TRT-{want}-{header.algorithm}\n".encode() + rest, True


def make_cache_calibrator(cache: bytes | Path, trt: ModuleType | None = None) -> Any:
    """An implicit INT8 calibrator that serves `cache` and never asks for batches (TensorRT 10 only).

    Args:
        cache: the cache bytes, or the path of a cache file.
        trt: the tensorrt module (default: imported through `trtq.engines.compat`).

    Raises:
        UsageError: a missing file, no TensorRT header, an algorithm without a calibrator class, or a
            TensorRT without calibrators (11.x).
    """
    trt = trt or compat.import_tensorrt()
    source = f"--calib-cache {cache}" if isinstance(cache, Path) else "calibration cache"
    if isinstance(cache, Path):
        if not cache.is_file():
            raise UsageError(f"--calib-cache {cache} does not exist; write it with trtq's calibration step")
        cache = cache.read_bytes()
    header = parse_trt_cache_header(cache, source)
    base = compat.legacy_calibrator_base(header.algorithm, trt)
    data, _ = retarget_cache(cache, compat.trt_version(trt))

    class CacheCalibrator(base):  # type: ignore[misc, valid-type]
        """Serves a stored cache; TensorRT then needs no calibration data."""

        def __init__(self) -> None:
            base.__init__(self)
            self._cache = data

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return self._cache

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return CacheCalibrator()


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"trtq.engines.calib_cache.{name} is deprecated; use {new} (removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module 'trtq.engines.calib_cache' has no attribute {name!r}")
