"""Tiny ONNX graphs the engine tests build with (written to files, since the build recipe parses files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

__all__ = ["conv_model"]


def conv_model(
    path: Path, batch: str | int = "N", height: str | int = 8, qdq: bool = True, fp16: bool = False
) -> Path:
    """A Conv over `x` (optionally with Q/DQ on input and weight, and an FP16 Relu), written to `path`."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    inits = [w]
    nodes = []
    x, weight = "x", "w"
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "zp"),
            numpy_helper.from_array(np.full((4,), 0.01, np.float32), "ws"),
            numpy_helper.from_array(np.zeros((4,), np.int8), "wzp"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xdq"]),
            helper.make_node("QuantizeLinear", ["w", "ws", "wzp"], ["wq"], axis=0),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["wdq"], axis=0),
        ]
        x, weight = "xdq", "wdq"
    nodes.append(helper.make_node("Conv", [x, weight], ["y"], pads=[1, 1, 1, 1]))
    out = "y"
    if fp16:
        nodes += [
            helper.make_node("Cast", ["y"], ["y16"], to=TensorProto.FLOAT16),
            helper.make_node("Relu", ["y16"], ["r16"]),
            helper.make_node("Cast", ["r16"], ["z"], to=TensorProto.FLOAT),
        ]
        out = "z"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 4, height, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path
