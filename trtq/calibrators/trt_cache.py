"""TensorRT calibration cache files (implicit INT8, TensorRT <= 10): write ours, read anyone's.

Format (one header line, then one line per tensor)::

    TRT-<version>-<Algorithm>
    <tensor name>: <scale as big-endian IEEE-754 float32 bits, 8 hex digits>

with version = major*10000 + minor*100 + patch for TensorRT >= 10 (10.3.0 -> 100300) and
major*1000 + minor*100 + patch for 8.x (8.6.1 -> 8601), and scale = amax / 127. `trtexec --int8
--calib=FILE` and an IInt8EntropyCalibrator2 whose read_calibration_cache() returns the bytes use it; a
header that does not match the running TensorRT version and algorithm makes TensorRT ignore the file.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path

from trtq.errors import UsageError
from trtq.files import write_text

__all__ = ["write_trt_cache", "read_trt_cache", "read_trt_cache_header", "trt_version_code", "ALGORITHMS"]

#: algorithm names TensorRT writes in the header
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")

_HEADER = re.compile(r"^TRT-(\d+)-([A-Za-z0-9]+)$")
_LINE = re.compile(r"^(.+): ?([0-9A-Fa-f]{1,8})$")
#: amax written for a zero/negative/non-finite threshold: a zero scale produces broken engines
_MIN_AMAX = 1e-12 * 127.0


def trt_version_code(version: tuple[int, int, int] | tuple[int, ...]) -> int:
    """NV_TENSORRT_VERSION as TensorRT writes it in a cache header."""
    if len(version) != 3 or any(int(v) < 0 for v in version):
        raise UsageError(f"TensorRT version must be (major, minor, patch), got {version!r}")
    major, minor, patch = (int(v) for v in version)
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def write_trt_cache(
    path: str | os.PathLike,
    amax: Mapping[str, float],
    trt_version: tuple[int, int, int] = (10, 3, 0),
    algorithm: str = "EntropyCalibration2",
) -> Path:
    """Write per-tensor amax as a TensorRT calibration cache (scale = amax / 127), atomically.

    Args:
        path: the cache file to write.
        amax: tensor name -> amax, in the order to write.
        trt_version: the TensorRT version that will read the file (it must match exactly).
        algorithm: the calibrator algorithm in the header; trtexec --calib expects EntropyCalibration2.

    Returns:
        The path written.
    """
    if algorithm not in ALGORITHMS:
        raise UsageError(
            f"unknown calibration cache algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}"
        )
    lines = [f"TRT-{trt_version_code(trt_version)}-{algorithm}"]
    for name, value in amax.items():
        if "\n" in name:
            raise UsageError(
                f"tensor name {name!r} contains a newline and cannot go into a calibration cache"
            )
        v = float(value)
        if not (math.isfinite(v) and v > 0):
            v = _MIN_AMAX
        lines.append(f"{name}: {struct.pack('>f', v / 127.0).hex()}")
    return write_text(path, "\n".join(lines) + "\n")


def _read_lines(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"calibration cache {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"calibration cache {p} is not a readable text file ({e})") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def read_trt_cache_header(path: str | os.PathLike) -> tuple[int, str]:
    """(version code, algorithm) from a cache's header line."""
    lines = _read_lines(path)
    m = _HEADER.match(lines[0]) if lines else None
    if not m:
        raise UsageError(
            f"calibration cache {path} does not start with a TRT-<version>-<Algorithm> header; "
            "it is not a TensorRT calibration cache"
        )
    return int(m.group(1)), m.group(2)


def read_trt_cache(path: str | os.PathLike) -> dict[str, float]:
    """tensor name -> amax (= scale * 127) from a TensorRT calibration cache.

    Accepts hex values with dropped leading zeros (as some writers produce).

    Raises:
        UsageError: missing file, no header, a malformed line, a non-positive or non-finite scale.
    """
    read_trt_cache_header(path)
    out: dict[str, float] = {}
    for number, line in enumerate(_read_lines(path)[1:], start=2):
        m = _LINE.match(line)
        if not m:
            raise UsageError(
                f"calibration cache {path} line {number} is not '<tensor>: <8 hex digits>': {line[:60]!r}"
            )
        name, hexval = m.group(1).strip(), m.group(2).zfill(8)
        scale = struct.unpack(">f", bytes.fromhex(hexval))[0]
        if not (math.isfinite(scale) and scale > 0):
            raise UsageError(
                f"calibration cache {path} line {number}: scale of {name!r} is {scale}, not positive"
            )
        if name in out:
            raise UsageError(f"calibration cache {path} lists tensor {name!r} twice")
        out[name] = scale * 127.0
    return out
