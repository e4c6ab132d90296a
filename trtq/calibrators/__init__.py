"""Calibration methods: each turns streamed activations into one amax (clipping threshold) per tensor.

Registered methods: "minmax" (alias "max"), "entropy", "percentile", "mse". All of them can read one
shared `HistogramCollector`, so computing every method costs a single pass over the data.
"""

from trtq.calibrators.base import (
    ALIASES,
    CALIBRATORS,
    Calibrator,
    canonical_method,
    get_calibrator,
    list_calibrators,
    register_alias,
    register_calibrator,
)
from trtq.calibrators.collector import (
    CoarseHistogram,
    HistogramCollector,
    NonFiniteActivation,
    TensorHistogram,
)
from trtq.calibrators.entropy import EntropyCalibrator
from trtq.calibrators.histogram import CollectorCalibrator, fine_bins_for
from trtq.calibrators.minmax import MinMaxCalibrator
from trtq.calibrators.mse import MSECalibrator
from trtq.calibrators.percentile import PercentileCalibrator

__all__ = [
    "ALIASES",
    "CALIBRATORS",
    "Calibrator",
    "CoarseHistogram",
    "CollectorCalibrator",
    "EntropyCalibrator",
    "HistogramCollector",
    "MSECalibrator",
    "MinMaxCalibrator",
    "NonFiniteActivation",
    "PercentileCalibrator",
    "TensorHistogram",
    "canonical_method",
    "fine_bins_for",
    "get_calibrator",
    "list_calibrators",
    "register_alias",
    "register_calibrator",
]
