"""Base class for calibrators that read a (possibly shared) `HistogramCollector`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trtq.calibrators.base import CalibParam, Calibrator
from trtq.calibrators.collector import HistogramCollector, TensorHistogram
from trtq.formats import INT8, QuantFormat

__all__ = ["CollectorCalibrator", "BinSearchCalibrator", "fine_bins_for", "NUM_BINS"]

#: Coarse histogram bins the threshold searches run over by default (TensorRT's choice).
NUM_BINS = 2048


def fine_bins_for(num_bins: int) -> int:
    """Fine histogram size for `num_bins` coarse bins: a power of two, at least 32 x num_bins."""
    return 1 << max(16, (32 * int(num_bins) - 1).bit_length())


class CollectorCalibrator(Calibrator):
    """A calibrator whose statistics live in a `HistogramCollector`.

    Pass one collector to several calibrators to compute all their methods from a single pass: feed
    the collector (or any one of the calibrators) once per batch, then ask each calibrator for its amax.

    Args:
        num_bins: coarse histogram bins the threshold search runs over.
        collector: a shared collector; by default the calibrator owns a new one.
        format: the quantization format the thresholds are for (its levels shape the search grids).
    """

    #: False when only min/max/moments are needed (the collector can skip histograms)
    needs_histogram: bool = True

    def __init__(
        self,
        *,
        num_bins: int = NUM_BINS,
        collector: HistogramCollector | None = None,
        format: QuantFormat = INT8,
    ) -> None:
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = int(num_bins)
        self.format = format
        if collector is None:
            collector = HistogramCollector(fine_bins_for(num_bins), histograms=self.needs_histogram)
        elif self.needs_histogram and not collector.keep_histograms:
            raise ValueError(f"{type(self).__name__} needs a collector that keeps histograms")
        self.collector = collector

    def collect(self, tensors: Mapping[str, np.ndarray]) -> None:
        self.collector.collect(tensors)

    def compute_amax(self) -> dict[str, float]:
        return {name: float(self.amax_from(rec)) for name, rec in self.collector.tensors.items()}

    def amax_from(self, rec: TensorHistogram) -> float:
        """The threshold for one tensor's collected statistics (0.0 for a tensor that was all zeros)."""
        raise NotImplementedError


class BinSearchCalibrator(CollectorCalibrator):
    """A calibrator that searches candidate thresholds over a coarse histogram of |x|.

    Subclasses implement `search(counts, start_bin=..., format=...) -> bin index`; the amax is that bin's upper
    edge, capped at the largest |x| seen.

    Args:
        num_bins: coarse histogram bins searched (default 2048, as TensorRT).
        start_bin: smallest candidate threshold in bins (default: the format's levels, 128 for INT8).
        collector: a shared collector.
        format: the quantization format.
    """

    params = (
        CalibParam("num_bins", int, NUM_BINS, "coarse histogram bins the threshold search runs over", low=2),
        CalibParam(
            "start_bin",
            int,
            None,
            "smallest candidate threshold, in bins (default: the format's levels)",
            low=1,
        ),
    )

    def search(self, counts: np.ndarray, *, start_bin: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def __init__(
        self,
        *,
        num_bins: int = NUM_BINS,
        start_bin: int | None = None,
        collector: HistogramCollector | None = None,
        format: QuantFormat = INT8,
    ) -> None:
        super().__init__(num_bins=num_bins, collector=collector, format=format)
        self.start_bin = int(format.levels if start_bin is None else start_bin)

    def amax_from(self, rec: TensorHistogram) -> float:
        hist = rec.coarse(self.num_bins)
        if len(hist.counts) == 0:
            return 0.0
        i = self.search(hist.counts, start_bin=self.start_bin)
        return min(i * hist.bin_width, rec.absmax) if i < len(hist.counts) else rec.absmax
