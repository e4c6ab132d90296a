"""Rules for detectors: the head where box coordinates and class scores meet, post-processing, and the neck.

A detection head ends where two kinds of numbers meet: box coordinates in pixels (hundreds) and class scores
after a Sigmoid (0..1). Ultralytics' v5/v8/v11 heads join them in one Concat (`[batch, 4 + classes, anchors]`);
one INT8 range over both would crush the scores (Ultralytics found this and keeps the head's Sigmoid out of
INT8; NVIDIA/TensorRT issues 1834 and 3922 report detectors' mAP falling after INT8). trtq finds that Concat
structurally (`head_concats`): its output reaches a graph output through non-weighted ops only, one input comes
straight from a Sigmoid (through copy ops) and another does not. Then:

- `DetectionHead` keeps the head's prediction layers (the last weighted ops before that Concat, e.g. the 1x1
  box and class convolutions) and Ultralytics' DFL convolution in high precision: their outputs are the box
  distances and class logits themselves, where an INT8 error moves a box edge or a score directly;
- `DetectionPostprocess` records that the decoding arithmetic between those layers and the outputs (Softplus or
  DFL's Softmax, anchor offsets, strides, the Sigmoid, the Concat) and post-processing (TopK,
  NonMaxSuppression, Gather/GatherElements on boxes, and everything after them) get no Q/DQ, ever;
- `NeckResizeConcat` records that Resize/Upsample and the neck's Concats (those next to a Resize) commute with Q/DQ (TensorRT
  moves a Concat's output Q in front of each input, and through a nearest Resize), and `ConcatThroughResize`
  gives one scale to Concats whose Qs TensorRT would move onto the same tensor (an FPN's lateral output read by
  an Upsample into one Concat and directly by another), so the layer that writes it has one INT8 output scale.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from trtq.placement.graph import COPY_OPS, WEIGHTED_OPS, GraphIndex
from trtq.placement.rules.base import (
    PatternRule,
    PlacementContext,
    PlanView,
    PostPassRule,
    ScaleGroups,
    Verdict,
    WeightedRule,
    register_rule,
)

if TYPE_CHECKING:
    import onnx

    from trtq.placement.plan import QDQPlan

__all__ = [
    "DetectionHead",
    "DetectionPostprocess",
    "NeckResizeConcat",
    "ConcatThroughResize",
    "head_concats",
    "head_region",
    "POSTPROCESS_OPS",
]

#: Post-processing ops: nothing from them to the outputs is quantized.
POSTPROCESS_OPS = frozenset({"TopK", "NonMaxSuppression", "GatherElements", "GatherND", "ArgMax", "NonZero"})

#: Ops the decoding region may hold (pattern candidates of `DetectionPostprocess`).
_DECODE_OPS = (
    "Concat", "Sigmoid", "Softmax", "Softplus", "Exp", "Add", "Sub", "Mul", "Div", "Clip", "Min", "Max", "Where",
    "Gather", "Cast", "TopK", "NonMaxSuppression", "GatherElements", "GatherND", "ArgMax", "NonZero",
    "ReduceMax", "Sqrt", "Pow", "Resize",
)  # fmt: skip


def _through_copies(index: GraphIndex, tensor: str) -> onnx.NodeProto | None:
    """The producer of `tensor`, skipping copy ops (Reshape, Transpose, Split, Slice, ...)."""
    p = index.producer_of(tensor)
    for _ in range(32):
        if p is None or p.op_type not in COPY_OPS:
            return p
        inputs = index.tensor_inputs(p)
        p = index.producer_of(inputs[0]) if inputs else None
    return p


def _reaches_output_unweighted(index: GraphIndex, tensor: str) -> bool:
    """Whether `tensor` reaches a graph output and every path from it passes no weighted op."""
    seen: set[str] = set()
    stack, found = [tensor], False
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        found = found or t in index.graph_outputs
        for c in index.consumers_of(t):
            if c.op_type in WEIGHTED_OPS and not _is_dfl(c, index):
                return False
            stack.extend(o for o in c.output if o)
    return found


def head_concats(index: GraphIndex) -> list[onnx.NodeProto]:
    """Concats where a detection head's box coordinates and class scores meet (see the module doc)."""
    out = []
    for node in index.nodes:
        if node.op_type != "Concat" or not _reaches_output_unweighted(index, node.output[0]):
            continue
        kinds = [_through_copies(index, t) for t in index.tensor_inputs(node)]
        scores = [p is not None and p.op_type == "Sigmoid" for p in kinds]
        if any(scores) and not all(scores):
            out.append(node)
    return out


