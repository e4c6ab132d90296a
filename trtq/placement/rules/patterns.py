"""Rules for the nodes around the weighted ops, and the post-pass that makes Concat inputs share a scale.

Pattern rules run after the weighted rules, in order, each over the nodes of its `op_types` in graph order;
they see the plan built so far through `PlanView`. Each returns None when the node is not its candidate,
else a `Verdict`: the inputs that get Q/DQ (empty: none) and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trtq.placement.graph import (
    COPY_OPS,
    WEIGHTED_OPS,
    activation_mul_source,
    ancestor_distances,
    fused_backbone,
)
from trtq.placement.rules.base import (
    PatternRule,
    PlacementContext,
    PlanView,
    PostPassRule,
    ScaleGroups,
    Verdict,
    register_rule,
)

if TYPE_CHECKING:
    import onnx

if TYPE_CHECKING:
    from trtq.placement.plan import QDQPlan

__all__ = [
    "ResidualAdd",
    "Int8Elementwise",
    "PoolingChain",
    "Commuting",
    "ConcatSharedScale",
    "concat_scale_groups",
]


def _reaches_quantized(tensor: str, ctx: PlacementContext, view: PlanView, depth: int = 0) -> bool:
    """Whether `tensor` feeds, directly or through copy ops, a node that reads it quantized."""
    if depth > 16:
        return False
    for c in ctx.index.consumers_of(tensor):
        if view.reads_dq(tensor, c.name):
            return True
        if c.op_type in COPY_OPS and c.output and _reaches_quantized(c.output[0], ctx, view, depth + 1):
            return True
    return False


def _follows_quantized(tensor: str, ctx: PlacementContext, view: PlanView) -> bool:
    """Whether `tensor` is the fused output of a quantized weighted op (so that op can write it in INT8)."""
    bb = fused_backbone(ctx.index, tensor, WEIGHTED_OPS, fused_adds=view.fused_adds)
    return bb is not None and bb.name in view.quantized


@register_rule(order=100)
class ResidualAdd(PatternRule):
    """Add of a quantized convolution's output and another tensor: Q/DQ on the other (residual) input.

    TensorRT fuses Conv(+BN+act)+Add; the residual input's precision decides the fused op's output
    precision, so a quantized residual gives an INT8-in/INT8-out convolution (TENSORRT.md (a) #4). When
    both inputs come from convolutions, the one on the longer path from their lowest common ancestor is
    fused (ModelOpt's `build_non_residual_input_map`); when the fused conv's own output is the other input
    (ConvNeXt-style), the Add is not a residual Add. A residual that is a graph input (`y = conv(x) + x`) is
    quantized like any other, so the fused convolution still writes INT8.
    """

    op_types = ("Add",)

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        idx = ctx.index
        inputs = idx.tensor_inputs(node)
        if len(node.input) != 2 or len(inputs) != 2:
            return None
        if any(idx.producer_of(t) is None and t not in idx.graph_inputs for t in inputs):
            return None  # a residual must come from a node or be a graph input (`y = conv(x) + x`)
        bbs = [fused_backbone(idx, t, ("Conv", "ConvTranspose")) for t in inputs]
        if not any(bbs):
            return None
        d0, d1 = ancestor_distances(idx, inputs[0]), ancestor_distances(idx, inputs[1])
        common = [n.name for n in idx.nodes if n.name in d0 and n.name in d1]
        lca = min(common, key=lambda n: d0[n] + d1[n]) if common else None
        if bbs[0] is not None and bbs[1] is not None:
            if bbs[0].name == bbs[1].name:
                return Verdict([], "both inputs come from the same convolution")
            fused = 0 if d0.get(lca, 0) > d1.get(lca, 0) else 1
        else:
            fused = 0 if bbs[0] is not None else 1
            if lca is not None and lca == bbs[fused].name:
                return Verdict(
                    [], "the other input branches off the fused convolution itself (not a residual)"
                )
        if bbs[fused].name not in view.quantized:
            return Verdict([], f"the convolution it fuses into ({bbs[fused].name}) is kept in high precision")
        residual = inputs[1 - fused]
        return Verdict(
            [residual],
            f"residual input of a Conv+Add fusion with {bbs[fused].name}",
            fused_input=inputs[fused],
        )


@register_rule(order=200)
class Int8Elementwise(PatternRule):
    """Add/Mul of two tensors inside an INT8 chain: Q/DQ on all inputs (TENSORRT.md (a) #5).

    Applies when an input is the fused output of a quantized weighted op and the result feeds a quantized
    node, e.g. the squeeze-excitation `x * sigmoid(s)` before a projection conv. Activations written as
    `x * f(x)` (SiLU) are part of the preceding layer and are not candidates.
    """

    op_types = ("Add", "Mul")

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        inputs = ctx.index.tensor_inputs(node)
        if len(inputs) < 2 or activation_mul_source(ctx.index, node) is not None:
            return None
        if not any(_follows_quantized(t, ctx, view) for t in inputs):
            return Verdict([], "no input comes from a quantized layer")
        if not _reaches_quantized(node.output[0], ctx, view):
            return Verdict([], "its output feeds no quantized layer (the INT8 chain ends here)")
        return Verdict(list(dict.fromkeys(inputs)), "element-wise op between quantized layers runs in INT8")


@register_rule(order=300)
class PoolingChain(PatternRule):
    """AveragePool/GlobalAveragePool: Q/DQ on the input when that keeps the chain INT8.

    That is when the input is the fused output of a quantized layer (which then writes INT8) or the
    output feeds a quantized layer (TensorRT fuses the pool with its input DQ and output Q).
    """

    op_types = ("AveragePool", "GlobalAveragePool")

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        inputs = ctx.index.activation_inputs(node)
        if not inputs:
            return None
        x = inputs[0]
        if _follows_quantized(x, ctx, view):
            return Verdict([x], "input is the output of a quantized layer: pool in INT8")
        if _reaches_quantized(node.output[0], ctx, view):
            return Verdict([x], "output feeds a quantized layer: pool in INT8")
        return Verdict([], "neither side of the pool is quantized")


@register_rule(order=400)
class Commuting(PatternRule):
    """MaxPool and friends commute with Q/DQ: TensorRT moves Q/DQ across them, so none go on them."""

    op_types = ("MaxPool", "GlobalMaxPool")

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        return Verdict([], f"{node.op_type} commutes with Q/DQ; TensorRT propagates the neighbouring Q/DQ")


def concat_scale_groups(ctx: PlacementContext, activations: Sequence[str]) -> list[list[str]]:
    """Tensors that must share one scale: a Concat's quantized output with its quantized inputs.

    TensorRT moves the Q after a Concat in front of each input; equal scales let it drop the resulting
    DQ->Q pairs (ModelOpt's `concat_elimination`). Groups that share a tensor are merged.

    Args:
        ctx: the graph.
        activations: the plan's quantized activation tensors, in plan order.

    Returns:
        Groups of two or more tensors, each in plan order, ordered by their first member.
    """
    quantized = set(activations)
    groups = ScaleGroups()
    for node in ctx.index.nodes:
        if node.op_type != "Concat" or node.output[0] not in quantized:
            continue
        for t in ctx.index.activation_inputs(node):
            if t in quantized:
                groups.join(t, node.output[0])
    return groups.groups(activations)


@register_rule(order=100)
class ConcatSharedScale(PostPassRule):
    """A Concat's quantized output and its quantized inputs share one scale (`QDQPlan.scale_groups`).

    `insert_qdq` gives each group the largest amax of its members, so TensorRT can drop the DQ->Q pairs it
    creates when it moves the Q after a Concat in front of each input (see `concat_scale_groups`).
    """

    def refine(self, plan: QDQPlan, ctx: PlacementContext) -> None:
        plan.scale_groups = concat_scale_groups(ctx, plan.activations)
