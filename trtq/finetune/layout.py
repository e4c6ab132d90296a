"""Where a graph has Q/DQ, and whether a QAT graph has them where PTQ puts them.

`qdq_layout` reads a graph's layout (activation tensor -> the nodes that read its dequantized value;
weighted node -> per-channel axis of its weight). `check_placement` compares the QAT graph's layout with
the layout of `trtq.qdq.insert_qdq(fp32, plan)`, the PTQ graph, so the check does not trust this package's
own reading of the plan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.finetune.graph import GraphIndex, attr, qdq_pairs
from trtq.placement import QDQPlan

__all__ = ["WEIGHTED", "QDQLayout", "qdq_layout", "ptq_layout", "PlacementCheck", "check_placement"]

#: Ops whose constant second input is a weight.
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class QDQLayout:
    """Where a graph has Q/DQ.

    Attributes:
        activations: activation tensor -> sorted names of the nodes that read its dequantized value.
        weights: weighted node -> per-channel axis of its weight Q/DQ (-1 = per tensor).
    """

    activations: dict[str, list[str]] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)


def qdq_layout(model: onnx.ModelProto) -> QDQLayout:
    """Read the Q/DQ layout of a (normalised) graph."""
    graph = GraphIndex(model)
    acts: dict[str, set[str]] = {}
    weights: dict[str, int] = {}
    for q, dq in qdq_pairs(graph):
        readers = graph.consumers.get(dq.output[0], [])
        src = q.input[0]
        if src in graph.inits:
            scale = graph.array(q.input[1]) if q.input[1] in graph.inits else np.zeros(())
            w_rank = len(graph.inits[src].dims)
            axis = int(attr(q, "axis", 1)) % max(w_rank, 1) if scale.ndim else -1
            for r in readers:
                if r.op_type in WEIGHTED and len(r.input) > 1 and r.input[1] == dq.output[0]:
                    weights[r.name] = axis
        else:
            acts.setdefault(src, set()).update(r.name for r in readers)
    return QDQLayout({t: sorted(c) for t, c in acts.items()}, weights)


def ptq_layout(fp32: onnx.ModelProto, plan: QDQPlan) -> QDQLayout:
    """The layout of the PTQ graph `trtq.qdq.insert_qdq` makes from `fp32` and `plan` (any amax)."""
    from trtq.qdq import insert_qdq

    return qdq_layout(insert_qdq(fp32, plan, dict.fromkeys(plan.activations, 1.0)))


@dataclass
class PlacementCheck:
    """How a QAT graph's Q/DQ compare with the PTQ graph of the same FP32 model.

    Attributes:
        matches: True when both have Q/DQ on the same tensors, read by the same nodes, and the same
            weighted nodes have per-channel weights on the same axis.
        missing: activation tensors PTQ quantizes and the QAT graph does not.
        extra: activation tensors the QAT graph quantizes and PTQ does not.
        consumers: tensor -> {"ptq": [...], "qat": [...]} where both quantize it but for other readers.
        missing_weights, extra_weights: weighted nodes with a quantized weight in only one of the graphs.
        axis_mismatch: weighted node -> {"ptq": axis, "qat": axis}.
        activations, weights: counts in the QAT graph.
    """

    matches: bool
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    consumers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    missing_weights: list[str] = field(default_factory=list)
    extra_weights: list[str] = field(default_factory=list)
    axis_mismatch: dict[str, dict[str, int]] = field(default_factory=dict)
    activations: int = 0
    weights: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: either the counts that match, or the first differences."""
        if self.matches:
            return f"Q/DQ placement matches PTQ ({self.activations} activation, {self.weights} weight Q/DQ)"
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("other readers", list(self.consumers)),
            ("weights missing", self.missing_weights),
            ("extra weights", self.extra_weights),
            ("weight axis", list(self.axis_mismatch)),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}")
        return "Q/DQ placement differs from PTQ: " + "; ".join(parts)


def check_placement(qat: onnx.ModelProto, fp32: onnx.ModelProto, plan: QDQPlan) -> PlacementCheck:
    """Compare the Q/DQ of a QAT graph with the PTQ graph of `fp32` under `plan`.

    Args:
        qat: the QAT graph (names as the legacy exporter gives them; BatchNorm folded).
        fp32: the FP32 export of the same model.
        plan: `trtq.placement.plan_qdq(fp32, config)` with the config the QAT model was made with.
    """
    from trtq.placement import normalize

    got = qdq_layout(normalize(qat))
    want = ptq_layout(fp32, plan)
    missing = sorted(set(want.activations) - set(got.activations))
    extra = sorted(set(got.activations) - set(want.activations))
    consumers = {
        t: {"ptq": want.activations[t], "qat": got.activations[t]}
        for t in sorted(set(want.activations) & set(got.activations))
        if want.activations[t] != got.activations[t]
    }
    missing_w = sorted(set(want.weights) - set(got.weights))
    extra_w = sorted(set(got.weights) - set(want.weights))
    axis = {
        n: {"ptq": want.weights[n], "qat": got.weights[n]}
        for n in sorted(set(want.weights) & set(got.weights))
        if want.weights[n] != got.weights[n]
    }
    ok = not (missing or extra or consumers or missing_w or extra_w or axis)
    return PlacementCheck(
        ok, missing, extra, consumers, missing_w, extra_w, axis, len(got.activations), len(got.weights)
    )
