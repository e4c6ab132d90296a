"""Helpers of the calibrator tests: feed a collector in batches, align data with a reference's histogram bins."""

from __future__ import annotations

import numpy as np

from trtq.calibrators import HistogramCollector

__all__ = ["collect", "aligned"]


def collect(x: np.ndarray, batches: int = 5) -> HistogramCollector:
    """A collector fed `x` (as tensor "t") in `batches` parts."""
    col = HistogramCollector()
    for part in np.array_split(x, batches):
        col.collect({"t": part})
    return col


def aligned(x: np.ndarray) -> np.ndarray:
    """Rescale so max|x| = 16 - 2**-20: then trtq's bins and a one-shot [0, max|x|] 2048-bin histogram coincide."""
    return (x / np.abs(x).max() * np.float32(16 - 2**-20)).astype(np.float32)
