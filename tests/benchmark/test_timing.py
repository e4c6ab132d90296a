"""The timing loops, and which one a runner gets: decided by `cuda_steps()` alone.

The CUDA timing path (CUDA events, CUDA graphs) needs a GPU; `test_time_cuda_on_a_torch_workload` runs
only where torch sees one. Elsewhere `time_cuda` is replaced by a recorder to check what it is given.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.runners.fakes import CudaRunner, HostRunner
from trtq.benchmark import BenchSettings, time_runner, timing
from trtq.benchmark.timing import timing_loop

FEED = {"x": np.zeros((2, 4), np.float32)}


def test_loop_stops_at_max_seconds_but_not_before_min_iterations():
    calls = []

    def slow() -> float:
        calls.append(1)
        return 400.0  # ms

    assert len(timing_loop(slow, BenchSettings(iterations=100, max_seconds=1.0, min_iterations=2))) == 3
    calls.clear()
    assert len(timing_loop(slow, BenchSettings(iterations=100, max_seconds=0.1, min_iterations=5))) == 5
    assert len(timing_loop(lambda: 1.0, BenchSettings(iterations=7, max_seconds=None))) == 7


@pytest.fixture
def recorded_cuda(monkeypatch):
    """Replace `time_cuda` by a recorder that runs one timed iteration's steps once."""
    calls: list[dict] = []

    def fake_time_cuda(step, stream, settings, *, before=None, after=None):
        calls.append({"stream": stream, "before": before, "after": after})
        for fn in (before, step, after):
            if fn is not None:
                fn()
        return [1.0] * settings.iterations, {"cuda_graph": False}

    monkeypatch.setattr(timing, "time_cuda", fake_time_cuda)
    return calls


def test_a_host_runner_is_timed_on_the_host(recorded_cuda):
    runner = HostRunner()
    with runner:
        samples, notes = time_runner(runner, FEED, BenchSettings(warmup=2, iterations=3, max_seconds=None))
    assert recorded_cuda == []  # no CUDA events for a host runner
    assert len(samples) == 3 and notes == {}
    assert runner.infers == 2 + 3  # warm-up and timed runs, each through infer()


def test_a_cuda_device_runner_without_cuda_steps_is_still_host_timed(recorded_cuda):
    """`device` says where inference runs; only `cuda_steps()` decides the timing."""
    runner = HostRunner(device="cuda")  # e.g. ONNX Runtime's CUDA execution provider
    with runner:
        time_runner(runner, FEED, BenchSettings(warmup=0, iterations=2))
    assert recorded_cuda == [] and runner.infers == 2


@pytest.mark.parametrize("copies", [True, False])
def test_a_runner_with_cuda_steps_is_timed_with_cuda_events(recorded_cuda, monkeypatch, copies):
    monkeypatch.setattr(timing, "time_host", lambda *a, **k: pytest.fail("a CUDA runner was host-timed"))
    runner = CudaRunner()
    with runner:
        samples, notes = time_runner(runner, FEED, BenchSettings(iterations=4, include_copies=copies))
    assert len(samples) == 4
    assert notes == {"cuda_graph": False, "includes_copies": copies}
    assert [c["stream"] for c in recorded_cuda] == [runner.stream]  # on the runner's own stream
    assert runner.infers == 0  # never through infer()
    timed = ["copy_inputs", "enqueue", "copy_outputs"] if copies else ["enqueue"]
    assert runner.log == [("bind", (2, 4)), *timed]  # bound once, untimed, before the timed steps


def test_time_cuda_on_a_torch_workload():
    """CUDA events on a non-default stream and CUDA graph capture, on a torch matmul (GPU only)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    from trtq.benchmark import time_cuda

    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x = torch.randn(1024, 1024, device="cuda")
        y = torch.empty_like(x)

    def step() -> None:
        torch.matmul(x, x, out=y)

    for graph in (False, True):
        samples, notes = time_cuda(step, stream, BenchSettings(warmup=3, iterations=20, cuda_graph=graph))
        assert len(samples) == 20 and all(s > 0 for s in samples)
        assert notes["cuda_graph"] is graph
