"""The compiled inner loop of `HistogramCollector` (numba): moments and |x| bins of a tensor in one call.

numpy needs five passes and two temporaries per chunk to bin |x| (abs, scale and cast to an index array, bincount's
own min/max pass, its count loop, the add into the histogram), plus three more for the moments; this loop reads each
value twice while it is still in the cache, once for the moments (vectorised: only the float64 sums are reordered,
`fastmath={"reassoc"}`) and once for its bin. The bin index is the same expression as before, floor(|x| * 2**-e)
computed in the tensor's own float type, so the histogram is bit-for-bit what numpy's `bincount` gives.

Compiled on first use and cached next to this file (or in numba's user cache directory); where neither can be
written, each process compiles the loops again (about a second) instead of failing.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["fold_block", "rounding_errors"]

_BLOCK = 1 << 16  # values whose moments and bins are taken together: the block is read twice from the cache


def _jit(**options: object):  # noqa: ANN202 - a decorator factory
    def decorate(fn):  # noqa: ANN001, ANN202
        try:
            return numba.njit(nogil=True, cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install and home)
            return numba.njit(nogil=True, **options)(fn)

    return decorate


@_jit(fastmath={"reassoc"})
def _moments(block):  # noqa: ANN001, ANN202
    # A loop over a whole array (a slice, not a lo..hi range of a larger one) is what LLVM vectorises: 0.15 ns a
    # value against 0.8 with range bounds.
    total = 0.0
    squares = 0.0
    nonzero = 0
    for i in range(block.size):
        v = np.float64(block[i])
        total += v
        squares += v * v
        nonzero += v != 0.0
    return total, squares, nonzero


@_jit()
def _bins(block, scale, fine):  # noqa: ANN001, ANN202
    for i in range(block.size):
        fine[np.intp(abs(block[i]) * scale)] += 1


@_jit()
def _fold(flat, scale, fine, binning):  # noqa: ANN001, ANN202
    total = 0.0
    squares = 0.0
    nonzero = 0
    n = flat.size
    for lo in range(0, n, _BLOCK):
        block = flat[lo : min(lo + _BLOCK, n)]
        t, s, z = _moments(block)
        total += t
        squares += s
        nonzero += z
        if binning:
            _bins(block, scale, fine)
    return total, squares, nonzero


def fold_block(flat: np.ndarray, scale: float, fine: np.ndarray | None) -> tuple[float, float, int]:
    """Sum, sum of squares (both in float64) and non-zero count of a 1-D float tensor; with `fine`, add each value's
    bin floor(|x| * scale) to it (`scale` a power of two, computed in `flat`'s float type; every index must be below
    `len(fine)`, which the caller guarantees from max|x|)."""
    binning = fine is not None
    if fine is None:
        fine = np.zeros(1, dtype=np.int64)
    total, squares, nonzero = _fold(flat, flat.dtype.type(scale), fine, binning)
    return float(total), float(squares), int(nonzero)


@_jit()
def _rounding_errors(counts, cand, max_int, out):  # noqa: ANN001, ANN202
    # out[c] = step^3 * sum over bins j < cand[c] of counts[j] * (H((j + 1) / step) - H(j / step)), step = cand[c] /
    # max_int, H(u) = floor(u + 1/2) / 12 + (u - floor(u + 1/2))^3 / 3: `mse.mse_errors`'s rounded part, one candidate
    # at a time instead of a (candidates x bins) array per block
    for c in range(cand.size):
        i = cand[c]
        step = i / max_int
        inv = 1.0 / step
        acc = 0.0
        prev = 0.0  # H(0)
        for j in range(i):
            u = (j + 1) * inv
            k = np.floor(u + 0.5)
            r = u - k
            h = k * (1.0 / 12.0) + r * r * r * (1.0 / 3.0)
            acc += counts[j] * (h - prev)
            prev = h
        out[c] = acc * step * step * step


def rounding_errors(counts: np.ndarray, cand: np.ndarray, max_int: int) -> np.ndarray:
    """The expected squared rounding error (in squared bin widths) of the values below each candidate threshold of
    `cand` (bins), for a histogram of |x| read as piecewise uniform: the `rounded` term of `mse.mse_errors`."""
    out = np.empty(cand.size, dtype=np.float64)
    _rounding_errors(np.ascontiguousarray(counts, dtype=np.float64), np.ascontiguousarray(cand, dtype=np.int64),
                     float(max_int), out)  # fmt: skip
    return out