def _is_dfl(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """Ultralytics' DFL: a Conv with the constant weight `arange(bins)` as `[1, bins, 1, 1]` reading a Softmax
    over the bins; it turns bin probabilities into a box distance (decoding, not a learned layer)."""
    import numpy as np

    if node.op_type != "Conv" or len(node.input) < 2 or not index.is_const(node.input[1]):
        return False
    shape = index.const_shape(node.input[1])
    if len(shape) != 4 or shape[0] != 1 or shape[2:] != (1, 1) or shape[1] < 2:
        return False
    if not np.array_equal(index.array(node.input[1]).reshape(-1), np.arange(shape[1], dtype=np.float32)):
        return False
    source = _through_copies(index, node.input[0])
    return source is not None and source.op_type == "Softmax"


def head_region(index: GraphIndex) -> tuple[dict[str, str], set[str]]:
    """The detection head's decoding and post-processing nodes, and its prediction layers.

    Returns:
        (node name -> why it gets no Q/DQ, names of the weighted prediction layers and DFL convolutions).
    """
    region: dict[str, str] = {}
    predictions: set[str] = set()
    starts: list[tuple[onnx.NodeProto, str]] = []
    for concat in head_concats(index):
        region[concat.name] = "box coordinates and class scores of the detection head meet here: no Q/DQ"
        starts.append((concat, "box decoding of the detection head: no Q/DQ"))
    for node in index.nodes:
        if node.op_type in POSTPROCESS_OPS and _reaches_output_unweighted(index, node.output[0]):
            region.setdefault(node.name, f"post-processing ({node.op_type}) is never quantized")
            starts.append((node, "decoding before post-processing: no Q/DQ"))
    for start, why in starts:  # backwards to the prediction layers
        stack = [start]
        while stack:
            node = stack.pop()
            for t in index.tensor_inputs(node):
                p = index.producer_of(t)
                if p is None or p.name in region or p.name in predictions:
                    continue
                if p.op_type in WEIGHTED_OPS and not _is_dfl(p, index):
                    if start.op_type == "Concat":
                        predictions.add(p.name)
                    continue
                if not all(_reaches_output_unweighted(index, o) for o in p.output if o):
                    continue  # also feeds a layer: not part of the decoding
                if _is_dfl(p, index):
                    predictions.add(p.name)
                elif p.op_type == "Sigmoid":
                    region[p.name] = "class scores of the detection head stay in high precision"
                else:
                    region[p.name] = why
                stack.append(p)
    for start, _ in starts:  # forwards: everything after the meeting point or post-processing
        stack = [start]
        while stack:
            node = stack.pop()
            for t in node.output:
                for c in index.consumers_of(t):
                    if c.name not in region:
                        region[c.name] = "after the detection head's outputs (post-processing): no Q/DQ"
                        stack.append(c)
    return region, predictions


_REGIONS: weakref.WeakKeyDictionary[GraphIndex, tuple[dict[str, str], set[str]]] = weakref.WeakKeyDictionary()


def _cached_region(ctx: PlacementContext) -> tuple[dict[str, str], set[str]]:
    """`head_region` of the plan's graph, computed once per `plan_qdq` (both detection rules read it)."""
    if ctx.index not in _REGIONS:
        _REGIONS[ctx.index] = head_region(ctx.index)
    return _REGIONS[ctx.index]


@register_rule(order=350)
class DetectionHead(WeightedRule):
    """The prediction layers of a detection head (the last weighted ops before the Concat where box coordinates
    and class scores meet) and Ultralytics' DFL convolution stay in high precision."""

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        _, predictions = _cached_region(ctx)
        if node.name not in predictions:
            return None
        if _is_dfl(node, ctx.index):
            return "DFL convolution of the detection head (box decoding) stays in high precision"
        return (
            "prediction layer of the detection head (box distances or class logits that meet in its output "
            "Concat) stays in high precision"
        )


@register_rule(order=80)
class DetectionPostprocess(PatternRule):
    """Decoding arithmetic, the score Sigmoid, the box/score Concat and post-processing (TopK, NMS, Gather on
    boxes, everything after them) of a detection head get no Q/DQ; the plan records why."""

    op_types = _DECODE_OPS

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        region, _ = _cached_region(ctx)
        reason = region.get(node.name)
        return None if reason is None else Verdict([], reason)


def _nearest(node: onnx.NodeProto) -> bool:
    for a in node.attribute:
        if a.name == "mode":
            return a.s in (b"nearest", "nearest")
    return True  # the default mode of Resize and Upsample


def _neck_concat(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """Whether a Concat is part of an FPN/PAN neck: an input is a Resize's output, or is also read by a Resize
    (the tensor the top-down path upsamples, joined again on the bottom-up path)."""
    for t in index.tensor_inputs(node):
        p = _through_copies(index, t)
        if p is not None and p.op_type in _RESIZE_OPS:
            return True
        if any(c.op_type in _RESIZE_OPS for c in index.consumers_of(t)):
            return True
    return False


_RESIZE_OPS = ("Resize", "Upsample")


@register_rule(order=500)
class NeckResizeConcat(PatternRule):
    """Resize/Upsample and the Concats of an FPN/PAN neck get no Q/DQ of their own: TensorRT moves the Q of a
    Concat's output in front of each input and across a nearest Resize; `ConcatSharedScale` and
    `ConcatThroughResize` give those one scale. Other Concats are not this rule's candidates."""

    op_types = ("Resize", "Upsample", "Concat")

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        if node.op_type == "Concat":
            if not _neck_concat(node, ctx.index):
                return None  # shape arithmetic, an Inception block: nothing to record
            return Verdict(
                [],
                "neck Concat commutes with Q/DQ: TensorRT moves its output's Q in front of every input (one scale)",
            )
        if _nearest(node):
            return Verdict(
                [], f"nearest {node.op_type} commutes with Q/DQ: TensorRT moves the neighbouring pair"
            )
        return Verdict(
            [], f"interpolating {node.op_type}: no Q/DQ of its own; its reader's Q/DQ quantizes it"
        )


def _commuting_root(index: GraphIndex, tensor: str) -> str:
    """Where TensorRT would move a Q on `tensor`: back through nearest Resize/Upsample and copy ops."""
    for _ in range(32):
        p = index.producer_of(tensor)
        if p is None or not ((p.op_type in ("Resize", "Upsample") and _nearest(p)) or p.op_type in COPY_OPS):
            return tensor
        inputs = index.tensor_inputs(p)
        if not inputs:
            return tensor
        tensor = inputs[0]
    return tensor


@register_rule(order=200)
class ConcatThroughResize(PostPassRule):
    """Concats whose output Qs TensorRT would move onto one tensor (through a nearest Upsample or copy ops) share
    one scale, so the layer writing that tensor has a single INT8 output scale (after `ConcatSharedScale`)."""

    def refine(self, plan: QDQPlan, ctx: PlacementContext) -> None:
        quantized = set(plan.activations)
        groups = ScaleGroups()
        for g in plan.scale_groups:
            for t in g[1:]:
                groups.join(t, g[0])
        for node in ctx.index.nodes:
            if node.op_type != "Concat" or node.output[0] not in quantized:
                continue
            for t in ctx.index.activation_inputs(node):
                root = _commuting_root(ctx.index, t)
                if root != t or t not in quantized:  # a quantized direct input is ConcatSharedScale's
                    groups.join(root, node.output[0])
        plan.scale_groups = groups.groups(plan.activations)
