"""Graph utilities of the fast path: live tensors, what a variant changed, suffix models from a cut."""

from __future__ import annotations

import onnx

from trtq.sensitivity.graphs import changed_tensors, live_tensors, suffix_model


def test_live_tensors_changed_tensors_and_suffix(onnx_graph):
    base = onnx_graph("live_chain")
    live = live_tensors(base)
    assert live == [
        frozenset({"x"}),
        frozenset({"a"}),
        frozenset({"a", "b"}),
        frozenset({"c"}),
        frozenset({"y"}),
    ]
    variant = onnx.ModelProto()
    variant.CopyFrom(base)
    variant.graph.node[2].op_type = "Sub"  # c changes, and y after it
    assert changed_tensors(base, variant) == {"c", "y"}
    suffix = suffix_model(base, variant, frozenset({"a", "b"}))
    assert suffix.cut == ["a", "b"] and suffix.nodes == 2 and suffix.computed == ["y"]
    assert suffix_model(base, variant, frozenset({"a"})).nodes == 3  # b recomputed from a
    assert suffix_model(base, base).model is None
