"""Calibration: one pass of the FP32 model over the data gives every method's per-tensor amax.

`calibrate()` (the pass), `Calibration` (the result and calibration.json), `choose_method()` (`--calib all`'s
choice on held-out data), and the TensorRT calibration cache reader and writer.
"""

from trtq.calibration.choose import choose_method
from trtq.calibration.result import CALIBRATION_FORMAT, Calibration
from trtq.calibration.run import calibrate, load_model, make_calibrators, resolve_methods
from trtq.calibrators.plot import plot_thresholds
from trtq.engines.calib_cache import read_trt_cache, write_trt_cache
from trtq.formats import INT8

__all__ = [
    "Calibration",
    "calibrate",
    "choose_method",
    "resolve_methods",
    "make_calibrators",
    "load_model",
    "plot_thresholds",
    "read_trt_cache",
    "write_trt_cache",
    "MIN_AMAX",
    "CALIBRATION_FORMAT",
]

#: amax given to a tensor that was exactly zero on all calibration data (INT8): the smallest amax whose scale is
#: still a normal FP16 number, so FP16-typed Q/DQ scales stay valid.
MIN_AMAX = INT8.min_amax
