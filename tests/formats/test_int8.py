"""INT8 as TensorRT quantizes: symmetric, zero point 0, scale = amax / 127, per-channel from opset 13."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from trtq.formats import DEFAULT_FORMAT, FORMATS, INT8, MIN_SCALE


def test_int8_is_registered_and_the_default():
    assert FORMATS.get("int8") is INT8 and DEFAULT_FORMAT == "int8"


def test_int8_is_tensorrts_symmetric_int8():
    assert (INT8.max_value, INT8.qmin, INT8.qmax, INT8.levels) == (127.0, -128, 127, 128)
    assert INT8.onnx_type == TensorProto.INT8 and INT8.numpy_dtype is np.int8
    assert (INT8.min_opset, INT8.num_bits, INT8.trt_precision) == (13, 8, "int8")
    assert INT8.scale(6.35) == 6.35 / 127


def test_the_scale_floor_is_the_smallest_normal_fp16_number():
    assert MIN_SCALE == float(np.finfo(np.float16).smallest_normal)
    assert float(np.float16(MIN_SCALE)) == MIN_SCALE  # exact in the FP16 typing of model.trt.onnx
    assert INT8.min_amax == 127 * 2.0**-14


def test_int8_onnx_type_is_tensorproto_int8_without_importing_onnx_for_it():
    """INT8's ONNX element type is written as the standard's constant (so `import trtq.formats` needs no onnx)."""
    import onnx

    assert FORMATS.get("int8").onnx_type == onnx.TensorProto.INT8
