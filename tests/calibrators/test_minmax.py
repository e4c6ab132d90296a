"""MinMax: the exact max |x| of every tensor, without keeping histograms."""

from __future__ import annotations

import numpy as np
import pytest

from tests.calibrators.cases import collect
from tests.zoo import ACTIVATION_KINDS
from trtq.calibrators import MinMaxCalibrator


@pytest.mark.parametrize("name", ACTIVATION_KINDS)
def test_minmax_is_the_exact_max_abs(name, samples):
    x = samples[name]
    assert MinMaxCalibrator(collector=collect(x)).compute_amax()["t"] == float(np.abs(x).max())


def test_minmax_needs_no_histogram_and_a_zero_tensor_gives_zero():
    cal = MinMaxCalibrator()
    assert not cal.collector.keep_histograms
    cal.collect({"z": np.zeros(10, np.float32), "t": np.array([-3.0, 1.0], np.float32)})
    assert cal.compute_amax() == {"z": 0.0, "t": 3.0}
