"""INT8's ONNX element type is written as the standard's constant (so `import trtq.formats` needs no onnx)."""

import onnx

from trtq.formats import FORMATS


def test_int8_onnx_type_is_tensorproto_int8():
    assert FORMATS.get("int8").onnx_type == onnx.TensorProto.INT8
