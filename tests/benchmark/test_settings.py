"""Benchmark settings, --batch parsing and latency statistics."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from trtq.benchmark import BenchSettings, latency_stats, parse_batches
from trtq.errors import UsageError


def test_latency_stats_match_an_independent_reference():
    rng = np.random.default_rng(1)
    samples = list(rng.gamma(4.0, 0.5, size=257))
    s = latency_stats(samples, batch=8)
    q = statistics.quantiles(samples, n=100, method="inclusive")  # q[k-1] is the k-th percentile
    assert s["median_ms"] == pytest.approx(statistics.median(samples))
    assert s["p90_ms"] == pytest.approx(q[89])
    assert s["p95_ms"] == pytest.approx(q[94])
    assert s["p99_ms"] == pytest.approx(q[98])
    assert s["mean_ms"] == pytest.approx(statistics.fmean(samples))
    assert s["min_ms"] == min(samples) and s["max_ms"] == max(samples)
    assert s["std_ms"] == pytest.approx(statistics.pstdev(samples))
    assert s["iterations"] == 257
    assert s["throughput_per_s"] == pytest.approx(8 * 257 / (sum(samples) / 1000))


def test_latency_stats_simple_numbers():
    s = latency_stats([1.0, 2.0, 3.0, 4.0], batch=2)
    assert (s["min_ms"], s["median_ms"], s["mean_ms"], s["max_ms"]) == (1.0, 2.5, 2.5, 4.0)
    assert s["throughput_per_s"] == pytest.approx(2 * 4 / 0.010)  # 8 items in 10 ms
    with pytest.raises(ValueError):
        latency_stats([], batch=1)


def test_parse_batches_and_settings():
    assert parse_batches("1,8,8,32") == (1, 8, 32)
    with pytest.raises(UsageError):
        parse_batches("0,1")
    with pytest.raises(UsageError):
        parse_batches("a")
    with pytest.raises(UsageError):
        BenchSettings(iterations=0)
    with pytest.raises(UsageError, match="--max-seconds"):
        BenchSettings(max_seconds=0)
    with pytest.raises(UsageError, match="--batch 0"):
        BenchSettings(batches=(0,))
    assert BenchSettings(batches=[2.0, 4]).batches == (2, 4)
