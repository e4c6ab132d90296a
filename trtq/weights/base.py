"""Weight-side PTQ: the registry of methods, the state they refine, and the result the Q/DQ insertion applies.

Each method changes only weights, biases and per-channel weight amax (so TensorRT runs its result unchanged):
it is a function `method(state)` registered with `@register_weight_method("name", order=...)`; the methods a
run asks for are applied in their registered order (CLE, clipping, rounding, then bias correction, which
removes the mean shift whatever the steps before it left).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trtq.formats import INT8, MIN_SCALE, QuantFormat
from trtq.registry import Registry

if TYPE_CHECKING:
    from trtq.weights.layers import Layer, LayerInputs

__all__ = [
    "WEIGHT_METHODS",
    "WeightMethod",
    "WeightState",
    "WeightPTQ",
    "register_weight_method",
    "fake_quant",
    "channel_scales",
]


@dataclass(frozen=True)
class WeightMethod:
    """A registered weight-side method: `apply(state)` refines the state; `needs_patches`: it reads input patches;
    `graph`: it rewrites the FP32 graph before calibration instead (cross-layer equalisation, `EqualizeStage`)."""

    name: str
    apply: Callable[[WeightState], dict[str, Any]]
    order: int
    needs_patches: bool
    help: str
    graph: bool = False


WEIGHT_METHODS: Registry[WeightMethod] = Registry("weight PTQ method", "--weight-ptq")


def register_weight_method(
    name: str, *, order: int, needs_patches: bool, help: str, graph: bool = False
) -> Callable[[Callable[[WeightState], dict[str, Any]]], Callable[[WeightState], dict[str, Any]]]:
    """Decorator: register `fn(state) -> summary dict` as the weight method `name`."""

    def deco(fn: Callable[[WeightState], dict[str, Any]]) -> Callable[[WeightState], dict[str, Any]]:
        WEIGHT_METHODS.register(name, WeightMethod(name, fn, order, needs_patches, help, graph))
        return fn

    return deco


def channel_scales(amax: np.ndarray, fmt: QuantFormat = INT8) -> np.ndarray:
    """Per-channel scales exactly as `trtq.qdq` writes them: max(amax / max_value, MIN_SCALE), float32."""
    return np.maximum(np.asarray(amax, np.float32) / np.float32(fmt.max_value), np.float32(MIN_SCALE)).astype(
        np.float32
    )


def fake_quant(w: np.ndarray, scale: np.ndarray, fmt: QuantFormat = INT8) -> np.ndarray:
    """Round-to-nearest-even and saturate, then dequantize: what Q -> DQ does to `w` (scale broadcast).

    Saturates to the range QuantizeLinear executes (`fmt.qmin`..`fmt.qmax`, INT8 -128..127, as ONNX Runtime and
    TensorRT's IQuantizeLayer do), not the symmetric -127..127 the scale is derived from: a weight below -amax
    (a searched clip, learned rounding) lands on -128 in the graph, so the methods model it there too.
    """
    q = np.clip(np.round(w / scale), fmt.qmin, fmt.qmax)
    return (q * scale).astype(np.float32)


@dataclass
class WeightState:
    """What the methods refine, in the grouped layout of `Layer.grouped`.

    Attributes:
        layers: the weighted layers.
        weights: layer node -> current weight (groups, out per group, k), float32.
        reference: layer node -> the weight the quantized layer should reproduce (FP32, after equalisation).
        biases: layer node -> bias (out,), for layers that have one.
        amax: layer node -> per-channel amax (groups, out per group).
        on_grid: nodes whose `weights` already lie on the quantization grid (learned rounding).
        inputs: calibration statistics of the layer inputs.
        act_amax: activation amax by tensor (for the quantized inputs of reconstruction).
        fmt: the quantization format; seed: the run's seed; params: method settings.
    """

    layers: list[Layer]
    weights: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    amax: dict[str, np.ndarray]
    inputs: LayerInputs
    act_amax: Mapping[str, float]
    fmt: QuantFormat = INT8
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    on_grid: set[str] = field(default_factory=set)

    def quantized(self, node: str) -> np.ndarray:
        """The weight as Q/DQ will compute it (grouped layout)."""
        return fake_quant(self.weights[node], channel_scales(self.amax[node], self.fmt)[..., None], self.fmt)


@dataclass
class WeightPTQ:
    """The result: what `trtq.qdq.insert_qdq(..., weights=)` applies.

    Attributes:
        initializers: initializer name -> new value (weights and biases of quantized layers only).
        weight_amax: weight initializer -> per-channel amax along the plan's axis.
        methods: the methods applied, in order.
        summary: method -> what it did (JSON values); seconds: method -> wall time.
        layers: weight initializer -> (layer node, bias initializer or None).
    """

    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    weight_amax: dict[str, np.ndarray] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    layers: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def for_weights(self, weights: Mapping[str, int]) -> dict[str, np.ndarray]:
        """The new initializers of the layers whose weight is in `weights` (an FP16 fallback layer keeps its own)."""
        out: dict[str, np.ndarray] = {}
        for w in weights:
            if w in self.layers:
                _, bias = self.layers[w]
                if w in self.initializers:
                    out[w] = self.initializers[w]
                if bias is not None and bias in self.initializers:
                    out[bias] = self.initializers[bias]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"methods": list(self.methods), "layers": len(self.layers), "summary": self.summary,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}  # fmt: skip
