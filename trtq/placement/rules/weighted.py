"""Rules for weighted ops (Conv, ConvTranspose, Gemm, MatMul): each may keep a node in high precision.

They run in this order and the first objection wins; a node nobody objects to gets Q/DQ on all its inputs
(activations per tensor, the weight per channel on `weight_axis`). Sources for each rule are in
docs/placement.md and TENSORRT.md section (a).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trtq.placement.graph import GraphIndex
from trtq.placement.rules.base import PlacementContext, WeightedRule, register_rule

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ExcludedByName",
    "ExcludedByOpType",
    "KeepFirstLast",
    "NonConstantWeight",
    "SmallConv",
    "SmallOrGemv",
    "weight_axis",
    "weight_input",
]


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
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


@register_rule(order=100)
class ExcludedByName(WeightedRule):
    """The user excluded the node by exact name or by a regex that matches the whole name."""

    switchable = False
    vetoes_patterns = True

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        for pattern in ctx.exclude_nodes:
            if node.name == pattern or re.fullmatch(pattern, node.name):
                return f"excluded by name pattern {pattern!r}"
        return None


@register_rule(order=200)
class ExcludedByOpType(WeightedRule):
    """The user excluded every node of this op type."""

    switchable = False
    vetoes_patterns = True

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.op_type in ctx.exclude_op_types:
            return f"op type {node.op_type} excluded"
        return None


@register_rule(order=300)
class KeepFirstLast(WeightedRule):
    """`keep_first_last`: the first and last weighted layers stay in high precision."""

    switchable = False

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.name in ctx.first_last:
            return "first or last weighted layer kept in high precision (keep_first_last)"
        return None


@register_rule(order=400)
class NonConstantWeight(WeightedRule):
    """Conv/ConvTranspose/Gemm whose weight is computed at run time: TensorRT needs a constant filter."""

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        if node.op_type == "MatMul":
            if ctx.index.is_const(node.input[0]) and not ctx.index.is_const(node.input[1]):
                return "constant first input (no per-channel layout TensorRT can use)"
            return None  # activation x activation MatMuls (attention) are quantized on both inputs
        if weight_input(node, ctx.index) is None:
            return "weight is not a constant"
        return None


@register_rule(order=500)
class SmallConv(WeightedRule):
    """Convolutions with fewer than 16 input or output channels (ModelOpt's INT8 rule and its exceptions).

    Kept: dense convs (group 1) with square kernels whose in or out channels are a multiple of 8, provided
    one side has >= 16 channels or the conv reads a graph input; grouped convs (depthwise) with out channels
    a multiple of 8 and kernels >= 3. Anything else under 16 channels runs faster in FP16 on TensorRT.
    """

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


@register_rule(order=600)
class SmallOrGemv(WeightedRule):
    """MatMul/Gemm that is a matrix-vector product (M or N == 1) or has K or N < 16.

    Such products cannot use INT8 tensor cores well; Q/DQ around them makes TensorRT slower (ModelOpt's
    GEMV rule). Dims come from shape inference with the batch fixed to `batch_hint` (1 by default, the
    batch ModelOpt's calibration run uses), so a classifier Gemm `[batch, classes]` counts as a GEMV.
    """

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
