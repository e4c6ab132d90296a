"""The transformer rules: attention MatMuls decided as a pair, lone activation MatMuls and LayerNorm/Softmax FP16."""

from __future__ import annotations

from tests.placement.checks import qdq_runs
from trtq.placement import PlacementConfig, plan_qdq
from trtq.placement.graph import GraphIndex, normalize
from trtq.placement.rules.transformer import attention_role


def test_attention_role_finds_both_matmuls_of_one_softmax(onnx_graph):
    index = GraphIndex(normalize(onnx_graph("transformer_block")))
    roles = {n.name: attention_role(n, index) for n in index.nodes}
    assert roles["qk"][0] == "scores" and roles["av"][0] == "context"
    assert roles["qk"][1] is roles["av"][1] and roles["qk"][1].op_type == "Softmax"
    # weighted MatMuls (a constant input) and the Softmax itself have no attention role
    assert roles["q"] is None and roles["fc1"] is None and roles["softmax"] is None


def test_a_gram_matrix_matmul_is_no_attention(onnx_graph):
    index = GraphIndex(normalize(onnx_graph("lone_activation_matmul")))
    assert attention_role(index.node_by_name["gram"], index) is None


def test_attention_matmuls_are_decided_as_a_pair(onnx_graph):
    m = onnx_graph("transformer_block")
    # the user keeps Q·Kᵀ in high precision: softmax·V would be a lone INT8 MatMul, so it stays FP16 too
    plan = plan_qdq(m, PlacementConfig(exclude_nodes=["qk"]))
    assert plan.decision_for("qk").rule == "ExcludedByName"
    assert plan.decision_for("av").rule == "AttentionMatMul" and "av" not in plan.quantized_nodes
    assert "softmax_out" not in plan.activations and "v_out" not in plan.activations
    # opt-in: both attention MatMuls FP16, the projections stay INT8
    fp16 = plan_qdq(m, PlacementConfig(enable_rules=("KeepAttentionFP16",)))
    assert {d.node for d in fp16.decisions if d.rule == "KeepAttentionFP16"} == {"qk", "av"}
    assert set(fp16.quantized_nodes) == {"q", "k", "v", "o", "fc1", "fc2"}
    qdq_runs(m, fp16)


def test_a_lone_activation_matmul_stays_fp16(onnx_graph):
    plan = plan_qdq(onnx_graph("lone_activation_matmul"))
    assert plan.decision_for("gram").rule == "AttentionMatMul"
    assert set(plan.quantized_nodes) == {"proj"}


def test_layernorm_softmax_and_residual_adds_of_a_transformer_get_no_qdq_and_say_why(onnx_graph):
    plan = plan_qdq(onnx_graph("transformer_block"))
    for node in ("ln1", "ln2", "softmax"):
        d = plan.decision_for(node)
        assert d.rule == "TransformerHighPrecision" and not d.quantized and d.reason
    inputs = {t for ts in plan.consumers.values() for t in ts}
    assert not inputs & {"ln1", "ln2", "softmax", "res1", "res2"}
