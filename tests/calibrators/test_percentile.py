"""Percentile calibration against numpy.percentile of |x|."""

from __future__ import annotations

import numpy as np
import pytest

from tests.calibrators.cases import collect
from tests.zoo import ACTIVATION_KINDS
from trtq.calibrators import PercentileCalibrator


@pytest.mark.parametrize("name", ACTIVATION_KINDS)
@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_matches_numpy_within_one_fine_bin(name, p, samples):
    x = samples[name]
    col = collect(x)
    ours = PercentileCalibrator(p, collector=col).compute_amax()["t"]
    ref = float(np.percentile(np.abs(x), p))
    fine = col["t"].fine_width  # max|x| / 32768 .. / 65536, 1/16 .. 1/32 of a 2048-bin bin
    assert ref - 1e-6 <= ours <= ref + fine + 1e-6


def test_percentile_100_is_the_max(samples):
    x = samples["laplace"]
    assert PercentileCalibrator(100.0, collector=collect(x)).compute_amax()["t"] == float(np.abs(x).max())
