"""Multiply-accumulates per weighted layer, against the formula."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from trtq.sensitivity.macs import layer_macs


def test_layer_macs_match_the_formula():
    w = numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.zeros((8 * 6 * 6, 5), np.float32), "g")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], "flat"),
        helper.make_node("MatMul", ["f", "g"], ["y"], "mm"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w, g],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    macs = layer_macs(model, {"x": np.zeros((3, 4, 12, 12), np.float32)})
    assert macs == {"conv": 8 * 6 * 6 * 4 * 3 * 3, "mm": 8 * 6 * 6 * 5}
