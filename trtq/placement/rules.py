"""Placement rules: small named classes, each deciding one thing and saying why.

Weighted-op rules (`WeightedRule`) look at one Conv/ConvTranspose/Gemm/MatMul and either object (return a
reason: the node stays in high precision) or stay silent. The first objection wins. A node nobody objects to
gets Q/DQ on all its inputs. Sources for each rule are in docs/placement.md and TENSORRT.md section (a).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx

from trtq.placement.graph import (
    COPY_OPS,
    WEIGHTED_OPS,
    GraphIndex,
    activation_mul_source,
    ancestor_distances,
    fused_backbone,
)

__all__ = [
    "PlacementContext",
    "WeightedRule",
    "ExcludedByName",
    "ExcludedByOpType",
    "KeepFirstLast",
    "NonConstantWeight",
    "SmallConv",
    "SmallOrGemv",
    "weight_axis",
    "weight_input",
    "default_weighted_rules",
    "Verdict",
    "PlanView",
    "PatternRule",
    "ResidualAdd",
    "Int8Elementwise",
    "PoolingChain",
    "Commuting",
    "default_pattern_rules",
    "concat_scale_groups",
]


@dataclass
class PlacementContext:
    """What rules may look at: the graph, the user's choices, and facts computed once."""

    index: GraphIndex
    exclude_nodes: Sequence[str] = ()
    exclude_op_types: Sequence[str] = ()
    first_last: frozenset[str] = field(default_factory=frozenset)
    min_conv_channels: int = 16
    min_gemm_dim: int = 16
    batch_hint: int = 1


def weight_input(node: onnx.NodeProto, index: GraphIndex) -> int | None:
    """Position of the constant weight input of a weighted node (None if it has none)."""
    if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        if len(node.input) > 1 and index.is_const(node.input[1]):
            return 1
    return None


def weight_axis(node: onnx.NodeProto, index: GraphIndex) -> int:
    """Per-channel axis of a weighted node's weight: its output-channel dimension.

    Conv `[K, C/g, ...]` -> 0; ConvTranspose `[C, K/g, ...]` -> 1; Gemm `transB=1` `[N, K]` -> 0, else
    `[K, N]` -> 1; MatMul with constant B `[..., K, N]` -> last axis.
    """
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    rank = len(index.const_shape(node.input[1]))
    return rank - 1


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class WeightedRule:
    """Base class: `check` returns a reason to keep the node in high precision, or None."""

    name: str = "WeightedRule"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        raise NotImplementedError


class ExcludedByName(WeightedRule):
    """The user excluded the node by exact name or by a regex that matches the whole name."""

    name = "ExcludedByName"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        for pattern in ctx.exclude_nodes:
            if node.name == pattern or re.fullmatch(pattern, node.name):
                return f"excluded by name pattern {pattern!r}"
        return None


class ExcludedByOpType(WeightedRule):
    """The user excluded every node of this op type."""

    name = "ExcludedByOpType"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.op_type in ctx.exclude_op_types:
            return f"op type {node.op_type} excluded"
        return None


class KeepFirstLast(WeightedRule):
    """`keep_first_last`: the first and last weighted layers stay in high precision."""

    name = "KeepFirstLast"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.name in ctx.first_last:
            return "first or last weighted layer kept in high precision (keep_first_last)"
        return None


class NonConstantWeight(WeightedRule):
    """Conv/ConvTranspose/Gemm whose weight is computed at run time: TensorRT needs a constant filter."""

    name = "NonConstantWeight"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.op_type == "MatMul":
            if ctx.index.is_const(node.input[0]) and not ctx.index.is_const(node.input[1]):
                return "constant first input (no per-channel layout TensorRT can use)"
            return None  # activation x activation MatMuls (attention) are quantized on both inputs
        if weight_input(node, ctx.index) is None:
            return "weight is not a constant"
        return None


