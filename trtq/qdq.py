"""Insert QuantizeLinear/DequantizeLinear pairs into an FP32 model as a `QDQPlan` says (TensorRT's explicit quantization).

In the plan's quantization format (`trtq.formats`; INT8: scale = amax / 127, zero point int8 0): activations
per-tensor symmetric, float32 scalar scale; weights stay FP32 and get Q -> DQ with per-channel scales (max |w|
over the non-axis dims / 127); TensorRT quantizes them at build time. Tensors of one scale group share the group's largest amax. Names follow ONNX Runtime's QDQ
convention (`<tensor>_QuantizeLinear`, `<tensor>_DequantizeLinear_Output`, `<tensor>_scale`), so the same
model, plan and amax always give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtq.errors import TrtqError, UsageError
from trtq.formats import INT8, MIN_SCALE, QuantFormat, get_format
from trtq.placement import QDQPlan, normalize

__all__ = ["insert_qdq", "weight_scales", "activation_scales", "MIN_SCALE", "QDQ_OPS", "WEIGHT_STORAGE"]

# MIN_SCALE (trtq.formats): the floor for every scale, the smallest normal FP16 number, so scales stay exact,
# positive and normal in the FP16 typing of model.trt.onnx. Only INT8 weight channels with max |w| < 127 * 2^-14
# (about 0.0078) reach it; their rounding error (<= 2^-15) stays below that of any larger channel.
#: Op types this module inserts.
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def weight_scales(weight: np.ndarray, axis: int, format: QuantFormat = INT8) -> np.ndarray:
    """Per-channel symmetric scales of a weight: max |w| over every axis but `axis`, over the format's max (127).

    Args:
        weight: the FP32 weight.
        axis: the output-channel axis.
        format: the quantization format.

    Returns:
        A float32 vector of length `weight.shape[axis]`, every entry >= MIN_SCALE.
    """
    w = np.abs(np.asarray(weight, dtype=np.float32))
    axis = axis % w.ndim
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    amax = w.max(axis=reduce_axes) if reduce_axes else w
    return np.maximum(amax / np.float32(format.max_value), np.float32(MIN_SCALE)).astype(np.float32)


def activation_scales(
    plan: QDQPlan, amax: Mapping[str, float], format: QuantFormat = INT8
) -> dict[str, float]:
    """Per-tensor scales for the plan's activations: amax / 127 (INT8), shared (group max) within a scale group.

    Raises:
        TrtqError: an activation has no amax, or a non-finite one.
    """

    def get(name: str) -> float:
        if name not in amax:
            raise TrtqError(
                f"no calibrated amax for activation tensor {name!r}; recalibrate this model "
                "(the calibration file does not match it)"
            )
        value = float(amax[name])
        if not math.isfinite(value):
            raise TrtqError(f"amax of tensor {name!r} is {value}; check the calibration data for NaN/Inf")
        return abs(value)

    values = {name: get(name) for name in plan.activations}
    for group in plan.scale_groups:
        members = [t for t in group if t in values]
        if members:
            shared = max(values[t] for t in members)
            for t in members:
                values[t] = shared
    return {name: max(float(format.scale(v)), MIN_SCALE) for name, v in values.items()}


#: How quantized weights are stored: FP32 initializer -> Q -> DQ, or the INT8 values -> DQ only.
WEIGHT_STORAGE = ("qdq", "int8")


def insert_qdq(
    model: onnx.ModelProto,
    plan: QDQPlan,
    amax: Mapping[str, float],
    *,
    format: str | QuantFormat = INT8,
    weights: Any = None,
    weight_storage: str = "qdq",
) -> onnx.ModelProto:
    """Return a copy of `model` with Q/DQ pairs where `plan` puts them.

    Args:
        model: the FP32 model the plan was made for (it is normalised the same way `plan_qdq` does).
        plan: from `trtq.placement.plan_qdq`.
        amax: calibrated clipping threshold per activation tensor (extra entries are ignored).
        format: the quantization format (a registered name or a `QuantFormat`).
        weights: a `trtq.weights.WeightPTQ`: new weights/biases and per-channel weight amax for the plan's
            layers (layers outside the plan keep their own weights).
        weight_storage: "qdq" (FP32 weight -> Q -> DQ, TensorRT quantizes at build time) or "int8" (the INT8
            weight as an initializer -> DQ only, about 4x smaller; TensorRT accepts both).

    Returns:
        The Q/DQ model; it passes `onnx.checker.check_model(full_check=True)` and runs in ONNX Runtime.

    Raises:
        TrtqError: an activation has no (finite) amax, or the plan names a tensor the model lacks.
        UsageError: the model's opset is below the format's (13 for INT8: per-channel Q/DQ needs `axis`).
    """
    fmt = get_format(format)
    if weight_storage not in WEIGHT_STORAGE:
        raise UsageError(f"--weight-storage {weight_storage!r}: choose from {', '.join(WEIGHT_STORAGE)}")
    m = normalize(model)
    if weights is not None:
        from trtq.weights import apply_initializers

        m = apply_initializers(m, weights.for_weights(plan.weights))
    weight_amax = dict(getattr(weights, "weight_amax", None) or {})
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < fmt.min_opset:
        raise UsageError(
            f"model opset is {opset}; per-channel {fmt.name} Q/DQ needs opset >= {fmt.min_opset}: re-export with opset 17"
        )
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    for name in plan.activations:
        if name not in produced:
            raise TrtqError(
                f"plan quantizes tensor {name!r} but the model has no such tensor; re-plan this model"
            )
    for name in plan.weights:
        if name not in inits:
            raise TrtqError(f"plan quantizes weight {name!r} but the model has no such initializer; re-plan")

    scales = activation_scales(plan, amax, fmt)
    taken = {n.name for n in g.node} | produced | set(inits)

    def fresh(name: str) -> str:
        out, k = name, 1
        while out in taken:
            out, k = f"{name}_{k}", k + 1
        taken.add(out)
        return out

    new_inits: list[TensorProto] = []
    after: dict[str, list[onnx.NodeProto]] = {}  # producer output -> Q/DQ nodes to emit right after it
    front: list[onnx.NodeProto] = []  # Q/DQ of graph inputs and weights
    rewire: dict[str, dict[str, str]] = {}  # node name -> {old input: new input}
    nodes_by_name = {n.name: n for n in g.node}
    producer_of = {o: n for n in g.node for o in n.output}
    readers: dict[str, list[str]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n.name)

    def add_dq_only(tensor: str, value: np.ndarray, scale: np.ndarray, axis: int) -> str:
        shape = [1] * value.ndim
        shape[axis] = -1
        q = np.clip(np.round(value / scale.reshape(shape)), fmt.qmin, fmt.qmax).astype(fmt.numpy_dtype)
        q_name = fresh(f"{tensor}_quantized")
        scale_name = fresh(f"{tensor}_scale")
        zp_name = fresh(f"{tensor}_zero_point")
        new_inits.append(numpy_helper.from_array(q, q_name))
        new_inits.append(numpy_helper.from_array(scale.astype(np.float32), scale_name))
        new_inits.append(numpy_helper.from_array(fmt.zero_point(scale.shape), zp_name))
        dq_out = fresh(f"{tensor}_DequantizeLinear_Output")
        front.append(helper.make_node("DequantizeLinear", [q_name, scale_name, zp_name], [dq_out],
                                      fresh(f"{tensor}_DequantizeLinear"), axis=axis))  # fmt: skip
        return dq_out

    def add_pair(tensor: str, scale: np.ndarray, axis: int | None) -> str:
        scale_name = fresh(f"{tensor}_scale")
        zp_name = fresh(f"{tensor}_zero_point")
        new_inits.append(numpy_helper.from_array(scale.astype(np.float32), scale_name))
        new_inits.append(numpy_helper.from_array(fmt.zero_point(scale.shape), zp_name))
        q_out = fresh(f"{tensor}_QuantizeLinear_Output")
        dq_out = fresh(f"{tensor}_DequantizeLinear_Output")
        kw = {} if axis is None else {"axis": axis}
        q = helper.make_node(
            "QuantizeLinear", [tensor, scale_name, zp_name], [q_out], fresh(f"{tensor}_QuantizeLinear"), **kw
        )
        dq = helper.make_node(
            "DequantizeLinear",
            [q_out, scale_name, zp_name],
            [dq_out],
            fresh(f"{tensor}_DequantizeLinear"),
            **kw,
        )
        if tensor in producer_of:
            after.setdefault(tensor, []).extend([q, dq])
        else:
            front.extend([q, dq])
        return dq_out

    quantized_nodes = set(plan.quantized_nodes)
    inits = {t.name: t for t in g.initializer}
    replaced: set[str] = set()
    for name, axis in plan.weights.items():
        arr = numpy_helper.to_array(inits[name])
        if name in weight_amax:
            scale = np.maximum(np.asarray(weight_amax[name], np.float32) / np.float32(fmt.max_value),
                               np.float32(MIN_SCALE)).astype(np.float32)  # fmt: skip
        else:
            scale = weight_scales(arr, axis, fmt)
        targets = [r for r in readers.get(name, []) if r in quantized_nodes] or readers.get(name, [])
        if weight_storage == "int8":
            dq_out = add_dq_only(name, arr.astype(np.float32), scale, axis % arr.ndim)
            if set(targets) == set(readers.get(name, [])):
                replaced.add(name)  # nothing reads the FP32 weight any more
        else:
            dq_out = add_pair(name, scale, axis)
        for r in targets:
            rewire.setdefault(r, {})[name] = dq_out

    for name in plan.activations:
        dq_out = add_pair(name, np.array(scales[name], dtype=np.float32), None)
        targets = plan.consumers.get(name) or readers.get(name, [])
        for r in targets:
            if r not in nodes_by_name:
                raise TrtqError(f"plan routes tensor {name!r} to node {r!r}, which the model lacks; re-plan")
            rewire.setdefault(r, {})[name] = dq_out

    nodes: list[onnx.NodeProto] = list(front)
    for node in g.node:
        for i, inp in enumerate(node.input):
            new = rewire.get(node.name, {}).get(inp)
            if new:
                node.input[i] = new
        nodes.append(node)
        for out in node.output:
            nodes.extend(after.get(out, []))
    del g.node[:]
    g.node.extend(nodes)
    if replaced:
        kept = [t for t in g.initializer if t.name not in replaced]
        del g.initializer[:]
        g.initializer.extend(kept)
    g.initializer.extend(new_inits)
    return m
