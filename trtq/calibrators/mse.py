"""MSE calibration: the threshold that minimises the expected squared int8 quantization error of |x|.

The histogram is read as a piecewise-uniform density: the values of a bin are spread evenly over it. For
a candidate amax a = i bin widths (i = 128 ... bins) and step s = a / 127, a value x below a rounds to
the nearest multiple of s and a value above is clipped to a, so the expected error is

    sum over bins below a:  count / width * integral of (x - s round(x / s))^2 dx
    sum over bins above a:  count / width * integral of (x - a)^2 dx

Both integrals have closed forms: with H(u) = floor(u + 1/2) / 12 + r^3 / 3, r = u - round(u), the
antiderivative of the squared rounding error is s^3 H(x / s). The search is exhaustive over the
candidates (a compiled loop, `_kernels.rounding_errors`), so it equals a brute-force evaluation of the
same objective. Unlike putting each bin's mass at its center (ModelOpt's choice), this does not alias
the 127 quantization levels against the bin grid, and agrees with a brute-force search on the raw
samples to a bin or two.
"""

from __future__ import annotations

import numpy as np

from trtq.calibrators._kernels import rounding_errors
from trtq.calibrators.base import register_calibrator
from trtq.calibrators.histogram import BinSearchCalibrator

__all__ = ["MSECalibrator", "mse_errors", "mse_threshold_bins", "rounding_error_integral"]


def rounding_error_integral(u: np.ndarray) -> np.ndarray:
    """H(u) = integral from 0 to u of (v - round(v))^2 dv, for u >= 0."""
    k = np.floor(u + 0.5)
    r = u - k
    return k * (1.0 / 12.0) + r * r * r * (1.0 / 3.0)


def mse_errors(
    counts: np.ndarray, *, start_bin: int = 128, max_int: int = 127
) -> tuple[np.ndarray, np.ndarray]:
    """Expected squared quantization error, in squared bin widths, for each candidate threshold.

    Args:
        counts: histogram counts of |x| (bin j covers [j, j + 1) bin widths).
        start_bin: smallest candidate threshold in bins.
        max_int: largest quantized magnitude (127 for symmetric narrow-range int8).

    Returns:
        (candidates, errors): candidate thresholds i (amax = i bin widths), i = start_bin ... len(counts),
        and the summed expected squared error of all counted values for each.
    """
    n = np.asarray(counts, dtype=np.float64)
    nb = len(n)
    cand = np.arange(min(start_bin, nb), nb + 1, dtype=np.int64)
    cand = cand[cand >= 1]
    if len(cand) == 0:
        return cand, np.zeros(0)
    j = np.arange(nb, dtype=np.float64)
    # clipped part, bins j >= i: count * ((j + 1 - i)^3 - (j - i)^3) / 3 = count * ((j - i)^2 + (j - i) + 1/3)
    s0 = np.concatenate([np.cumsum(n[::-1])[::-1], [0.0]])
    s1 = np.concatenate([np.cumsum((n * j)[::-1])[::-1], [0.0]])
    s2 = np.concatenate([np.cumsum((n * j * j)[::-1])[::-1], [0.0]])
    i = cand.astype(np.float64)
    t0, t1, t2 = s0[cand], s1[cand], s2[cand]
    # sum n (j - i)^2 + n (j - i) + n / 3
    clipped = (t2 - 2 * i * t1 + i * i * t0) + (t1 - i * t0) + t0 / 3.0
    # rounded part, bins j < i: count * step^3 * (H((j + 1) / step) - H(j / step)), summed per candidate in a
    # compiled loop (numpy needed a candidates x bins array per block: ten times slower)
    rounded = rounding_errors(n, cand, max_int)
    return cand, np.maximum(clipped, 0.0) + rounded


def mse_threshold_bins(counts: np.ndarray, *, start_bin: int = 128, max_int: int = 127) -> int:
    """The MSE-optimal threshold in bins (amax = result * bin width; the first minimum)."""
    cand, err = mse_errors(counts, start_bin=start_bin, max_int=max_int)
    if len(cand) == 0:
        return 0
    return int(cand[int(np.argmin(err))])


@register_calibrator("mse")
class MSECalibrator(BinSearchCalibrator):
    """amax minimising the expected int8 quantization MSE of |x| over candidate thresholds.

    Args:
        num_bins: coarse histogram bins searched (default 2048).
        start_bin: first candidate bin (default 128, the INT8 levels).
        collector: a shared collector.
        format: the quantization format (values round to multiples of amax / `format.max_value`).
    """

    def search(self, counts: np.ndarray, *, start_bin: int) -> int:
        return mse_threshold_bins(counts, start_bin=start_bin, max_int=int(self.format.max_value))
