"""Weight-side PTQ: methods that change only weights, biases and per-channel weight scales.

Registered methods (`WEIGHT_METHODS`, chosen with `--weight-ptq a,b`), applied in this order:

- `equalize` (equalize.py): cross-layer equalisation of conv pairs, on the FP32 graph before calibration.
- `clip` (clip.py): per-channel weight amax searched to minimise the layer's output error.
- `adaround` (adaround.py): learned up/down rounding reconstructing each layer's output.
- `bias-correction` (bias.py): the mean output shift of the quantized weights removed from the bias.

`weight_ptq()` (run.py) applies them; `trtq.qdq.insert_qdq(..., weights=result)` writes the result.
"""

import importlib
from typing import Any

from trtq.weights import adaround, bias, clip, equalize  # noqa: F401  (register the built-in methods)
from trtq.weights.base import WEIGHT_METHODS, WeightMethod, WeightPTQ, WeightState, register_weight_method

# the graph side (onnx) loads on first use, so the CLI's help lists the methods without it
_LAZY = {
    "Layer": "trtq.weights.layers",
    "LayerInputs": "trtq.weights.layers",
    "collect_inputs": "trtq.weights.layers",
    "find_layers": "trtq.weights.layers",
    "weight_ptq": "trtq.weights.run",
    "resolve_weight_methods": "trtq.weights.run",
    "apply_initializers": "trtq.weights.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trtq.weights' has no attribute {name!r}")


__all__ = [
    "WEIGHT_METHODS",
    "WeightMethod",
    "WeightPTQ",
    "WeightState",
    "register_weight_method",
    "Layer",
    "LayerInputs",
    "collect_inputs",
    "find_layers",
    "weight_ptq",
    "resolve_weight_methods",
    "apply_initializers",
]
