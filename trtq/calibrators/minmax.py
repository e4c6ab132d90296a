"""MinMax calibration: amax is the largest |x| seen (TensorRT's MinMaxCalibration, ModelOpt's "max")."""

from __future__ import annotations

from trtq.calibrators.base import register_alias, register_calibrator
from trtq.calibrators.collector import TensorHistogram
from trtq.calibrators.histogram import CollectorCalibrator

__all__ = ["MinMaxCalibrator"]


@register_calibrator("minmax")
class MinMaxCalibrator(CollectorCalibrator):
    """amax = max |x| over all calibration data; exact, never clips, sensitive to outliers."""

    needs_histogram = False

    def amax_from(self, rec: TensorHistogram) -> float:
        return rec.absmax


register_alias("max", "minmax")
