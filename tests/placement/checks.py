"""What every placement test asserts about a plan besides where Q/DQ land: it inserts into a valid model."""

from __future__ import annotations

import onnx

from trtq.qdq import insert_qdq

__all__ = ["qdq_runs"]


def qdq_runs(m: onnx.ModelProto, plan) -> onnx.ModelProto:
    """The plan inserts cleanly (checker, full check) for any amax; returns the Q/DQ model."""
    q = insert_qdq(m, plan, {t: 1.0 for t in plan.activations})
    onnx.checker.check_model(q, full_check=True)
    return q
