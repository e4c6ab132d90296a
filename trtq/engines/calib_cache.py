"""Legacy implicit INT8 from a TensorRT calibration cache file (TensorRT 10 only).

TensorRT 11 removed the IInt8Calibrator family; trtq's main path is explicit Q/DQ. Where the running
TensorRT still has the calibrators (10.x, e.g. JetPack 6), an FP32 graph without Q/DQ can be built
INT8 from trtq's calibration cache: a calibrator whose `read_calibration_cache` returns the file and
which never asks for data.

Cache format (TensorRT's own): a header line `TRT-<version>-<Algorithm>`, then `<tensor>: <hex>` lines
where hex is the big-endian IEEE-754 bit pattern of the float32 scale (amax / 127). The version is
major*10000 + minor*100 + patch for TensorRT >= 10.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

from trtq.engines import compat
from trtq.errors import UsageError

__all__ = [
    "CacheHeader",
    "read_cache_header",
    "cache_version_number",
    "retarget_cache",
    "make_cache_calibrator",
    "cache_scales",
]

_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


class CacheHeader(tuple):
    """(version number, algorithm) of a calibration cache."""

    __slots__ = ()

    def __new__(cls, version: int, algorithm: str) -> CacheHeader:
        return super().__new__(cls, (version, algorithm))

    @property
    def version(self) -> int:
        return self[0]

    @property
    def algorithm(self) -> str:
        return self[1]


def cache_version_number(version: tuple[int, int, int]) -> int:
    """TensorRT's NV_TENSORRT_VERSION as it appears in cache headers (10.3.0 -> 100300; 8.6.1 -> 8601)."""
    major, minor, patch = version
    return major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def read_cache_header(data: bytes, source: str = "calibration cache") -> CacheHeader:
    """Parse the first line of a cache; `UsageError` naming `source` when it is not a TensorRT cache."""
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    m = _HEADER.match(first)
    if not m:
        raise UsageError(
            f"{source} does not start with a TensorRT header like 'TRT-100300-EntropyCalibration2' (got {first[:40]!r})"
        )
    return CacheHeader(int(m.group(1)), m.group(2))


def cache_scales(data: bytes) -> dict[str, float]:
    """Tensor name -> scale of a cache (for reports and tests)."""
    out: dict[str, float] = {}
    for line in data.decode("utf-8").splitlines()[1:]:
        if not line.strip():
            continue
        name, _, hexval = line.rpartition(":")
        out[name.strip()] = struct.unpack(">f", bytes.fromhex(hexval.strip()))[0]
    return out


def retarget_cache(data: bytes, version: tuple[int, int, int]) -> tuple[bytes, bool]:
    """Rewrite the header's version to the running TensorRT's; returns (cache, whether it changed).

    TensorRT ignores a cache whose header names another version and then tries to calibrate without
    data. trtq's caches hold explicit scales computed outside TensorRT, valid for any 10.x, so the
    header is set to the running version.
    """
    header = read_cache_header(data)
    want = cache_version_number(version)
    if header.version == want:
        return data, False
    _, _, rest = data.partition(b"\n")
    return f"TRT-{want}-{header.algorithm}\n".encode() + rest, True


def make_cache_calibrator(cache: bytes | Path, trt: ModuleType | None = None) -> Any:
    """An implicit INT8 calibrator that serves `cache` and never asks for batches (TensorRT 10 only)."""
    trt = trt or compat.import_tensorrt()
    source = str(cache) if isinstance(cache, Path) else "calibration cache"
    if isinstance(cache, Path):
        if not cache.is_file():
            raise UsageError(f"--calib-cache {cache} does not exist; write it with trtq's calibration step")
        cache = cache.read_bytes()
    header = read_cache_header(cache, source)
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
