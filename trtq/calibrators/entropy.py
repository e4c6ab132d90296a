"""Entropy calibration: TensorRT's KL-divergence threshold search (the IInt8EntropyCalibrator2 algorithm).

For every candidate threshold of i bins (i = 128 ... number of bins) over the histogram of |x|:

- reference P: bins[0:i], with every count beyond the threshold (the outliers) folded into bin i-1;
- candidate Q: bins[0:i] merged into 128 levels (bin j goes to level floor(128 j / i)), each level's
  count spread evenly over the level's *non-empty* bins and zero on empty bins (the zero-bin handling
  of TensorRT's reference implementation, pytorch-quantization, ModelOpt and ONNX Runtime);
- KL(P || Q) after normalising both; the threshold is the upper edge of bin i-1 for the i with the
  smallest divergence (the largest such i on ties, as ModelOpt does).

As in pytorch-quantization and ModelOpt, bin 0 takes the count of bin 1 first, so the spike of exact
zeros after a ReLU does not dominate the divergence.

ModelOpt loops over the candidates in Python (seconds per tensor). Here the divergence of every
candidate is evaluated at once from prefix sums: with C, N and L the running sums of counts, of
non-empty bins and of b log b, level g of candidate i covers bins [ceil(g i / 128), ceil((g+1) i / 128)),
so its mass M and non-empty count n are differences of C and N, and

    KL_i = (L[i-1] + P_last log P_last - sum_g M_g log(M_g / n_g) - tail_i log Q_last) / T + log(C[i] / T)

which costs (candidates x 128) operations per tensor instead of (candidates x bins) Python steps.
"""

from __future__ import annotations

import numpy as np

from trtq.calibrators.base import register_calibrator
from trtq.calibrators.histogram import BinSearchCalibrator

__all__ = ["EntropyCalibrator", "entropy_divergences", "entropy_threshold_bins"]


def entropy_divergences(
    counts: np.ndarray, *, start_bin: int = 128, num_levels: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """KL(P || Q) for every candidate threshold of a histogram of |x|.

    Args:
        counts: histogram counts of |x| (bin 0 starts at 0).
        start_bin: smallest candidate threshold, in bins.
        num_levels: quantization levels of the candidate distribution (128 for int8).

    Returns:
        (candidates, divergences): candidate thresholds in bins (i = start_bin ... len(counts)) and
        KL(P || Q) for each (inf where Q has no mass where P has).
    """
    b = np.asarray(counts, dtype=np.float64).copy()
    nb = len(b)
    if nb == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if nb > 1:
        b[0] = b[1]
    total = b.sum()
    cum = np.concatenate([[0.0], np.cumsum(b)])
    nonempty = np.concatenate([[0], np.cumsum(b > 0)])
    with np.errstate(divide="ignore", invalid="ignore"):
        blogb = np.where(b > 0, b * np.log(np.where(b > 0, b, 1.0)), 0.0)
    cum_blogb = np.concatenate([[0.0], np.cumsum(blogb)])

    cand = np.arange(min(start_bin, nb), nb + 1, dtype=np.int64)
    cand = cand[cand >= 1]
    levels = np.arange(num_levels + 1, dtype=np.int64)
    starts = (levels[None, :] * cand[:, None] + num_levels - 1) // num_levels  # ceil(g i / levels)
    mass = cum[starts[:, 1:]] - cum[starts[:, :-1]]
    n = nonempty[starts[:, 1:]] - nonempty[starts[:, :-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        mlogq = np.where(n > 0, mass * np.log(np.where(n > 0, mass / np.maximum(n, 1), 1.0)), 0.0).sum(axis=1)
        tail = total - cum[cand]
        last = b[cand - 1]
        p_last = last + tail
        plogp = cum_blogb[cand - 1] + np.where(
            p_last > 0, p_last * np.log(np.where(p_last > 0, p_last, 1.0)), 0.0
        )
        q_last = np.where(n[:, -1] > 0, mass[:, -1] / np.maximum(n[:, -1], 1), 1.0)
        plogq = mlogq + np.where(tail > 0, tail * np.log(q_last), 0.0)
        kl = (plogp - plogq) / total + np.log(cum[cand] / total)
    kl = np.where(((tail > 0) & (last == 0)) | (cum[cand] <= 0), np.inf, kl)
    return cand, kl


def entropy_threshold_bins(counts: np.ndarray, *, start_bin: int = 128, num_levels: int = 128) -> int:
    """The KL-optimal threshold of a |x| histogram, in bins (amax = result * bin width)."""
    cand, kl = entropy_divergences(counts, start_bin=start_bin, num_levels=num_levels)
    if len(cand) == 0:
        return 0
    best = len(kl) - 1 - int(np.argmin(kl[::-1]))  # last minimum, as ModelOpt
    return int(cand[best])


@register_calibrator("entropy")
class EntropyCalibrator(BinSearchCalibrator):
    """amax minimising KL(P || Q) between |x| and its 128-level quantization (TensorRT's entropy method).

    Args:
        num_bins: coarse histogram bins searched (default 2048, as TensorRT).
        start_bin: smallest candidate threshold in bins (default 128, the INT8 levels).
        collector: a shared collector.
        format: the quantization format (the candidate distribution has `format.levels` levels).
    """

    def search(self, counts: np.ndarray, *, start_bin: int) -> int:
        return entropy_threshold_bins(counts, start_bin=start_bin, num_levels=self.format.levels)
