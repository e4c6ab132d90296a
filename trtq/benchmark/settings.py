"""How to benchmark (`BenchSettings`, `--batch` parsing) and the latency statistics of one batch size.

Percentiles use linear interpolation between closest ranks (numpy's default; the same as
`statistics.quantiles(..., method="inclusive")`). Throughput is batch x iterations / total timed time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trtq.errors import UsageError

__all__ = ["BenchSettings", "parse_batches", "latency_stats"]


@dataclass
class BenchSettings:
    """How to benchmark.

    Attributes:
        batches: batch sizes to time.
        warmup: untimed runs before timing, per batch size.
        iterations: timed runs per batch size (fewer when `max_seconds` runs out first).
        max_seconds: stop timing a batch size after this much timed time (at least `min_iterations` runs).
        min_iterations: timed runs always made.
        cuda_graph: CUDA-timed runners (TensorRT) only: capture one inference in a CUDA graph and replay it.
        include_copies: CUDA-timed runners only: time host->device and device->host copies too.
        threads: ONNX Runtime intra-op threads (None: its default).
        seed: seed of the random inputs.
    """

    batches: tuple[int, ...] = (1, 8)
    warmup: int = 10
    iterations: int = 100
    max_seconds: float | None = 10.0
    min_iterations: int = 5
    cuda_graph: bool = False
    include_copies: bool = True
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.batches = tuple(int(b) for b in self.batches)
        if not self.batches or any(b < 1 for b in self.batches):
            raise UsageError(
                f"--batch {','.join(map(str, self.batches))}: batch sizes must be positive integers"
            )
        if self.iterations < 1 or self.warmup < 0 or self.min_iterations < 1:
            raise UsageError("--iterations must be >= 1 and --warmup >= 0")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UsageError("--max-seconds must be positive")


def parse_batches(text: str) -> tuple[int, ...]:
    """`--batch 1,8,32` for the benchmark: the list of batch sizes to time (duplicates dropped).

    Raises:
        UsageError: not a comma-separated list of positive integers.
    """
    try:
        values = tuple(int(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(f"--batch {text!r}: give batch sizes separated by commas, e.g. 1,8,32") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--batch {text!r}: batch sizes must be positive")
    return tuple(dict.fromkeys(values))


def latency_stats(samples_ms: Sequence[float], batch: int) -> dict[str, float]:
    """Statistics of per-inference latencies (milliseconds) at one batch size.

    Returns:
        iterations, min/median/mean/p90/p95/p99/max/std in ms, and throughput_per_s.

    Raises:
        ValueError: no samples.
    """
    a = np.asarray(list(samples_ms), dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    total_s = float(a.sum()) / 1000.0
    return {
        "iterations": int(a.size),
        "min_ms": float(a.min()),
        "median_ms": float(p50),
        "mean_ms": float(a.mean()),
        "p90_ms": float(p90),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(a.max()),
        "std_ms": float(a.std()),
        "throughput_per_s": float(batch * a.size / total_s) if total_s > 0 else float("inf"),
    }
