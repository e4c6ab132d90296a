"""The TensorRT runner without TensorRT or a GPU: what it is, what it refuses, what it hands the benchmark.

Its inference path (bind, copies, execute_async_v3) needs a GPU with TensorRT: scripts/gpu_smoke.sh is its
test. The TensorRT names it uses are checked against the real bindings by tests/engines/test_compat_contract.py.
"""

from __future__ import annotations

import sys

import pytest

from trtq.errors import TensorRTUnavailable
from trtq.runners import CudaSteps
from trtq.runners.tensorrt import TensorRTRunner


def test_a_cuda_runner_by_interface():
    r = TensorRTRunner(b"plan", name="m.plan")
    assert (r.name, r.backend, r.device) == ("m.plan", "tensorrt", "cuda")
    with pytest.raises(RuntimeError, match="m.plan must be activated before cuda_steps"):
        r.cuda_steps()


def test_cuda_steps_are_the_runner_steps_on_its_stream():
    r = TensorRTRunner(b"plan")
    r.is_active, r.stream = True, object()  # what activate() leaves (it needs a GPU)
    steps = r.cuda_steps()
    assert isinstance(steps, CudaSteps) and steps.stream is r.stream
    assert (steps.bind, steps.copy_inputs, steps.enqueue, steps.copy_outputs) == (
        r.bind,
        r.copy_inputs,
        r.enqueue,
        r.copy_outputs,
    )


def test_activation_without_tensorrt_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        TensorRTRunner(b"plan").activate()


def test_activation_without_a_gpu_is_one_line(monkeypatch, fake_tensorrt):
    torch = pytest.importorskip("torch")
    fake_tensorrt("11.4.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = TensorRTRunner(b"plan")
    with pytest.raises(TensorRTUnavailable, match="no CUDA GPU is visible"):
        r.activate()
    assert not r.is_active