class SmallConv(WeightedRule):
    """Convolutions with fewer than 16 input or output channels (ModelOpt's INT8 rule and its exceptions).

    Kept: dense convs (group 1) with square kernels whose in or out channels are a multiple of 8, provided
    one side has >= 16 channels or the conv reads a graph input; grouped convs (depthwise) with out channels
    a multiple of 8 and kernels >= 3. Anything else under 16 channels runs faster in FP16 on TensorRT.
    """

    name = "SmallConv"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.op_type != "Conv" or weight_input(node, ctx.index) is None:
            return None
        shape = ctx.index.const_shape(node.input[1])
        out_ch, in_ch = shape[0], shape[1]
        m = ctx.min_conv_channels
        if out_ch >= m and in_ch >= m:
            return None
        group = int(_attr(node, "group", 1))
        kernel = list(_attr(node, "kernel_shape", shape[2:]))
        if group == 1:
            if (
                (out_ch % 8 == 0 or in_ch % 8 == 0)
                and (out_ch >= m or in_ch >= m or node.input[0] in ctx.index.graph_inputs)
                and len(set(kernel)) <= 1
            ):
                return None
        elif out_ch % 8 == 0 and all(k >= 3 for k in kernel):
            return None
        return f"small conv (in {in_ch}, out {out_ch} channels, group {group}): faster in FP16"


class SmallOrGemv(WeightedRule):
    """MatMul/Gemm that is a matrix-vector product (M or N == 1) or has K or N < 16.

    Such products cannot use INT8 tensor cores well; Q/DQ around them makes TensorRT slower (ModelOpt's
    GEMV rule). Dims come from shape inference with the batch fixed to `batch_hint` (1 by default, the
    batch ModelOpt's calibration run uses), so a classifier Gemm `[batch, classes]` counts as a GEMV.
    """

    name = "SmallOrGemv"

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.op_type not in ("MatMul", "Gemm"):
            return None
        out = ctx.index.shape(node.output[0]) or ()
        both_variable = not any(ctx.index.is_const(i) for i in node.input[:2])
        if both_variable and len(out) >= 2 and (out[-1] == 1 or out[-2] == 1):
            return f"matrix-vector product (output shape {_fmt(out)})"
        if not both_variable and 0 < len(out) < 3 and 1 in out:
            return f"matrix-vector product (output shape {_fmt(out)} at batch {ctx.batch_hint})"
        n = out[-1] if out else self._n_dim(node, ctx)
        k = self._k_dim(node, ctx)
        small = ctx.min_gemm_dim
        if (n is not None and n < small) or (k is not None and k < small):
            return f"small GEMM (N={n}, K={k} < {small})"
        return None

    @staticmethod
    def _n_dim(node: onnx.NodeProto, ctx: PlacementContext) -> int | None:
        shape = ctx.index.shape(node.input[1]) if len(node.input) > 1 else None
        if not shape or len(shape) < 2:
            return None
        trans_b = node.op_type == "Gemm" and bool(_attr(node, "transB", 0))
        return shape[-2] if trans_b else shape[-1]

    @staticmethod
    def _k_dim(node: onnx.NodeProto, ctx: PlacementContext) -> int | None:
        if len(node.input) < 2:
            return None
        shape = ctx.index.shape(node.input[1])
        if not shape or len(shape) < 2:
            return None
        trans_b = node.op_type == "Gemm" and bool(_attr(node, "transB", 0))
        return shape[-1] if trans_b else shape[-2]


