"""MACs per compute layer (trtq.sensitivity.macs), checked against the arithmetic of each op (numpy)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from trtq.sensitivity.macs import layer_macs


def _model(nodes, inits, x_shape, out="y"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_lstm_macs_are_steps_times_gates_times_hidden_times_input_plus_hidden():
    rng = np.random.default_rng(0)
    seq, inp, hidden = 5, 6, 7
    w = numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, inp)).astype(np.float32), "w")
    r = numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "r")
    nodes = [  # batch-first input, as PyTorch exports it: the first axis is the batch trtq takes one sample of
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="t"),
        helper.make_node("LSTM", ["xt", "w", "r"], ["y"], hidden_size=hidden, name="lstm"),
    ]
    macs = layer_macs(_model(nodes, [w, r], ["N", seq, inp]), {"x": np.zeros((3, seq, inp), np.float32)})
    assert macs == {"lstm": seq * 4 * hidden * (inp + hidden)}


def test_einsum_macs_are_output_elements_times_summed_indices():
    w = numpy_helper.from_array(np.ones((6, 3), np.float32), "w")
    node = helper.make_node("Einsum", ["x", "w"], ["y"], equation="bsc,cd->bsd", name="ein")
    macs = layer_macs(_model([node], [w], ["N", 4, 6]), {"x": np.zeros((1, 4, 6), np.float32)})
    assert macs == {"ein": 4 * 3 * 6}  # (b=1, s=4, d=3) outputs, each a sum over c=6
    node = helper.make_node("Einsum", ["x", "w"], ["y"], equation="...c,cd->...d", name="ell")
    macs = layer_macs(_model([node], [w], ["N", 4, 6]), {"x": np.zeros((2, 4, 6), np.float32)})
    assert macs == {"ell": 4 * 3 * 6}  # batch 1 of the sample: 1 x 4 x 3 outputs, summed over 6


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
