"""Entropy (KL divergence) calibration against ModelOpt's HistogramCalibrator and its KL search."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from tests.calibrators.cases import aligned, collect
from trtq.calibrators import EntropyCalibrator
from trtq.calibrators.entropy import entropy_threshold_bins


@pytest.mark.parametrize(
    ("name", "bins"),
    [("relu_out", 2048), ("student_t3", 1024), ("laplace", 1024), ("bimodal", 1024), ("conv_out", 1024)],
)
def test_entropy_matches_modelopt_histogram_calibrator_within_one_bin(name, bins, samples):
    """Same data into ModelOpt's HistogramCalibrator (one collect, `bins` bins over [0, max|x|]) and into trtq.

    The data is scaled so max|x| = 16 - 2**-20: both histograms then have `bins` bins of width max|x|/bins
    (up to 2**-31), so both run the KL search over the same histogram. Tolerance: one bin (max|x| / bins).
    Fewer bins than 2048 in some cases only because ModelOpt's Python loop takes seconds per call.
    """
    from modelopt.torch.quantization.calib.histogram import HistogramCalibrator

    x = aligned(samples[name])
    col = collect(x)
    hist = col["t"].coarse(bins)
    assert len(hist.counts) == bins and hist.bin_width == 16 / bins
    ours = EntropyCalibrator(num_bins=bins, collector=col).compute_amax()["t"]
    ref = HistogramCalibrator(num_bins=bins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.collect(torch.from_numpy(x))
        theirs = float(ref.compute_amax("entropy"))
    assert abs(ours - theirs) <= hist.bin_width + 1e-6, (ours, theirs)


@pytest.mark.parametrize("seed", range(4))
def test_entropy_search_equals_modelopt_on_the_same_histogram(seed):
    """The vectorised KL search picks exactly the threshold of ModelOpt's loop, on arbitrary histograms."""
    from modelopt.torch.quantization.calib.histogram import _compute_amax_entropy

    rng = np.random.default_rng(seed)
    nb = 400
    shape = np.exp(-np.linspace(0, rng.uniform(3, 12), nb)) * rng.uniform(0.5, 1.5, nb)
    counts = rng.poisson(shape * 5000).astype(np.int64)
    counts[rng.choice(nb, 40, replace=False)] = 0  # empty bins exercise the zero-bin handling
    counts[-1] = max(counts[-1], 1)
    edges = np.arange(nb + 1, dtype=np.float64)
    theirs = float(_compute_amax_entropy(counts.copy(), edges, 8, False))
    assert entropy_threshold_bins(counts) == theirs
