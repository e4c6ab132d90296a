"""Timing loops: wall clock around `infer` for host runners, CUDA events for runners with CUDA steps.

Which loop a runner gets is decided by the runner interface alone (`BaseRunner.cuda_steps()`): None ->
`time_host`; a `CudaSteps` -> `time_cuda` on its stream, with the copies inside the timed region unless
`BenchSettings.include_copies` is False, optionally replaying a CUDA graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from trtq.benchmark.settings import BenchSettings
from trtq.runners.base import BaseRunner

__all__ = ["timing_loop", "time_host", "time_cuda", "time_runner"]


def timing_loop(run_once: Callable[[], float], settings: BenchSettings) -> list[float]:
    """Call `run_once` (returns ms) up to `settings.iterations` times, stopping after `max_seconds` of
    timed time once `min_iterations` runs are made; returns the samples (ms)."""
    samples: list[float] = []
    spent = 0.0
    for i in range(settings.iterations):
        ms = run_once()
        samples.append(ms)
        spent += ms / 1000.0
        if (
            settings.max_seconds is not None
            and spent >= settings.max_seconds
            and i + 1 >= settings.min_iterations
        ):
            break
    return samples


def time_host(runner: BaseRunner, feed: Mapping[str, np.ndarray], settings: BenchSettings) -> list[float]:
    """Wall-clock latency (ms) of `runner.infer(feed)` after warm-up (host-timed runners)."""
    for _ in range(settings.warmup):
        runner.infer(feed)

    def once() -> float:
        start = time.perf_counter()
        runner.infer(feed)
        return (time.perf_counter() - start) * 1000.0

    return timing_loop(once, settings)


def time_cuda(
    step: Callable[[], None],
    stream: Any,
    settings: BenchSettings,
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Latency (ms) of `step` enqueued on a non-default CUDA `stream`, timed with CUDA events.

    Args:
        step: enqueues one inference on `stream` (no synchronisation).
        stream: a `torch.cuda.Stream` (not the default stream).
        settings: warm-up, iterations, CUDA graph.
        before: enqueues host->device copies (timed when given).
        after: enqueues device->host copies (timed when given).

    Returns:
        (samples, notes): notes say whether a CUDA graph was used, or why not.
    """
    import torch

    notes: dict[str, Any] = {"cuda_graph": False}
    with torch.cuda.stream(stream):
        for _ in range(max(1, settings.warmup)):  # also the run before capture TensorRT needs
            if before:
                before()
            step()
            if after:
                after()
        stream.synchronize()
        replay: Callable[[], None] = step
        if settings.cuda_graph:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                    step()
                stream.synchronize()
                replay = graph.replay
                notes["cuda_graph"] = True
            except Exception as e:  # e.g. an engine with data-dependent shapes
                notes["cuda_graph_error"] = f"{type(e).__name__}: {e}"
                torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def once() -> float:
            start.record(stream)
            if before:
                before()
            replay()
            if after:
                after()
            end.record(stream)
            end.synchronize()
            return float(start.elapsed_time(end))

        return timing_loop(once, settings), notes


def time_runner(
    runner: BaseRunner, feed: Mapping[str, np.ndarray], settings: BenchSettings
) -> tuple[list[float], dict[str, Any]]:
    """Time an active runner on `feed` with the loop its interface asks for.

    Returns:
        (samples in ms, notes): notes are empty for host timing; for CUDA timing they say whether a CUDA
        graph was used and whether copies were timed (`includes_copies`).
    """
    steps = runner.cuda_steps()
    if steps is None:
        return time_host(runner, feed, settings), {}
    steps.bind(feed)
    copies = settings.include_copies
    samples, notes = time_cuda(
        steps.enqueue,
        steps.stream,
        settings,
        before=steps.copy_inputs if copies else None,
        after=steps.copy_outputs if copies else None,
    )
    notes["includes_copies"] = copies
    return samples, notes
