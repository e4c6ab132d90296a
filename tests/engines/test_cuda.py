"""Is there a GPU TensorRT can use (trtq.engines.cuda)? The driver probe and the one-line reasons."""

from __future__ import annotations

import ctypes

import pytest

from trtq.engines.cuda import CudaDriver, cuda_problem, probe_driver


class FakeLibcuda:
    """Answers like libcuda: cuInit's result, a device count and the driver's CUDA version, through pointers."""

    def __init__(self, init: int = 0, devices: int = 1, version: int = 12040) -> None:
        self.init, self.devices, self.version = init, devices, version

    def cuInit(self, flags: int) -> int:  # noqa: N802 - the driver API's names
        return self.init

    def cuDriverGetVersion(self, ptr: object) -> int:  # noqa: N802
        ctypes.cast(ptr, ctypes.POINTER(ctypes.c_int)).contents.value = self.version
        return 0

    def cuDeviceGetCount(self, ptr: object) -> int:  # noqa: N802
        ctypes.cast(ptr, ctypes.POINTER(ctypes.c_int)).contents.value = self.devices
        return 0


def test_the_probe_reads_the_driver_through_its_c_interface():
    d = probe_driver(lambda: FakeLibcuda(devices=2, version=12080))
    assert d == CudaDriver(loaded=True, init_result=0, devices=2, version=(12, 8))
    assert probe_driver(lambda: None) == CudaDriver(loaded=False)
    assert probe_driver(lambda: FakeLibcuda(init=100, devices=0)).init_result == 100


@pytest.mark.parametrize(
    "driver, wheel, needle",
    [
        (CudaDriver(loaded=False), 12, "no NVIDIA driver was found"),
        (CudaDriver(True, 100, 0, (12, 4)), 12, "sees no CUDA device"),
        (CudaDriver(True, 0, 0, (12, 4)), 12, "sees no CUDA device"),
        (CudaDriver(True, 35, 0, (11, 8)), 12, "too old for this CUDA"),
        (CudaDriver(True, 0, 1, (12, 4)), 13, "supports CUDA up to 12.4 but the installed TensorRT wheel is built for CUDA 13"),
    ],
)  # fmt: skip
def test_each_unusable_gpu_gets_its_one_line_reason(driver, wheel, needle):
    why = cuda_problem(driver, wheel)
    assert why is not None and needle in why and "\n" not in why


def test_a_driver_too_old_for_the_wheel_names_the_extra_to_install():
    why = cuda_problem(CudaDriver(True, 0, 1, (12, 8)), 13)
    assert "pip install 'trtq[tensorrt-cu12]'" in why


@pytest.mark.parametrize("wheel", [12, 13, None])
def test_a_usable_gpu_has_no_problem(wheel):
    assert cuda_problem(CudaDriver(True, 0, 1, (13, 0)), wheel) is None
