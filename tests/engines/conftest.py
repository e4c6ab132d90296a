"""The engine tests replace TensorRT by tests/trt_stub/fake_tensorrt.py, a recorder shaped like 10.x or 11.x
whose names are checked against the real bindings by tests/test_engines_contract.py. These tests pin what
trtq asks TensorRT to do; they cannot show what TensorRT does with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from trt_stub.fake_tensorrt import make_fake  # noqa: E402


@pytest.fixture
def fake(monkeypatch):
    """Install a fake TensorRT of the requested version as `tensorrt`, on a stand-in GPU (the CUDA driver probe
    answers one device; `trtq.engines.cuda` is tested on its own)."""
    from trtq.engines import cuda

    def install(version: str = "11.4.0"):
        mod = make_fake(version)
        monkeypatch.setitem(sys.modules, "tensorrt", mod)
        monkeypatch.setattr(cuda, "probe_driver", lambda: cuda.CudaDriver(True, 0, 1, (13, 0)))
        return mod

    return install
