"""`weight_ptq()`: the requested weight-side methods applied to a model's quantized layers."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from trtq.errors import UsageError
from trtq.formats import QuantFormat, get_format
from trtq.placement import QDQPlan, normalize
from trtq.weights.base import WEIGHT_METHODS, WeightPTQ, WeightState
from trtq.weights.layers import PATCHES_PER_LAYER, collect_inputs, find_layers

__all__ = ["weight_ptq", "resolve_weight_methods", "apply_initializers"]


def resolve_weight_methods(methods: Sequence[str] | str) -> list[str]:
    """Registered names from names or comma-separated lists, in the order they are applied."""
    if isinstance(methods, str):
        methods = [methods]
    names: list[str] = []
    for text in methods:
        for m in (x.strip() for x in str(text).split(",") if x.strip()):
            if m == "none":
                continue
            if m not in WEIGHT_METHODS:
                raise UsageError(WEIGHT_METHODS.unknown_message(m) + ", or none")
            name = WEIGHT_METHODS.canonical(m)
            if name not in names:
                names.append(name)
    return sorted(names, key=lambda n: WEIGHT_METHODS[n].order)


def apply_initializers(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` with the named initializers replaced (same names, dtypes and shapes)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name in values:
            arr = np.asarray(values[t.name]).astype(numpy_helper.to_array(t).dtype).reshape(tuple(t.dims))
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return out


def weight_ptq(
    fp32: onnx.ModelProto,
    plan: QDQPlan,
    feeds: Iterable[Mapping[str, np.ndarray]],
    methods: Sequence[str],
    *,
    act_amax: Mapping[str, float] | None = None,
    batches: int = 4,
    format: str | QuantFormat = "int8",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> WeightPTQ:
    """Apply weight-side methods to the plan's Conv/Gemm/MatMul layers.

    Args:
        fp32: the FP32 model the plan was made for.
        plan: the Q/DQ plan (its weights and quantized nodes).
        feeds: calibration batches (input name -> array); `batches` of them are read.
        methods: registered names (`WEIGHT_METHODS`), applied in registry order.
        act_amax: activation amax by tensor (the quantized inputs learned rounding reconstructs from).
        format: the quantization format; seed: fixes patch sampling and learned rounding.
        params: method settings (`adaround_iters`, `patches`).

    Returns:
        The new weights, biases and per-channel weight amax (`trtq.qdq.insert_qdq(..., weights=)`).
    """
    # graph methods (equalize) already ran on `fp32` before calibration (EqualizeStage)
    names = [n for n in resolve_weight_methods(methods) if not WEIGHT_METHODS[n].graph]
    fmt = get_format(format)
    params = dict(params or {})
    model = normalize(fp32)
    layers = find_layers(model, plan.weights, plan.quantized_nodes)
    result = WeightPTQ(methods=names)
    if not names or not layers:
        return result
    inits = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
    need_patches = any(WEIGHT_METHODS[n].needs_patches for n in names)
    t0 = time.perf_counter()
    inputs = collect_inputs(model, layers, feeds, patches=need_patches, seed=seed, batches=batches,
                            patches_per_layer=int(params.get("patches", PATCHES_PER_LAYER)))  # fmt: skip
    result.seconds["statistics"] = time.perf_counter() - t0
    weights = {ly.node: ly.grouped(inits[ly.weight]) for ly in layers}
    state = WeightState(
        layers=layers, weights=weights, reference={k: v.copy() for k, v in weights.items()},
        biases={ly.node: inits[ly.bias].copy() for ly in layers if ly.bias is not None},
        amax={ly.node: np.abs(weights[ly.node]).max(axis=-1).astype(np.float32) for ly in layers},
        inputs=inputs, act_amax=dict(act_amax or {}), fmt=fmt, seed=int(seed), params=params,
    )  # fmt: skip
    for name in names:
        t0 = time.perf_counter()
        result.summary[name] = WEIGHT_METHODS[name].apply(state)
        result.seconds[name] = time.perf_counter() - t0
    for ly in layers:
        shape = inits[ly.weight].shape
        new_w = ly.ungrouped(state.weights[ly.node], shape)
        if not np.array_equal(new_w, inits[ly.weight]):
            result.initializers[ly.weight] = new_w.astype(np.float32)
        if ly.bias is not None and not np.array_equal(state.biases[ly.node], inits[ly.bias]):
            result.initializers[ly.bias] = state.biases[ly.node].astype(np.float32)
        amax_g = state.amax[ly.node]
        result.weight_amax[ly.weight] = _amax_along_axis(ly, amax_g)
        result.layers[ly.weight] = (ly.node, ly.bias)
    return result


def _amax_along_axis(ly: Any, amax_g: np.ndarray) -> np.ndarray:
    """Grouped per-channel amax (groups, out per group) as the vector along the plan's weight axis."""
    return np.asarray(amax_g, np.float32).reshape(-1)
