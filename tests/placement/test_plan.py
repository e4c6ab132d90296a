"""`plan_qdq` and `QDQPlan`: where Q/DQ land on whole graphs, which rules run, and the plan's JSON form."""

from __future__ import annotations

import json
from collections.abc import Callable

import onnx
import pytest

from tests.placement.checks import qdq_runs
from tests.zoo import IMG, G
from trtq.errors import UsageError
from trtq.placement import RULES, PlacementConfig, QDQPlan, plan_qdq
from trtq.placement.rules import default_rule_names, rule_names


def test_conv_inputs_quantized_outputs_not(onnx_graph):
    m = onnx_graph("residual_block")
    plan = plan_qdq(m)
    assert set(plan.quantized_nodes) == {"stem", "conv1", "conv2", "head"}
    assert plan.weights == {"stem.w": 0, "conv1.w": 0, "conv2.w": 0, "head.w": 0}
    assert "conv2_out" not in plan.activations  # no Q on a weighted op's output
    assert "stem.b" not in plan.weights  # bias stays float
    qdq_runs(m, plan)


def test_exclusion_by_regex_op_type_and_first_last(onnx_graph):
    m = onnx_graph("residual_block")
    assert set(plan_qdq(m, PlacementConfig(exclude_nodes=[r"conv\d"])).quantized_nodes) == {"stem", "head"}
    assert plan_qdq(m, PlacementConfig(exclude_op_types=["Conv"])).activations == []
    plan = plan_qdq(m, PlacementConfig(keep_first_last=True))
    assert set(plan.quantized_nodes) == {"conv1", "conv2"}
    assert (
        plan.decision_for("stem").rule == "KeepFirstLast"
        and plan.decision_for("head").rule == "KeepFirstLast"
    )
    assert "x" not in plan.activations


def test_transformer_block_matmuls_layernorm_residuals(onnx_graph):
    m = onnx_graph("transformer_block")
    plan = plan_qdq(m)
    assert set(plan.quantized_nodes) == {"q", "k", "v", "qk", "av", "o", "fc1", "fc2"}
    assert plan.decision_for("score").rule == "SmallOrGemv"
    # constant B of MatMul: per-channel along the last (output) axis
    assert all(plan.weights[f"{n}.w"] == 1 for n in ("q", "k", "v", "o", "fc1", "fc2"))
    # activation x activation MatMuls: both inputs quantized per-tensor
    assert plan.consumers["q_out"] == ["qk"] and plan.consumers["kT_out"] == ["qk"]
    assert plan.consumers["softmax_out"] == ["av"] and plan.consumers["v_out"] == ["av"]
    # LayerNorm output feeds the projections once (shared Q/DQ); LayerNorm inputs and residual Adds stay FP
    assert plan.consumers["ln1_out"] == ["q", "k", "v"]
    assert "x" not in plan.activations and "res1_out" not in plan.activations
    assert not plan.decision_for("res1").quantized and not plan.decision_for("res2").quantized
    # the scalar attention scale makes Mul a unary op: not a candidate
    assert plan.decision_for("scale_mul") is None and "qk_out" not in plan.activations
    qdq_runs(m, plan)


def test_a_residual_that_is_the_graph_input_is_quantized(onnx_graph):
    """Fixed: the residual Add was skipped when its residual was a graph input, so it ran FP32."""
    m = onnx_graph("residual_from_graph_input")
    plan = plan_qdq(m)
    d = plan.decision_for("add")
    assert d.rule == "ResidualAdd" and d.quantized
    assert plan.consumers["x"] == ["c1", "add"]
    qdq_runs(m, plan)


