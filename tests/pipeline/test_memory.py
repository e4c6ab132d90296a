"""Per-stage peak RSS: sampled while a stage runs, exact where the stage raises the process peak."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.pipeline.context import Clock
from trtq.pipeline.memory import RssPeak, current_rss_mb, process_peak_mb, release_memory

pytestmark = pytest.mark.skipif(current_rss_mb() is None, reason="needs /proc (Linux)")


def test_a_block_that_allocates_shows_in_its_peak_and_not_in_the_next_one():
    release_memory()
    with RssPeak() as big:
        x = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
        del x
    release_memory()
    with RssPeak() as small:
        pass
    assert (
        big.peak_mb - small.peak_mb > 48
    )  # the 64 MiB block, less what the allocator kept or returned early
    assert process_peak_mb() >= big.peak_mb - 1


def test_clock_records_the_peak_per_step_with_memory_and_none_without():
    timings: dict[str, float] = {}
    memory: dict[str, float] = {}
    clock = Clock(timings, memory)
    with clock("a"):
        y = np.ones(32 << 20, dtype=np.uint8)
        del y
    assert set(memory) == {"a"} and memory["a"] >= current_rss_mb() - 1
    bare = Clock({})
    with bare("b"):
        pass
    assert bare.memory is None and "b" in bare.timings
