"""The pattern rules around weighted ops (residual Add, element-wise, pools) and the shared Concat scale."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from tests.placement.checks import qdq_runs
from trtq.placement import PlacementConfig, plan_qdq
from trtq.qdq import insert_qdq


def test_residual_add_quantizes_only_the_residual_input(onnx_graph):
    m = onnx_graph("residual_block")
    plan = plan_qdq(m)
    assert plan.activations == ["x", "stem_relu_out", "relu1_out", "out_relu_out"]
    # the skip tensor is read quantized by both conv1 and the Add (one shared Q/DQ pair)
    assert plan.consumers["stem_relu_out"] == ["conv1", "add"]
    assert plan.decision_for("add").rule == "ResidualAdd"
    q = qdq_runs(m, plan)
    add = next(n for n in q.graph.node if n.name == "add")
    assert add.input[0] == "conv2_out" and add.input[1] == "stem_relu_out_DequantizeLinear_Output"
    assert sum(n.op_type == "QuantizeLinear" and n.input[0] == "stem_relu_out" for n in q.graph.node) == 1


def test_residual_add_with_two_conv_branches_quantizes_the_shorter_one(onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block", downsample=True))
    assert "down_out" in plan.activations and "conv2_out" not in plan.activations
    assert plan.consumers["down_out"] == ["add"]


def test_residual_add_sees_through_batchnorm(onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block", bn=True))
    assert plan.decision_for("add").quantized
    assert plan.consumers["stem_relu_out"] == ["conv1", "add"]


def test_residual_add_after_excluded_conv_gets_no_qdq(onnx_graph):
    m = onnx_graph("residual_block")
    plan = plan_qdq(m, PlacementConfig(exclude_nodes=["conv2"]))
    assert "conv2" not in plan.quantized_nodes
    assert "relu1_out" not in plan.activations  # excluded layer: nothing on its input
    assert plan.consumers["stem_relu_out"] == ["conv1"]
    d = plan.decision_for("add")
    assert not d.quantized and "high precision" in d.reason
    q = qdq_runs(m, plan)
    conv2 = next(n for n in q.graph.node if n.name == "conv2")
    assert conv2.input[0] == "relu1_out" and conv2.input[1] == "conv2.w"


def test_concat_inputs_share_one_scale(onnx_graph):
    m = onnx_graph("concat")
    plan = plan_qdq(m)
    assert "cat_out" in plan.activations
    assert plan.scale_groups == [["ra_out", "cat_out"]]
    q = insert_qdq(m, plan, {"x": 1.0, "ra_out": 2.0, "cat_out": 5.0})
    scales = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    assert scales["ra_out_scale"] == scales["cat_out_scale"] == np.float32(5.0 / 127)
    assert not plan_qdq(m, PlacementConfig(disable_rules=("ConcatSharedScale",))).scale_groups


def test_average_pool_in_int8_chain_maxpool_untouched(onnx_graph):
    m = onnx_graph("pooling")
    plan = plan_qdq(m)
    assert "r1_out" not in plan.activations  # nothing in front of MaxPool (it commutes with Q/DQ)
    assert "maxpool_out" in plan.activations
    assert plan.decision_for("maxpool").rule == "Commuting" and not plan.decision_for("maxpool").quantized
    assert plan.consumers["r2_out"] == ["avgpool"] and "avgpool_out" in plan.activations
    assert plan.decision_for("avgpool").rule == "PoolingChain"
    assert "r2_out" not in plan_qdq(m, PlacementConfig(disable_rules=("PoolingChain",))).activations


def test_global_pool_before_high_precision_head_follows_the_conv(onnx_graph):
    """GAP whose input a quantized conv writes is pooled in INT8 even though the classifier stays FP."""
    plan = plan_qdq(onnx_graph("classifier_head"))
    assert plan.decision_for("fc").rule == "SmallOrGemv"  # [batch=1, 10]
    assert plan.consumers["r1_out"] == ["gap"]
    assert "flat_out" not in plan.activations


def test_squeeze_excitation_mul_runs_in_int8_silu_is_not_a_product(onnx_graph):
    plan = plan_qdq(onnx_graph("squeeze_excitation"))
    assert plan.decision_for("silu") is None  # an activation, fused into c1
    assert "c1_out" not in plan.activations and "sig1_out" not in plan.activations
    assert plan.decision_for("se_mul").rule == "Int8Elementwise"
    assert set(plan.consumers["silu_out"]) == {"se_pool", "se_mul"}
    assert plan.consumers["se_sig_out"] == ["se_mul"]
    off = plan_qdq(onnx_graph("squeeze_excitation"), PlacementConfig(disable_rules=("Int8Elementwise",)))
    assert off.decision_for("se_mul") is None and "se_sig_out" not in off.activations


def test_residual_add_disabled_leaves_the_add_to_the_elementwise_rule(onnx_graph):
    """With ResidualAdd off, the Add of the residual block is the next rule's candidate (rules run in order)."""
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(disable_rules=("ResidualAdd",)))
    d = plan.decision_for("add")
    assert d.rule == "Int8Elementwise" and not d.quantized  # its output reaches the head conv through a Relu
    assert plan.consumers["stem_relu_out"] == ["conv1"] and "conv2_out" not in plan.activations
