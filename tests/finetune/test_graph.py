"""`trtq.finetune.graph`: the graph index and the edits the passes share."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.finetune.helpers import graph
from trtq.finetune.graph import GraphIndex, copy_model, prune_initializers, qdq_pairs, qparams, replace_uses


def _two_pairs(second_scale: float) -> object:
    """x -> Q/DQ (scale 0.05) -> Relu, and x -> Q/DQ (`second_scale`) read by two Relus."""
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s1"),
        numpy_helper.from_array(np.array(second_scale, np.float32), "s2"),
        numpy_helper.from_array(np.array(0, np.int8), "z"),
        numpy_helper.from_array(np.zeros(3, np.float32), "unused"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s1", "z"], ["q1"], "Q1"),
        helper.make_node("DequantizeLinear", ["q1", "s1", "z"], ["d1"], "DQ1"),
        helper.make_node("QuantizeLinear", ["x", "s2", "z"], ["q2"], "Q2"),
        helper.make_node("DequantizeLinear", ["q2", "s2", "z"], ["d2"], "DQ2"),
        helper.make_node("DequantizeLinear", ["q2", "s2", "z"], ["d3"], "DQ3"),  # q2 has two readers
        helper.make_node("Relu", ["d1"], ["y"], "relu"),
        helper.make_node("Relu", ["d2"], ["y2"], "relu2"),
        helper.make_node("Relu", ["d3"], ["y3"], "relu3"),
    ]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("y", "y2", "y3")]
    return graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], outs, inits)


def test_index_maps_producers_consumers_and_makes_fresh_names() -> None:
    model = _two_pairs(0.05)
    g = GraphIndex(model)
    assert g.producer["d1"].name == "DQ1" and [n.name for n in g.consumers["q2"]] == ["DQ2", "DQ3"]
    assert g.outputs == {"y", "y2", "y3"}
    assert g.fresh("relu") == "relu_1" and g.fresh("relu") == "relu_2" and g.fresh("new") == "new"
    name = g.add_init("s1", np.ones(2, np.float32))
    assert name == "s1_1" and np.array_equal(g.array(name), np.ones(2, np.float32))


def test_pairs_need_a_dq_that_reads_only_its_q_and_qparams_compare_quantizations() -> None:
    model = _two_pairs(0.05)
    g = GraphIndex(model)
    pairs = qdq_pairs(g)
    assert [(q.name, dq.name) for q, dq in pairs] == [("Q1", "DQ1")]  # q2 feeds two DQs: not a pair
    q1, q2 = g.producer["q1"], g.producer["q2"]
    assert qparams(g, q1) == qparams(g, q2)  # same scale, zero point, axis
    other = GraphIndex(_two_pairs(0.07))
    assert qparams(other, other.producer["q1"]) != qparams(other, other.producer["q2"])


def test_copy_replace_and_prune_leave_the_input_alone() -> None:
    model = _two_pairs(0.05)
    out = copy_model(model)
    replace_uses(out, "d2", "d1")
    prune_initializers(out)
    assert [n.input[0] for n in out.graph.node if n.name == "relu2"] == ["d1"]
    assert "unused" not in {t.name for t in out.graph.initializer}
    assert "unused" in {t.name for t in model.graph.initializer}  # the copy was edited, not the model
