"""The weighted-op rules: which Conv/Gemm/MatMul nodes stay in high precision, and the weight axes."""

from __future__ import annotations

from trtq.placement import GraphIndex, PlacementConfig, normalize, plan_qdq
from trtq.placement.rules import (
    NonConstantWeight,
    PlacementContext,
    SmallConv,
    SmallOrGemv,
    weight_axis,
    weight_input,
)


def test_depthwise_and_small_convs(onnx_graph):
    m = onnx_graph("small_convs")
    plan = plan_qdq(m)
    assert "dw" in plan.quantized_nodes and plan.weights["dw.w"] == 0
    assert {"tiny", "wide"} <= set(plan.quantized_nodes)
    assert plan.decision_for("odd").rule == "SmallConv"
    assert "tiny_out" not in plan.activations  # the skipped conv's input gets nothing
    assert plan.consumers["dw_out"] == ["tiny"]
    assert "odd" in plan_qdq(m, PlacementConfig(disable_rules=("SmallConv",))).quantized_nodes


def test_small_conv_says_why(onnx_graph):
    index = GraphIndex(normalize(onnx_graph("small_convs")))
    ctx = PlacementContext(index=index)
    rule = SmallConv()
    assert (
        rule.check(index.node_by_name["odd"], ctx)
        == "small conv (in 4, out 12 channels, group 1): faster in FP16"
    )
    assert (
        rule.check(index.node_by_name["tiny"], ctx) is None
        and rule.check(index.node_by_name["dw"], ctx) is None
    )


def test_classifier_gemm_is_a_gemv_at_batch_one_only(onnx_graph):
    m = onnx_graph("classifier_head")
    assert plan_qdq(m).decision_for("fc").rule == "SmallOrGemv"  # [batch=1, 10]
    index = GraphIndex(normalize(m), batch_hint=1)
    reason = SmallOrGemv().check(index.node_by_name["fc"], PlacementContext(index=index, batch_hint=1))
    assert reason == "matrix-vector product (output shape [1, 10] at batch 1)"
    # at batch 8 the Gemm is not a GEMV but still small (N = 10 < 16)
    index = GraphIndex(normalize(m), batch_hint=8)
    reason = SmallOrGemv().check(index.node_by_name["fc"], PlacementContext(index=index, batch_hint=8))
    assert reason == "small GEMM (N=10, K=32 < 16)"
    assert "fc" in plan_qdq(m, PlacementConfig(disable_rules=("SmallOrGemv",))).quantized_nodes


def test_non_constant_weight_and_weight_helpers(onnx_graph):
    index = GraphIndex(normalize(onnx_graph("computed_weight")))
    conv = index.node_by_name["c"]
    assert weight_input(conv, index) is None
    assert NonConstantWeight().check(conv, PlacementContext(index=index)) == "weight is not a constant"
    t = GraphIndex(normalize(onnx_graph("transformer_block")))
    q, qk = t.node_by_name["q"], t.node_by_name["qk"]
    assert weight_input(q, t) == 1 and weight_axis(q, t) == 1
    assert weight_input(qk, t) is None  # activation x activation
    assert NonConstantWeight().check(qk, PlacementContext(index=t)) is None  # quantized on both inputs
