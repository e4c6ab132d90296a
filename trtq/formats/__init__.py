"""Quantization formats: what a quantized tensor is (value range, ONNX type, scale from amax).

One `QuantFormat` describes a format everywhere it matters: Q/DQ insertion (scale, zero point type, the
opset it needs), the calibrators' search grids (how many levels a threshold is spread over), QAT's fake
quantizers (bits) and the engine precision proof (which layer precision TensorRT reports). INT8 is the
only registered format today; a second one (FP8 E4M3) is one module that registers another instance.
"""

from trtq.formats.base import FORMATS, MIN_SCALE, QuantFormat, get_format, register_format
from trtq.formats.int8 import INT8

__all__ = ["QuantFormat", "FORMATS", "register_format", "get_format", "INT8", "DEFAULT_FORMAT", "MIN_SCALE"]

#: The format `trtq build` quantizes to unless told otherwise.
DEFAULT_FORMAT = INT8.name
