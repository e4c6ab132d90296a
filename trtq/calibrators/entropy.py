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

Saturation. Real post-activation tensors often hold a point mass at their largest value: ReLU6 and Clip
outputs saturate at exactly 6.0 (or the clip bound) on a fraction of the positions. KL(P || Q) does not
weigh how far clipped values move, only how much mass moves, so when that mass is small the search clips
below the saturation value (on EfficientNet-Lite1 with its published weights: 3.4 and 3.6 instead of 6.0,
the same thresholds ModelOpt's torch `HistogramCalibrator` picks), and every saturated activation, the
strongest response of its channel, is then read as the threshold. That is where the accuracy of entropy
calibration went on ReLU6 networks (output cosine 0.970 against 0.992 with max calibration of the same
tensors, docs/accuracy.md). A point mass at max|x| is what the network itself put there, and quantization
represents it exactly only with amax = max|x|; so when the fine histogram bin holding max|x| holds at least
`saturation` times the mean count of the fine bins below it (and at least 16 values), the threshold is
max|x|. `saturation=0` turns the rule off and gives exactly TensorRT's and ModelOpt's search.
"""

from __future__ import annotations

import numpy as np

from trtq.calibrators.base import CalibParam, register_calibrator
from trtq.calibrators.collector import TensorHistogram
from trtq.calibrators.histogram import BinSearchCalibrator

__all__ = [
    "EntropyCalibrator",
    "entropy_divergences",
    "entropy_threshold_bins",
    "saturates",
    "SATURATION_RATIO",
    "SATURATION_WINDOW",
    "SATURATION_MIN_COUNT",
]

#: A top fine bin this many times fuller than the mean of the bins below it is a saturation point mass.
SATURATION_RATIO = 64.0
#: Fine bins below the top one whose mean count the top bin is compared with.
SATURATION_WINDOW = 256
#: Fewest values at max|x| that can count as saturation (a lone maximum never does).
SATURATION_MIN_COUNT = 16


def saturates(rec: TensorHistogram, ratio: float = SATURATION_RATIO) -> bool:
    """Whether a tensor has a point mass at max|x| (a saturating activation such as ReLU6 or Clip).

    True when the fine bin holding max|x| holds at least `ratio` times the mean count of the
    `SATURATION_WINDOW` fine bins below it and at least `SATURATION_MIN_COUNT` values; `ratio <= 0` is never.
    """
    if ratio <= 0 or rec.fine is None:
        return False
    nz = np.flatnonzero(rec.fine)
    if len(nz) == 0:
        return False
    k = int(nz[-1])
    top = int(rec.fine[k])
    if top < SATURATION_MIN_COUNT or k == 0:
        return False
    below = rec.fine[max(1, k - SATURATION_WINDOW) : k]  # bin 0 (exact zeros) never counts as "below"
    mean = float(below.mean()) if len(below) else 0.0
    return top >= ratio * mean


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
        saturation: keep amax = max|x| where the tensor has a point mass there (see the module doc); the
            ratio of the top fine bin to the mean below it that counts as one (default 64; 0 = off, exactly
            TensorRT's and ModelOpt's search).
        collector: a shared collector.
        format: the quantization format (the candidate distribution has `format.levels` levels).
    """

    params = BinSearchCalibrator.params + (
        CalibParam(
            "saturation",
            float,
            SATURATION_RATIO,
            "keep amax at max|x| where a point mass sits there (ReLU6/Clip saturation); 0 = off",
            low=0.0,
        ),
    )

    def __init__(self, *, saturation: float = SATURATION_RATIO, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.saturation = float(saturation)

    def amax_from(self, rec: TensorHistogram) -> float:
        if saturates(rec, self.saturation):
            return rec.absmax
        return super().amax_from(rec)

    def search(self, counts: np.ndarray, *, start_bin: int) -> int:
        return entropy_threshold_bins(counts, start_bin=start_bin, num_levels=self.format.levels)
