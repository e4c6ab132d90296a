"""Is there a GPU TensorRT can use? The CUDA driver, its devices and the CUDA major of the TensorRT wheel.

`import tensorrt` works wherever the wheel is installed: on a laptop without an NVIDIA GPU, in a container
started without `--gpus`, next to a driver too old for the CUDA the wheel was built for. There `trt.Builder`
raises "factory function returned nullptr" or the build crashes. So before the engine step trtq asks the CUDA
driver itself (`libcuda`, through ctypes: `cuInit`, `cuDeviceGetCount`, `cuDriverGetVersion`) and compares the
CUDA version the driver supports with the CUDA major of the installed `tensorrt-cuNN` wheel.
"""

from __future__ import annotations

import ctypes
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CudaDriver", "probe_driver", "wheel_cuda_major", "cuda_problem"]

#: CUDA driver API result codes trtq names.
_NO_DEVICE, _INSUFFICIENT_DRIVER = 100, 35


@dataclass(frozen=True)
class CudaDriver:
    """What the CUDA driver said.

    Attributes:
        loaded: whether the driver library could be loaded at all.
        init_result: `cuInit(0)`'s result (0 = success, 100 = no device, 35 = driver too old for the runtime).
        devices: the number of CUDA devices.
        version: the CUDA version the driver supports, as (major, minor); None when unknown.
    """

    loaded: bool
    init_result: int = 0
    devices: int = 0
    version: tuple[int, int] | None = None


def _load_libcuda() -> Any:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so", "libcuda.dylib"]
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def probe_driver(load: Callable[[], Any] = _load_libcuda) -> CudaDriver:
    """Ask the CUDA driver whether it works and how many devices it sees (never raises)."""
    lib = load()
    if lib is None:
        return CudaDriver(loaded=False)
    try:
        rc = int(lib.cuInit(0))
        version = ctypes.c_int(0)
        got_version = int(lib.cuDriverGetVersion(ctypes.byref(version))) == 0 and version.value > 0
        count = ctypes.c_int(0)
        if rc == 0 and int(lib.cuDeviceGetCount(ctypes.byref(count))) != 0:
            count.value = 0
    except (AttributeError, OSError, ValueError):
        return CudaDriver(loaded=False)
    v = (version.value // 1000, (version.value % 1000) // 10) if got_version else None
    return CudaDriver(loaded=True, init_result=rc, devices=int(count.value), version=v)


def wheel_cuda_major() -> int | None:
    """The CUDA major the installed TensorRT wheel was built for (`tensorrt-cu12*` -> 12), None when unknown
    (a TensorRT from NVIDIA's containers or a tarball carries no such name)."""
    from importlib import metadata

    majors = set()
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower().replace("_", "-")
        m = re.fullmatch(r"tensorrt-cu(\d+)(-libs|-bindings)?", name)
        if m:
            majors.add(int(m.group(1)))
    return majors.pop() if len(majors) == 1 else None


def cuda_problem(
    driver: CudaDriver | None = None, wheel_major: int | None | Callable[[], int | None] = wheel_cuda_major
) -> str | None:
    """Why TensorRT cannot build or run engines here (one line), or None when a usable GPU is present.

    Args:
        driver: the driver's answers (default: `probe_driver()`).
        wheel_major: the TensorRT wheel's CUDA major, or a function returning it (default: from the installed
            distributions).
    """
    driver = driver if driver is not None else probe_driver()
    if not driver.loaded:
        return "no NVIDIA driver was found (libcuda is missing: no GPU here, or a container started without --gpus)"
    if driver.init_result == _NO_DEVICE or (driver.init_result == 0 and driver.devices == 0):
        return "the NVIDIA driver sees no CUDA device (a container started without --gpus, or CUDA_VISIBLE_DEVICES)"
    if driver.init_result != 0:
        what = "is too old for this CUDA" if driver.init_result == _INSUFFICIENT_DRIVER else "failed to start"
        return f"the NVIDIA driver {what} (cuInit error {driver.init_result})"
    major = wheel_major() if callable(wheel_major) else wheel_major
    if major is not None and driver.version is not None and driver.version[0] < major:
        have = f"{driver.version[0]}.{driver.version[1]}"
        return (
            f"the NVIDIA driver supports CUDA up to {have} but the installed TensorRT wheel is built for CUDA {major}; "
            f"upgrade the driver, or install the wheel for your CUDA: pip install 'trtq[tensorrt-cu{driver.version[0]}]'"
        )
    return None
