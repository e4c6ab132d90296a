"""The shared-collector base classes: fine histogram sizing, shared collectors, and the bin search's amax."""

from __future__ import annotations

import numpy as np
import pytest

from tests.calibrators.cases import collect
from trtq.calibrators import (
    NUM_BINS,
    BinSearchCalibrator,
    CollectorCalibrator,
    HistogramCollector,
    fine_bins_for,
)
from trtq.formats import INT8


class FixedBin(BinSearchCalibrator):
    """Always picks bin `pick` (to see what the base class does with a search's answer)."""

    pick = 10

    def search(self, counts, *, start_bin):
        self.seen = (len(counts), start_bin)
        return self.pick


def test_fine_bins_are_a_power_of_two_of_at_least_32_per_coarse_bin():
    assert NUM_BINS == 2048 and fine_bins_for(NUM_BINS) == 1 << 16
    assert fine_bins_for(4096) == 1 << 17 and fine_bins_for(3000) == 1 << 17  # 32 x 3000 = 96000 -> 2^17
    assert fine_bins_for(2) == 1 << 16  # never fewer than 65536
    for n in (2, 1000, 2048, 5000):
        f = fine_bins_for(n)
        assert f >= 32 * n and f & (f - 1) == 0


def test_a_calibrator_owns_a_collector_or_shares_one_that_keeps_histograms():
    own = FixedBin(num_bins=512)
    assert own.collector.fine_bins == fine_bins_for(512) and own.collector.keep_histograms
    shared = HistogramCollector()
    assert FixedBin(collector=shared).collector is shared
    with pytest.raises(ValueError, match="FixedBin needs a collector that keeps histograms"):
        FixedBin(collector=HistogramCollector(histograms=False))
    with pytest.raises(ValueError, match="num_bins must be >= 2"):
        FixedBin(num_bins=1)
    with pytest.raises(NotImplementedError):
        CollectorCalibrator().amax_from(None)


def test_the_search_runs_over_the_coarse_histogram_and_its_bin_edge_is_capped_at_max():
    x = np.linspace(-4.0, 4.0, 10_001, dtype=np.float32)
    cal = FixedBin(num_bins=64, collector=collect(x))
    rec = cal.collector["t"]
    hist = rec.coarse(64)
    assert cal.compute_amax()["t"] == pytest.approx(10 * hist.bin_width)
    assert cal.seen == (len(hist.counts), INT8.levels)  # start bin: the format's levels by default
    cal.pick = 10_000  # past the last bin: the largest |x| seen
    assert cal.compute_amax()["t"] == rec.absmax == 4.0
    assert FixedBin(start_bin=3, collector=collect(x)).start_bin == 3


def test_a_tensor_that_was_all_zeros_gets_amax_zero():
    cal = FixedBin()
    cal.collect({"z": np.zeros(100, np.float32)})
    assert cal.compute_amax() == {"z": 0.0}
