"""Calibration methods: each turns streamed activations into one amax (clipping threshold) per tensor.

Built-in methods, in the order `--calib all` computes them: "entropy", "minmax" (alias "max"), "percentile",
"mse". All of them read one shared `HistogramCollector`, so computing every method costs a single pass over
the data. A plugin adds one with `@register_calibrator("name")`.
"""

from trtq.calibrators.base import (
    ALIASES,
    CALIBRATORS,
    CalibParam,
    Calibrator,
    canonical_method,
    get_calibrator,
    list_calibrators,
    method_params,
    register_alias,
    register_calibrator,
)
from trtq.calibrators.collector import (
    CoarseHistogram,
    HistogramCollector,
    NonFiniteActivation,
    TensorHistogram,
)
from trtq.calibrators.histogram import NUM_BINS, BinSearchCalibrator, CollectorCalibrator, fine_bins_for

# isort: split
# Registration order is the order `--calib all` computes and lists the methods.
from trtq.calibrators.entropy import EntropyCalibrator
from trtq.calibrators.minmax import MinMaxCalibrator
from trtq.calibrators.percentile import PercentileCalibrator

# isort: split
from trtq.calibrators.mse import MSECalibrator

__all__ = [
    "ALIASES",
    "CALIBRATORS",
    "CalibParam",
    "Calibrator",
    "BinSearchCalibrator",
    "NUM_BINS",
    "method_params",
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
