"""Weight-side PTQ: methods that change only weights, biases and per-channel weight scales.

Registered methods (`WEIGHT_METHODS`, chosen with `--weight-ptq a,b`), applied in this order:

- `clip` (clip.py): per-channel weight amax searched to minimise the layer's output error.
- `adaround` (adaround.py): learned up/down rounding reconstructing each layer's output.
- `bias-correction` (bias.py): the mean output shift of the quantized weights removed from the bias.

`weight_ptq()` (run.py) applies them; `trtq.qdq.insert_qdq(..., weights=result)` writes the result.
"""

from trtq.weights import adaround, bias, clip  # noqa: F401  (register the built-in methods)
from trtq.weights.base import WEIGHT_METHODS, WeightMethod, WeightPTQ, WeightState, register_weight_method
from trtq.weights.layers import Layer, LayerInputs, collect_inputs, find_layers
from trtq.weights.run import apply_initializers, resolve_weight_methods, weight_ptq

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
