"""INT8: symmetric, zero point 0, scale = amax / 127 (TensorRT's explicit INT8 quantization)."""

from __future__ import annotations

import numpy as np

from trtq.formats.base import QuantFormat, register_format

__all__ = ["INT8"]

INT8 = register_format(
    QuantFormat(
        name="int8",
        max_value=127.0,
        qmin=-128,
        qmax=127,
        onnx_type=3,  # onnx.TensorProto.INT8 (a constant of the ONNX standard; onnx is not imported here)
        numpy_dtype=np.int8,
        levels=128,
        min_opset=13,
        num_bits=8,
        trt_precision="int8",
    )
)
