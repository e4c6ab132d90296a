"""Checks on plans and Q/DQ graphs the placement and build tests share."""

from __future__ import annotations

import onnx

from trtq.qdq import insert_qdq

__all__ = ["qdq_runs", "dq_fed"]


def qdq_runs(m: onnx.ModelProto, plan) -> onnx.ModelProto:
    """The plan inserts cleanly (checker, full check) for any amax; returns the Q/DQ model."""
    q = insert_qdq(m, plan, {t: 1.0 for t in plan.activations})
    onnx.checker.check_model(q, full_check=True)
    return q


def dq_fed(model: onnx.ModelProto) -> set[str]:
    """Names of the Conv/Gemm nodes that read both their input and their weight through DequantizeLinear."""
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {
        n.name
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm") and n.input[0] in dq_out and n.input[1] in dq_out
    }
