"""`trtq.finetune.layout`: where a graph has Q/DQ, and the check against the PTQ graph of the same model."""

from __future__ import annotations

import onnx

from trtq.finetune.layout import check_placement, qdq_layout
from trtq.placement import plan_qdq


def test_qat_graph_has_ptq_placement_and_a_removed_pair_is_caught(outlier_run) -> None:
    qat_graph = onnx.load(outlier_run.artifacts["model.qat.onnx"])
    fp32 = onnx.load(outlier_run.artifacts["model.onnx"])
    ops = [n.op_type for n in qat_graph.graph.node]
    plan = plan_qdq(fp32)
    layout = qdq_layout(qat_graph)
    assert set(layout.activations) == set(plan.activations)  # same tensors as PTQ, one pair each
    assert ops.count("QuantizeLinear") == len(plan.activations) + len(plan.weights)
    assert check_placement(qat_graph, fp32, plan).matches
    # a pair removed from the graph is caught
    broken = onnx.ModelProto()
    broken.CopyFrom(qat_graph)
    q = next(
        n
        for n in broken.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] == "/pool/MaxPool_output_0"
    )
    dq = next(n for n in broken.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    for n in broken.graph.node:
        for i, name in enumerate(n.input):
            if name == dq.output[0]:
                n.input[i] = q.input[0]
    broken.graph.node.remove(q)
    broken.graph.node.remove(dq)
    bad = check_placement(broken, fp32, plan)
    assert not bad.matches and bad.missing == ["/pool/MaxPool_output_0"]
    assert bad.summary().startswith("Q/DQ placement differs from PTQ: missing: /pool/MaxPool_output_0")


def test_weights_are_read_per_channel_on_their_axis(outlier_run) -> None:
    layout = qdq_layout(onnx.load(outlier_run.artifacts["model.qat.onnx"]))
    assert layout.weights and set(layout.weights.values()) == {0}  # Conv and Gemm weights: output channels
