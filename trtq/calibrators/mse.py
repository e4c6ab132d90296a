"""MSE calibration: the threshold that minimises the expected squared int8 quantization error of |x|.

Each histogram bin is represented by its center (as ModelOpt does). For a candidate amax a (the center
of bin i, i = 128 ... bins - 1), a value c quantizes to min(round(c * 127 / a), 127) * a / 127, and the
expected error is sum_j counts_j * (q(c_j) - c_j)^2. The search is exhaustive over the candidates: the
clipped part (c_j > a, error (c_j - a)^2) comes from suffix sums of counts, counts * c and counts * c^2;
the rounded part (c_j <= a) is evaluated exactly, candidate by candidate, in vectorised blocks.
"""

from __future__ import annotations

import numpy as np

from trtq.calibrators.base import register_calibrator
from trtq.calibrators.collector import HistogramCollector, TensorHistogram
from trtq.calibrators.histogram import CollectorCalibrator

__all__ = ["MSECalibrator", "mse_errors", "mse_threshold_bin"]

_BLOCK = 128  # candidates evaluated together


def mse_errors(
    counts: np.ndarray, *, start_bin: int = 128, max_int: int = 127
) -> tuple[np.ndarray, np.ndarray]:
    """Expected squared quantization error (in squared bin widths) for each candidate threshold.

    Args:
        counts: histogram counts of |x|.
        start_bin: first candidate bin; the candidate amax of bin i is its center (i + 0.5) bin widths.
        max_int: largest quantized magnitude (127 for symmetric narrow-range int8).

    Returns:
        (candidates, errors): candidate bin indices and sum_j counts_j (q(c_j) - c_j)^2 for each.
    """
    n = np.asarray(counts, dtype=np.float64)
    nb = len(n)
    cand = np.arange(min(start_bin, max(nb - 1, 0)), nb, dtype=np.int64)
    if len(cand) == 0:
        return cand, np.zeros(0)
    c = np.arange(nb, dtype=np.float64) + 0.5
    # suffix sums over j > i for the clipped part: sum n (c - a)^2 = S2 - 2 a S1 + a^2 S0
    s0 = np.concatenate([np.cumsum(n[::-1])[::-1], [0.0]])
    s1 = np.concatenate([np.cumsum((n * c)[::-1])[::-1], [0.0]])
    s2 = np.concatenate([np.cumsum((n * c * c)[::-1])[::-1], [0.0]])
    a = cand + 0.5
    clipped = s2[cand + 1] - 2 * a * s1[cand + 1] + a * a * s0[cand + 1]
    rounded = np.empty(len(cand))
    for lo in range(0, len(cand), _BLOCK):
        blk = cand[lo : lo + _BLOCK]
        width = int(blk[-1]) + 1
        ab = (blk + 0.5)[:, None]
        cj = c[None, :width]
        q = np.minimum(np.rint(cj * (max_int / ab)), max_int) * (ab / max_int)
        err = (q - cj) ** 2
        err[cj > ab] = 0.0  # counted in the clipped part
        rounded[lo : lo + len(blk)] = err @ n[:width]
    return cand, np.maximum(clipped, 0.0) + rounded


def mse_threshold_bin(counts: np.ndarray, *, start_bin: int = 128) -> int:
    """Bin whose center is the MSE-optimal amax (the first minimum)."""
    cand, err = mse_errors(counts, start_bin=start_bin)
    if len(cand) == 0:
        return 0
    return int(cand[int(np.argmin(err))])


@register_calibrator("mse")
class MSECalibrator(CollectorCalibrator):
    """amax minimising the expected int8 quantization MSE of |x| over candidate thresholds.

    Args:
        num_bins: coarse histogram bins searched (default 2048).
        start_bin: first candidate bin (default 128).
        collector: a shared collector.
    """

    def __init__(
        self, *, num_bins: int = 2048, start_bin: int = 128, collector: HistogramCollector | None = None
    ) -> None:
        super().__init__(num_bins=num_bins, collector=collector)
        self.start_bin = int(start_bin)

    def amax_from(self, rec: TensorHistogram) -> float:
        hist = rec.coarse(self.num_bins)
        if len(hist.counts) == 0:
            return 0.0
        i = mse_threshold_bin(hist.counts, start_bin=self.start_bin)
        return min((i + 0.5) * hist.bin_width, rec.absmax)