def test_gemm_and_conv_transpose_axes():
    g = G()
    flat = g.op("Flatten", ["x"], "flat")
    a = g.op("Gemm", [flat, g.const("ga.w", (32, 2048)), g.const("ga.b", (32,))], "ga", transB=1)
    b = g.op("Gemm", [a, g.const("gb.w", (32, 64))], "gb")
    up = g.op("ConvTranspose", ["x", g.const("up.w", (32, 16, 2, 2))], "up", strides=[2, 2])
    plan = plan_qdq(g.model(IMG, [b, up]), PlacementConfig(batch_hint=8))
    assert plan.weights == {"ga.w": 0, "gb.w": 1, "up.w": 1}
    assert set(plan.quantized_nodes) == {"ga", "gb", "up"}
    # at batch 1 the Gemms are matrix-vector products
    assert set(plan_qdq(g.model(IMG, [b, up])).quantized_nodes) == {"up"}


def test_plan_is_deterministic_and_explains_every_candidate(onnx_graph):
    m = onnx_graph("residual_block", downsample=True)
    a, b = plan_qdq(m), plan_qdq(m)
    assert a == b
    assert {d.node for d in a.decisions} >= {"stem", "conv1", "conv2", "down", "head", "add"}
    assert all(d.reason for d in a.decisions)


@pytest.mark.parametrize("bad", ["nope", "conv9"])
def test_unknown_exclusions_are_harmless(bad, onnx_graph):
    assert plan_qdq(onnx_graph("residual_block"), PlacementConfig(exclude_nodes=[bad])).quantized_nodes


def test_excluded_residual_add_gets_one_decision_and_no_qdq(onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(exclude_nodes=["add"]))
    assert [d.rule for d in plan.decisions if d.node == "add"] == ["ExcludedByName"]
    assert plan.consumers["stem_relu_out"] == ["conv1"]


def test_excluded_op_type_also_vetoes_pattern_candidates(onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(exclude_op_types=["Add"]))
    assert plan.decision_for("add").rule == "ExcludedByOpType" and not plan.decision_for("add").quantized
    assert plan.consumers["stem_relu_out"] == ["conv1"]


# ---- rules toggled by name -------------------------------------------------------------------------------

# rule -> (zoo graph, whether the rule acted on the plan of that graph)
ACTS: dict[str, tuple[str, Callable[[QDQPlan], bool]]] = {
    "NonConstantWeight": ("computed_weight", lambda p: p.decision_for("c").rule == "NonConstantWeight"),
    "SmallConv": ("small_convs", lambda p: p.decision_for("odd").rule == "SmallConv"),
    "SmallOrGemv": ("classifier_head", lambda p: p.decision_for("fc").rule == "SmallOrGemv"),
    "ResidualAdd": ("residual_block", lambda p: p.consumers["stem_relu_out"] == ["conv1", "add"]),
    "Int8Elementwise": ("squeeze_excitation", lambda p: p.consumers.get("se_sig_out") == ["se_mul"]),
    "PoolingChain": ("pooling", lambda p: p.consumers.get("r2_out") == ["avgpool"]),
    "Commuting": ("pooling", lambda p: p.decision_for("maxpool") is not None),
    "ConcatSharedScale": ("concat", lambda p: p.scale_groups == [["ra_out", "cat_out"]]),
    "AttentionMatMul": ("lone_activation_matmul", lambda p: p.decision_for("gram").rule == "AttentionMatMul"),
    "KeepAttentionFP16": ("transformer_block", lambda p: "qk" not in p.quantized_nodes),
    "TransformerHighPrecision": (
        "transformer_block",
        lambda p: p.decision_for("softmax") is not None and p.decision_for("ln2") is not None,
    ),
    "DetectionHead": (
        "digits_detector",
        lambda p: p.decision_for("/box.0/box.0.1/Conv").rule == "DetectionHead",
    ),
    "DetectionPostprocess": ("digits_detector", lambda p: p.decision_for("/Sigmoid") is not None),
    "NeckResizeConcat": ("digits_detector", lambda p: p.decision_for("/up/Resize") is not None),
    "ConcatThroughResize": ("digits_detector", lambda p: [len(g) for g in p.scale_groups] == [3]),
}


