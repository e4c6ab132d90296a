"""`normalize` and the graph helpers the rules build on."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from tests.placement.checks import qdq_runs
from tests.zoo import IMG, G
from trtq.placement import GraphIndex, normalize, plan_qdq
from trtq.placement.graph import activation_mul_source, ancestor_distances, fused_backbone


def test_legacy_identity_and_constant_nodes_are_normalised():
    g = G()
    g.nodes.append(helper.make_node("Identity", ["c1.w_raw"], ["c1.w"], "id_w"))
    g.const("c1.w_raw", (32, 32, 3, 3))
    g.nodes.append(
        helper.make_node(
            "Constant", [], ["c1.b"], "const_b", value=numpy_helper.from_array(np.zeros(32, np.float32))
        )
    )
    y = g.op("Conv", ["x", "c1.w", "c1.b"], "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m = g.model(IMG, [y])
    plan = plan_qdq(m)
    assert plan.weights == {"c1.w_raw": 0}
    q = qdq_runs(m, plan)
    assert {n.op_type for n in q.graph.node} == {"Conv", "QuantizeLinear", "DequantizeLinear"}


def test_unnamed_and_duplicate_nodes_get_deterministic_names():
    g = G()
    a = g.op("Relu", ["x"], "r")
    g.nodes.append(helper.make_node("Relu", [a], ["b"], "r"))  # duplicate name
    g.nodes.append(helper.make_node("Relu", ["b"], ["c"]))  # unnamed
    m = g.model(IMG, ["c"])
    names = [n.name for n in normalize(m).graph.node]
    assert names == ["r", "Relu_0", "Relu_1"]
    assert [n.name for n in normalize(m).graph.node] == names
    assert [n.name for n in m.graph.node] == ["r", "r", ""]  # the input is not modified


def test_fused_backbone_walks_through_the_conv_epilogue_and_silu_is_an_activation(onnx_graph):
    index = GraphIndex(normalize(onnx_graph("squeeze_excitation")))
    silu = index.node_by_name["silu"]
    assert activation_mul_source(index, silu) == "c1_out"
    assert fused_backbone(index, "silu_out", ("Conv",)).name == "c1"
    assert fused_backbone(index, "se_mul_out", ("Conv",)) is None  # a product of two tensors
    dist = ancestor_distances(index, "se_sig_out")
    assert dist["se_sig"] == 0 and dist["se_fc2"] == 1 and dist["c1"] > dist["se_pool"]
