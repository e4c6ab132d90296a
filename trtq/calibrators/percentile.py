"""Percentile calibration: amax is the p-th percentile of |x|."""

from __future__ import annotations

from trtq.calibrators.base import CalibParam, register_calibrator
from trtq.calibrators.collector import HistogramCollector, TensorHistogram
from trtq.calibrators.histogram import NUM_BINS, CollectorCalibrator
from trtq.formats import INT8, QuantFormat

__all__ = ["PercentileCalibrator"]


@register_calibrator("percentile")
class PercentileCalibrator(CollectorCalibrator):
    """amax = the `percentile`-th percentile of |x| (0-100], read off the fine histogram.

    numpy.percentile's definition (linear interpolation between order statistics), with each order
    statistic read as the upper edge of its fine bin: the result is at most one fine bin
    (max|x| / 32768 .. max|x| / 65536 with the default sizes) above numpy.percentile(|x|, p).

    Args:
        percentile: the percentile of |x| to keep unclipped, 0 < p <= 100 (default 99.99).
        num_bins: coarse bins (unused by this method; accepted for a uniform signature).
        collector: a shared collector.
        format: the quantization format (unused: a percentile does not depend on it).
    """

    params = (
        CalibParam("percentile", float, 99.99, "percentile of |x| kept unclipped, in (0, 100]", low=0.0, high=100.0,
                   low_open=True),
    )  # fmt: skip

    def __init__(
        self,
        percentile: float = 99.99,
        *,
        num_bins: int = NUM_BINS,
        collector: HistogramCollector | None = None,
        format: QuantFormat = INT8,
    ) -> None:
        if not 0.0 < float(percentile) <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        super().__init__(num_bins=num_bins, collector=collector, format=format)
        self.percentile = float(percentile)

    def amax_from(self, rec: TensorHistogram) -> float:
        if self.percentile == 100.0:
            return rec.absmax
        return rec.quantile(self.percentile / 100.0)
