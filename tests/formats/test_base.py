"""`QuantFormat` and the format registry: amax <-> scale, the scale floor, zero points, lookup by name."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from trtq.errors import UsageError
from trtq.formats import FORMATS, INT8, MIN_SCALE, QuantFormat, get_format, register_format

FP8_LIKE = QuantFormat(name="test_e4m3", max_value=448.0, qmin=-448.0, qmax=448.0, onnx_type=TensorProto.FLOAT8E4M3FN,
                       numpy_dtype=np.float32, levels=128, min_opset=19, num_bits=(4, 3), trt_precision="fp8")  # fmt: skip


def test_scale_and_amax_are_inverse_for_scalars_and_arrays():
    assert FP8_LIKE.scale(448.0) == 1.0 and FP8_LIKE.amax(0.5) == 224.0
    amax = np.array([1.0, 127.0, 3.5])
    np.testing.assert_allclose(INT8.amax(INT8.scale(amax)), amax)
    assert INT8.scale(254.0) == 2.0


def test_min_amax_is_the_amax_of_the_smallest_scale_and_zero_points_are_typed():
    assert MIN_SCALE == 2.0**-14 and FP8_LIKE.min_amax == 448.0 * 2.0**-14
    zp = INT8.zero_point((3,))
    assert zp.dtype == np.int8 and zp.shape == (3,) and not zp.any()
    assert INT8.zero_point().shape == ()


def test_formats_are_looked_up_by_name_and_registered_once():
    assert get_format("int8") is INT8 and get_format(FP8_LIKE) is FP8_LIKE
    with pytest.raises(
        UsageError, match="--format 'fp4' is not a registered quantization format; choose from int8"
    ):
        get_format("fp4")
    try:
        assert register_format(FP8_LIKE) is FP8_LIKE and get_format("test_e4m3") is FP8_LIKE
        assert FORMATS.names()[-1] == "test_e4m3"
        with pytest.raises(ValueError, match="'test_e4m3' is registered twice"):
            register_format(FP8_LIKE)
    finally:
        FORMATS.unregister("test_e4m3")
    with pytest.raises(AttributeError):
        INT8.max_value = 1.0  # type: ignore[misc]  (frozen)
