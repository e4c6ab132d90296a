"""MSE calibration: the expected-error objective against numeric integration, and near-optimal on raw samples."""

from __future__ import annotations

import numpy as np
import pytest

from tests.calibrators.cases import collect
from trtq.calibrators import MSECalibrator
from trtq.calibrators.mse import mse_errors, mse_threshold_bins


def _brute_force_expected_mse(counts: np.ndarray, start_bin: int = 128, sub: int = 32) -> np.ndarray:
    """The same objective by numeric integration: each bin's mass spread over `sub` points, quantized directly."""
    nb = len(counts)
    pts = (np.arange(nb * sub) + 0.5) / sub  # positions in bin widths
    w = np.repeat(counts.astype(np.float64) / sub, sub)
    errs = []
    for i in range(start_bin, nb + 1):
        s = i / 127.0
        q = np.minimum(np.rint(pts / s), 127) * s
        errs.append(float(w @ (q - pts) ** 2))
    return np.array(errs)


@pytest.mark.parametrize("name", ["student_t3", "bimodal", "relu_out"])
def test_mse_equals_brute_force_search_of_the_same_objective(name, samples):
    col = collect(samples[name])
    counts = col["t"].coarse(384).counts  # few bins keep the brute force quick
    cand, errs = mse_errors(counts)
    brute = _brute_force_expected_mse(counts)
    np.testing.assert_allclose(errs, brute, rtol=2e-3)
    assert abs(mse_threshold_bins(counts) - (128 + int(np.argmin(brute)))) <= 1


@pytest.mark.parametrize("name", ["student_t3", "laplace", "bimodal", "relu_normal", "conv_out"])
def test_mse_threshold_is_near_optimal_on_the_raw_samples(name, samples):
    """On the raw samples, trtq's amax loses < 0.1% MSE against the best candidate found by brute force."""
    x = samples[name]
    col = collect(x)
    ours = MSECalibrator(collector=col).compute_amax()["t"]
    a = np.abs(x).astype(np.float64)

    def mse(t: float) -> float:
        return float(np.mean((np.minimum(np.rint(a * 127 / t), 127) * t / 127 - a) ** 2))

    w = col["t"].coarse().bin_width
    grid = np.arange(max(ours - 40 * w, w), ours + 40 * w, w / 2)
    best = min(mse(t) for t in grid)
    assert mse(ours) <= best * 1.001
    assert mse(ours) < mse(float(a.max()))  # and it beats not clipping at all on these tails