def _fmt(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def default_weighted_rules() -> list[WeightedRule]:
    """The rules run on every weighted node, in order (first objection wins)."""
    return [
        ExcludedByName(),
        ExcludedByOpType(),
        KeepFirstLast(),
        NonConstantWeight(),
        SmallConv(),
        SmallOrGemv(),
    ]


# ----------------------------------------------------------------------------------------------------------
# Rules for nodes around the weighted ops. Each returns None when the node is not its candidate, else a
# Verdict: the inputs that get Q/DQ (empty: none) and the reason. They run after the weighted rules, in the
# order of `default_pattern_rules`, and see the plan built so far through `PlanView`.


@dataclass
class Verdict:
    """A pattern rule's answer for one node."""

    inputs: list[str]
    reason: str
    fused_input: str | None = None  # ResidualAdd: the input produced by the convolution it fuses into


@dataclass
class PlanView:
    """The plan so far, as pattern rules see it."""

    quantized: set[str]  # weighted nodes with quantized inputs
    consumers: dict[str, list[str]]  # tensor -> nodes that read its DequantizeLinear output
    fused_adds: dict[str, str] = field(default_factory=dict)  # residual Add -> its conv-fused input

    def reads_dq(self, tensor: str, node: str) -> bool:
        return node in self.consumers.get(tensor, ())


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


class PatternRule:
    """Base class for rules on non-weighted nodes."""

    name: str = "PatternRule"
    op_types: tuple[str, ...] = ()

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        raise NotImplementedError


class ResidualAdd(PatternRule):
    """Add of a quantized convolution's output and another tensor: Q/DQ on the other (residual) input.

    TensorRT fuses Conv(+BN+act)+Add; the residual input's precision decides the fused op's output
    precision, so a quantized residual gives an INT8-in/INT8-out convolution (TENSORRT.md (a) #4). When
    both inputs come from convolutions, the one on the longer path from their lowest common ancestor is
    fused (ModelOpt's `build_non_residual_input_map`); when the fused conv's own output is the other input
    (ConvNeXt-style), the Add is not a residual Add.
    """

    name = "ResidualAdd"
    op_types = ("Add",)

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        idx = ctx.index
        inputs = idx.tensor_inputs(node)
        if len(node.input) != 2 or len(inputs) != 2 or any(idx.producer_of(t) is None for t in inputs):
            return None
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


class Int8Elementwise(PatternRule):
    """Add/Mul of two tensors inside an INT8 chain: Q/DQ on all inputs (TENSORRT.md (a) #5).

    Applies when an input is the fused output of a quantized weighted op and the result feeds a quantized
    node, e.g. the squeeze-excitation `x * sigmoid(s)` before a projection conv. Activations written as
    `x * f(x)` (SiLU) are part of the preceding layer and are not candidates.
    """

    name = "Int8Elementwise"
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


class PoolingChain(PatternRule):
    """AveragePool/GlobalAveragePool: Q/DQ on the input when that keeps the chain INT8.

    That is when the input is the fused output of a quantized layer (which then writes INT8) or the
    output feeds a quantized layer (TensorRT fuses the pool with its input DQ and output Q).
    """

    name = "PoolingChain"
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


class Commuting(PatternRule):
    """MaxPool and friends commute with Q/DQ: TensorRT moves Q/DQ across them, so none go on them."""

    name = "Commuting"
    op_types = ("MaxPool", "GlobalMaxPool")

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        return Verdict([], f"{node.op_type} commutes with Q/DQ; TensorRT propagates the neighbouring Q/DQ")


def default_pattern_rules() -> list[PatternRule]:
    """Rules for non-weighted nodes, in the order they run (a node takes the first rule that answers)."""
    return [ResidualAdd(), Int8Elementwise(), PoolingChain(), Commuting()]


def concat_scale_groups(ctx: PlacementContext, activations: Sequence[str]) -> list[list[str]]:
    """Tensors that must share one scale: a Concat's quantized output with its quantized inputs.

    TensorRT moves the Q after a Concat in front of each input; equal scales let it drop the resulting
    DQ->Q pairs (ModelOpt's `concat_elimination`). Groups that share a tensor are merged.
    """
    quantized = set(activations)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for node in ctx.index.nodes:
        if node.op_type != "Concat" or node.output[0] not in quantized:
            continue
        members = [t for t in ctx.index.activation_inputs(node) if t in quantized]
        if not members:
            continue
        for t in members:
            parent[find(t)] = find(node.output[0])
    order = {t: i for i, t in enumerate(activations)}
    groups: dict[str, list[str]] = {}
    for t in sorted(parent, key=lambda t: order[t]):
        groups.setdefault(find(t), []).append(t)
    return [g for g in groups.values() if len(g) > 1]
