"""Bias correction: remove the mean shift that weight quantization adds to each output channel.

Convolution is linear, so over the calibration data the mean output of a weight change dW is dW applied to
the mean input: E[conv(x, W_q)] - E[conv(x, W)] = conv(E[x], W_q - W), averaged over output positions
(padding included, exactly). That shift is subtracted from the bias, so the quantized layer's mean output per
channel equals the FP32 layer's on calibration data (empirical bias correction, Nagel et al. 2019).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtq.weights.base import WeightState, register_weight_method

__all__ = ["mean_shift", "bias_correction"]


def mean_shift(state: WeightState, node: str) -> np.ndarray | None:
    """The mean output shift (out,) that quantizing layer `node` adds, from its mean input."""
    import torch

    ly = next(x for x in state.layers if x.node == node)
    mean = state.inputs.mean.get(node)
    if mean is None:
        return None
    dw = state.quantized(node) - state.reference[node]  # (groups, out per group, k)
    if ly.op == "Conv":
        o = dw.shape[0] * dw.shape[1]
        kern = torch.from_numpy(dw.reshape(o, -1, *ly.kernel).astype(np.float32))
        top, left, bottom, right = ly.pads
        x = torch.nn.functional.pad(
            torch.from_numpy(mean[None].astype(np.float32)), (left, right, top, bottom)
        )
        y = torch.nn.functional.conv2d(x, kern, stride=ly.strides, dilation=ly.dilations, groups=ly.group)
        return y.mean(dim=(0, 2, 3)).numpy().astype(np.float32)
    m = mean.reshape(-1, mean.shape[-1]).mean(axis=0)
    return (dw[0] @ m).astype(np.float32)


@register_weight_method(
    "bias-correction", order=40, needs_patches=False,
    help="subtract the mean output shift of the quantized weight from the bias (calibration data)",
)  # fmt: skip
def bias_correction(state: WeightState) -> dict[str, Any]:
    changed, shifts = 0, []
    for ly in state.layers:
        if ly.node not in state.biases:
            continue
        shift = mean_shift(state, ly.node)
        if shift is None:
            continue
        state.biases[ly.node] = (state.biases[ly.node] - shift).astype(np.float32)
        shifts.append(np.abs(shift))
        changed += 1
    allv = np.concatenate(shifts) if shifts else np.zeros(0)
    return {"layers": changed, "skipped_without_bias": sum(1 for ly in state.layers if ly.node not in state.biases),
            "mean_abs_shift": float(allv.mean()) if allv.size else 0.0,
            "max_abs_shift": float(allv.max()) if allv.size else 0.0}  # fmt: skip
