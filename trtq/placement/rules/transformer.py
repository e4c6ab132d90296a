"""Rules for transformer blocks: attention's activation x activation MatMuls, and the ops that stay out of INT8.

TensorRT fuses a softmax attention (`Q·Kᵀ` -> scale -> mask -> Softmax -> `·V`) into one multi-head attention
kernel. In explicit quantization the INT8 kernel needs Q/DQ on all four inputs of the two batched MatMuls (Q, K,
the softmax output and V); with one of them missing it cannot run the INT8 fusion. So the two MatMuls of one
attention are decided together (`AttentionMatMul`): both quantized on both inputs, the default, as ModelOpt
does, or both kept FP16 (`KeepAttentionFP16`, off by default; ModelOpt's `--disable_mha_qdq`). An activation x
activation MatMul that is not part of a softmax attention has no fused INT8 kernel and stays FP16.

LayerNorm, Softmax, GELU/Erf, the embedding Gathers and the decomposed LayerNorm's statistics stay out of INT8
(`TransformerHighPrecision`): quantizing LayerNorm and Softmax collapses accuracy (ViT-B 84.5 -> 23.6 top-1 with
minmax in published results), and TensorRT has no INT8 kernels for them to fuse a Q/DQ into.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from trtq.placement.graph import COPY_OPS, GraphIndex
from trtq.placement.rules.base import (
    PatternRule,
    PlacementContext,
    PlanView,
    Verdict,
    WeightedRule,
    register_rule,
)

if TYPE_CHECKING:
    import onnx

__all__ = ["AttentionMatMul", "KeepAttentionFP16", "TransformerHighPrecision", "attention_role"]

#: Ops between Q·Kᵀ and the Softmax (scale, mask, the NaN guard of fully masked rows) and after it.
_SCORE_OPS = (
    frozenset({"Div", "Mul", "Add", "Sub", "Where", "Cast", "Dropout", "Clip", "Max", "Min"}) | COPY_OPS
)


def _is_activation_matmul(node: onnx.NodeProto, index: GraphIndex) -> bool:
    return node.op_type == "MatMul" and not any(index.is_const_like(i) for i in node.input[:2])


def _score_path(index: GraphIndex, tensor: str, forward: bool, depth: int = 0) -> onnx.NodeProto | None:
    """The Softmax reached from `tensor` through scale/mask/copy ops (forward: its readers; else: its producer)."""
    if depth > 12:
        return None
    nodes = index.consumers_of(tensor) if forward else [index.producer_of(tensor)]
    for node in nodes:
        if node is None:
            continue
        if node.op_type == "Softmax":
            return node
        if node.op_type not in _SCORE_OPS:
            continue
        nexts = node.output if forward else [i for i in node.input if i and not index.is_const_like(i)]
        for t in nexts:
            found = _score_path(index, t, forward, depth + 1)
            if found is not None:
                return found
    return None


def attention_role(node: onnx.NodeProto, index: GraphIndex) -> tuple[str, onnx.NodeProto | None] | None:
    """("scores", softmax) for `Q·Kᵀ`, ("context", softmax) for `softmax·V`, or None when `node` is no
    activation x activation MatMul of a softmax attention."""
    if not _is_activation_matmul(node, index):
        return None
    softmax = _score_path(index, node.output[0], forward=True)
    if softmax is not None:
        return "scores", softmax
    for t in node.input[:2]:
        softmax = _score_path(index, t, forward=False)
        if softmax is not None:
            return "context", softmax
    return None


def _partner(
    node: onnx.NodeProto, role: str, softmax: onnx.NodeProto, index: GraphIndex
) -> onnx.NodeProto | None:
    """The other MatMul of the same attention."""
    for other in index.nodes:
        if other is node or not _is_activation_matmul(other, index):
            continue
        found = attention_role(other, index)
        if found is not None and found[0] != role and found[1] is softmax:
            return other
    return None


def _excluded(name: str, ctx: PlacementContext) -> bool:
    return (
        any(name == p or re.fullmatch(p, name) for p in ctx.exclude_nodes) or "MatMul" in ctx.exclude_op_types
    )


@register_rule(order=450)
class AttentionMatMul(WeightedRule):
    """Activation x activation MatMuls: quantized on both inputs only as one of a softmax attention's pair.

    `Q·Kᵀ` (its output reaches a Softmax through scale, mask and copy ops) and `softmax·V` (an input comes from
    a Softmax) get Q/DQ on both inputs, so TensorRT can run its fused INT8 attention; both stay FP16 when the
    user keeps the other one in high precision. Any other MatMul of two activations stays FP16: TensorRT has no
    fused INT8 kernel for it. MatMuls with a constant input are not this rule's business.
    """

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if not _is_activation_matmul(node, ctx.index):
            return None
        found = attention_role(node, ctx.index)
        if found is None:
            return (
                "activation x activation MatMul outside a softmax attention: no fused INT8 kernel, stays FP16"
            )
        partner = _partner(node, found[0], found[1], ctx.index)
        if partner is not None and _excluded(partner.name, ctx):
            return f"its attention partner {partner.name} is kept in high precision: the pair stays FP16"
        return None


@register_rule(default=False, order=440)
class KeepAttentionFP16(WeightedRule):
    """Both MatMuls of every softmax attention stay FP16 (TensorRT's FP16 fused attention; ModelOpt's
    `--disable_mha_qdq`). Off by default; `--enable-rule KeepAttentionFP16`."""

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        found = attention_role(node, ctx.index)
        if found is None:
            return None
        what = "Q·Kᵀ" if found[0] == "scores" else "softmax·V"
        return f"attention MatMul ({what}) kept FP16 (KeepAttentionFP16)"


_HIGH_PRECISION = {
    "LayerNormalization": "LayerNorm stays FP16: quantizing it collapses accuracy and TensorRT has no INT8 kernel",
    "Softmax": "Softmax stays FP16 (inside TensorRT's fused attention, whose inputs are quantized instead)",
    "Gelu": "GELU runs in the GEMM epilogue in FP16; no Q/DQ of its own",
    "Erf": "GELU's Erf runs in the GEMM epilogue in FP16; no Q/DQ of its own",
    "Gather": "embedding lookups stay in high precision",
    "ReduceMean": "LayerNorm statistics (decomposed) stay in high precision",
    "Pow": "LayerNorm statistics (decomposed) stay in high precision",
    "Sqrt": "LayerNorm statistics (decomposed) stay in high precision",
}


@register_rule(order=90)
class TransformerHighPrecision(PatternRule):
    """LayerNorm, Softmax, GELU/Erf, embedding Gathers and the decomposed LayerNorm's statistics get no Q/DQ.

    The rule records the decision (with its reason) so the plan says why these nodes stay out of INT8; it runs
    before the other pattern rules, so none of them can quantize such a node.
    """

    op_types = tuple(_HIGH_PRECISION)

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        if node.domain not in ("", "ai.onnx"):
            return None  # a custom op of the same name (com.microsoft Gelu): not quantizable at all
        if node.op_type == "Gather" and not ctx.index.is_const(node.input[0]):
            return None  # shape and index arithmetic, not an embedding table
        if node.op_type in ("ReduceMean", "Pow", "Sqrt") and not _layernorm_statistic(node, ctx.index):
            return None  # a mean-pool, the attention scale's sqrt: not a LayerNorm's statistics
        return Verdict([], _HIGH_PRECISION[node.op_type])


def _layernorm_statistic(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """Whether a ReduceMean/Pow/Sqrt is part of a LayerNorm written out: mean, (x - mean)^2, its mean, sqrt."""
    if not index.tensor_inputs(node):
        return False
    ops = {c.op_type for c in index.consumers_of(node.output[0])}
    producer = index.producer_of(node.input[0])
    if node.op_type == "ReduceMean":
        return "Sub" in ops or (producer is not None and producer.op_type == "Pow")
    if node.op_type == "Pow":
        return "ReduceMean" in ops
    while producer is not None and producer.op_type == "Add":  # Sqrt(var + eps)
        producer = index.producer_of(producer.input[0])
    return producer is not None and producer.op_type == "ReduceMean"