def test_every_switchable_built_in_rule_has_a_case():
    switchable = {n for n in rule_names() if RULES.get(n).switchable}
    assert set(ACTS) == switchable


@pytest.mark.parametrize("rule", list(ACTS))
def test_a_rule_disabled_by_name_stops_acting(rule, onnx_graph):
    graph, acted = ACTS[rule]
    m = onnx_graph(graph)
    on = plan_qdq(m, PlacementConfig(enable_rules=() if RULES.get(rule).default else (rule,)))
    off = plan_qdq(m, PlacementConfig(disable_rules=(rule,)))
    assert acted(on) and not acted(off)
    assert rule in on.enabled_rules and rule not in off.enabled_rules
    assert all(d.rule != rule for d in off.decisions)
    qdq_runs(m, off)


def test_disabling_every_switchable_rule_still_plans_the_weighted_ops(onnx_graph):
    off = tuple(n for n in rule_names() if RULES.get(n).switchable)
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(disable_rules=off))
    assert set(plan.quantized_nodes) == {"stem", "conv1", "conv2", "head"}
    assert plan.decision_for("add") is None and not plan.scale_groups
    assert plan.enabled_rules == ["ExcludedByName", "ExcludedByOpType", "KeepFirstLast"]


def test_plan_qdq_refuses_an_unknown_rule_before_any_work():
    with pytest.raises(UsageError, match="'SmallConvs' in disable_rules"):
        plan_qdq(onnx.ModelProto(), PlacementConfig(disable_rules=("SmallConvs",)))


# ---- the plan's JSON form ----------------------------------------------------------------------------------


def test_plan_records_the_enabled_rules_and_round_trips_through_json(onnx_graph):
    plan = plan_qdq(onnx_graph("concat"), PlacementConfig(disable_rules=("Commuting",)))
    assert plan.enabled_rules == [n for n in default_rule_names() if n != "Commuting"]
    doc = json.loads(json.dumps(plan.to_json()))
    assert doc["enabled_rules"] == plan.enabled_rules
    assert QDQPlan.from_json(doc) == plan


def test_from_json_accepts_a_plan_written_without_enabled_rules(onnx_graph):
    doc = plan_qdq(onnx_graph("residual_block")).to_json()
    del doc["enabled_rules"]
    old = QDQPlan.from_json(doc)
    assert old.enabled_rules is None
    assert old.activations == ["x", "stem_relu_out", "relu1_out", "out_relu_out"]
    assert QDQPlan.from_json(old.to_json()) == old


def test_compute_without_an_int8_path_and_custom_ops_are_listed_as_not_quantized():
    """LSTM, Einsum and custom ops are not candidates of any rule; the plan still says they stay out of INT8."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from trtq.placement.plan import NOT_QUANTIZABLE

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((1, 32, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((1, 32, 8)).astype(np.float32), "r"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "e"),
    ]
    nodes = [
        helper.make_node("LSTM", ["x", "w", "r"], ["h"], hidden_size=8, name="lstm"),
        helper.make_node("Squeeze", ["h"], ["hs"], name="sq"),
        helper.make_node("Einsum", ["hs", "e"], ["ein"], equation="tbh,hd->tbd", name="ein"),
        helper.make_node("Gelu", ["ein"], ["y"], domain="com.microsoft", name="gelu"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    plan = plan_qdq(model)
    got = {d.node: (d.quantized, d.rule, d.reason) for d in plan.decisions}
    assert got["lstm"][:2] == (False, NOT_QUANTIZABLE) and "no INT8 LSTM" in got["lstm"][2]
    assert got["ein"][:2] == (False, NOT_QUANTIZABLE) and "not Einsum" in got["ein"][2]
    assert got["gelu"][:2] == (False, NOT_QUANTIZABLE) and "custom op com.microsoft:Gelu" in got["gelu"][2]
    assert "sq" not in got and plan.activations == []
