"""The compiled loops of the calibration pass (`trtq.calibrators._kernels`) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.calibrators import HistogramCollector
from trtq.calibrators._kernels import fold_block, rounding_errors
from trtq.calibrators.mse import rounding_error_integral


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moments_and_bins_equal_numpy_across_the_kernel_blocks(dtype):
    """The compiled fold (`_kernels.fold_block`) over a tensor of several blocks and a ragged end: sum, sum of
    squares and non-zero count as numpy computes them in float64, and every value in numpy's bin."""
    from trtq.calibrators._kernels import _BLOCK

    rng = np.random.default_rng(7)
    x = np.maximum(rng.standard_normal(3 * _BLOCK + 4321), -0.5).astype(dtype)
    x[::5] = 0.0
    col = HistogramCollector(1 << 16)
    col.collect({"t": x[:1000]})
    col.collect({"t": x[1000:]})  # the range set by the first part grows: bins merged, then binned on
    rec = col["t"]
    wide = x.astype(np.float64)
    assert rec.sum == pytest.approx(wide.sum(), rel=1e-12)
    assert rec.sumsq == pytest.approx(np.dot(wide, wide), rel=1e-12)
    assert rec.nonzero == np.count_nonzero(x) and rec.count == x.size
    ref, _ = np.histogram(np.abs(x), bins=col.fine_bins, range=(0, col.fine_bins * rec.fine_width))
    np.testing.assert_array_equal(rec.fine, ref)


def test_fold_block_without_bins_leaves_no_histogram_and_counts_the_moments():
    x = np.array([0.0, -1.5, 2.0, 0.0, 3.0], dtype=np.float32)
    assert fold_block(x, 0.0, None) == (3.5, 15.25, 3)


def test_rounding_errors_equal_the_numpy_closed_form():
    """Each candidate's rounding term, as numpy computes it from the antiderivative H at the bin edges."""
    rng = np.random.default_rng(3)
    counts = rng.poisson(50.0 * np.exp(-np.arange(700) / 120.0)).astype(np.float64)
    cand = np.arange(128, 701)
    got = rounding_errors(counts, cand, 127)
    edges = np.arange(701, dtype=np.float64)
    ref = []
    for i in cand:
        step = i / 127.0
        per_bin = np.diff(rounding_error_integral(edges[: i + 1] / step))
        ref.append(float(counts[:i] @ per_bin) * step**3)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
