"""`trtq.weights.layers`: which nodes are layers, their grouped weight layout, and the input statistics."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.weights.cases import conv_model, feeds
from trtq.weights.layers import Layer, collect_inputs, find_layers, weight_array


@pytest.mark.parametrize(
    ("layer", "shape", "as_out_in"),
    [
        (Layer("c", "Conv", "w", 0, None, "x", group=1), (6, 4, 3, 3), lambda w: w.reshape(1, 6, -1)),
        (Layer("c", "Conv", "w", 0, None, "x", group=2), (6, 2, 3, 3), lambda w: w.reshape(2, 3, -1)),
        (Layer("g", "Gemm", "w", 0, None, "x", trans_b=True), (5, 7), lambda w: w[None]),
        (Layer("g", "Gemm", "w", 1, None, "x", trans_b=False), (7, 5), lambda w: w.T[None]),
        (Layer("m", "MatMul", "w", 1, None, "x"), (7, 5), lambda w: w.T[None]),
    ],
)
def test_grouped_is_groups_by_outputs_by_inputs_and_ungrouped_inverts_it(layer, shape, as_out_in):
    w = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    g = layer.grouped(w)
    np.testing.assert_array_equal(g, as_out_in(w))
    np.testing.assert_array_equal(layer.ungrouped(g, shape), w)


def _graph() -> onnx.ModelProto:
    """conv (bias, pads 1) -> flatten -> gemm (transB) -> matmul; plus a Gemm with transA, which is no layer."""
    rng = np.random.default_rng(0)
    inits = {
        "cw": rng.normal(0, 1, (4, 2, 3, 3)), "cb": np.zeros(4), "gw": rng.normal(0, 1, (5, 4 * 16)),
        "mw": rng.normal(0, 1, (5, 3)), "tw": rng.normal(0, 1, (5, 2)),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], "flat"),
        helper.make_node("Gemm", ["f", "gw"], ["g"], "gemm", transB=1),
        helper.make_node("MatMul", ["g", "mw"], ["y"], "matmul"),
        helper.make_node("Gemm", ["g", "tw"], ["t"], "gemm_ta", transA=1),
    ]
    g = helper.make_graph(
        nodes, "layers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_find_layers_takes_conv_gemm_and_matmul_of_the_plan_in_graph_order():
    model = _graph()
    weights = {"cw": 0, "gw": 0, "mw": 1, "tw": 0}
    layers = find_layers(model, weights, ["conv", "gemm", "matmul", "gemm_ta", "flat"])
    assert [(ly.node, ly.op, ly.weight, ly.bias, ly.input) for ly in layers] == [
        ("conv", "Conv", "cw", "cb", "x"), ("gemm", "Gemm", "gw", None, "f"), ("matmul", "MatMul", "mw", None, "g"),
    ]  # fmt: skip
    conv, gemm = layers[0], layers[1]
    assert conv.kernel == (3, 3) and conv.pads == (1, 1, 1, 1) and gemm.trans_b
    assert [ly.node for ly in find_layers(model, weights, ["gemm"])] == ["gemm"]  # only the plan's nodes
    assert find_layers(model, {}, ["conv"]) == []  # a weight the plan does not quantize: no layer
    np.testing.assert_array_equal(
        weight_array(model, "mw"), numpy_helper.to_array(model.graph.initializer[3])
    )


def test_collect_inputs_means_and_patches_are_those_of_the_real_inputs():
    rng = np.random.default_rng(2)
    w = rng.normal(0, 1, (3, 2, 3, 3)).astype(np.float32)
    model = conv_model(w, np.zeros(3, np.float32), size=5, pads=1)
    layers = find_layers(model, {"w": 0}, ["conv"])
    x = rng.normal(0, 1, (12, 2, 5, 5)).astype(np.float32)
    got = collect_inputs(model, layers, feeds(x, 4), patches=True, seed=0, batches=3, patches_per_layer=30)
    assert got.samples == 12
    np.testing.assert_allclose(got.mean["conv"], x.mean(axis=0), rtol=1e-5, atol=1e-6)
    patches = got.patches["conv"]
    assert patches.shape == (1, 30, 2 * 9)
    every = (
        torch.nn.functional.unfold(torch.from_numpy(x), (3, 3), padding=1).permute(0, 2, 1).reshape(-1, 18)
    )
    for p in patches[0]:  # each sampled patch is one the conv really reads (zero padding included)
        assert np.isclose(every.numpy(), p, atol=1e-6).all(axis=1).any()
    again = collect_inputs(model, layers, feeds(x, 4), patches=True, seed=0, batches=3, patches_per_layer=30)
    np.testing.assert_array_equal(again.patches["conv"], patches)  # seeded
    no_patches = collect_inputs(model, layers, feeds(x, 4), patches=False, seed=0, batches=1)
    assert no_patches.patches == {} and no_patches.samples == 4  # only `batches` batches are read
