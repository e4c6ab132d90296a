"""Fidelity metrics: how close a model's outputs are to the FP32 reference, over every float output.

Outputs are compared per sample (axis 0) and all float outputs count: a sample's cosine similarity is taken over
the concatenation of its outputs' values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trtq.metrics.base import Outputs, register_metric

__all__ = [
    "per_sample",
    "cosine",
    "output_noise",
    "snr_db",
    "SNR_IDENTICAL_DB",
    "mse",
    "max_abs_error",
    "mean_abs_error",
    "output_kl",
]


def per_sample(reference: Outputs, outputs: Outputs) -> tuple[np.ndarray, np.ndarray]:
    """(reference, candidate) float64 matrices (N, features) over every float output present in both."""
    refs, outs = [], []
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if not np.issubdtype(ref.dtype, np.floating) or name not in outputs:
            continue
        r = ref.astype(np.float64)
        r = r.reshape(r.shape[0], -1) if r.ndim > 1 else r.reshape(-1, 1)
        refs.append(r)
        outs.append(np.asarray(outputs[name], dtype=np.float64).reshape(r.shape))
    if not refs:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return np.concatenate(refs, axis=1), np.concatenate(outs, axis=1)


def _has_float(reference: Outputs) -> bool:
    return any(np.issubdtype(np.asarray(v).dtype, np.floating) for v in reference.values())


@register_metric(
    "cosine", unit="value", kind="fidelity", applies=_has_float, auto=True, title="cosine vs FP32"
)
def cosine(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Mean over samples of the cosine similarity to FP32 (1.0 = identical direction)."""
    r, o = per_sample(reference, outputs)
    if r.size == 0:
        return 1.0
    num = (r * o).sum(axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1)
    exact = (np.abs(r - o).max(axis=1) == 0) * 1.0
    return float(np.where(den > 0, num / np.where(den > 0, den, 1.0), exact).mean())


@register_metric("output_noise", higher_is_better=False, unit="value", kind="fidelity", applies=_has_float)
def output_noise(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Quantization noise at the outputs: sum |out - ref|^2 / sum |ref|^2 over every float output."""
    r, o = per_sample(reference, outputs)
    energy = float(np.sum(r * r))
    err = float(np.sum((o - r) ** 2))
    return err / energy if energy > 0 else err


#: What `snr_db` reports for outputs identical to FP32 (no noise at all): more than float64 rounding allows.
SNR_IDENTICAL_DB = 320.0


@register_metric("snr_db", unit="db", kind="fidelity", applies=_has_float, auto=True, title="SNR vs FP32")
def snr_db(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Signal-to-noise ratio of the outputs against FP32, in dB (10 log10 of signal over error energy)."""
    noise = output_noise(reference, outputs)
    return SNR_IDENTICAL_DB if noise <= 10.0 ** (-SNR_IDENTICAL_DB / 10) else float(-10.0 * math.log10(noise))


@register_metric("mse", higher_is_better=False, unit="value", kind="fidelity", applies=_has_float)
def mse(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Mean squared error against FP32 over every element of every float output."""
    r, o = per_sample(reference, outputs)
    return float(np.mean((o - r) ** 2)) if r.size else 0.0


@register_metric("max_abs_error", higher_is_better=False, unit="value", kind="fidelity", applies=_has_float)
def max_abs_error(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Largest absolute difference from FP32 over every element of every float output."""
    r, o = per_sample(reference, outputs)
    return float(np.max(np.abs(o - r))) if r.size else 0.0


@register_metric("mean_abs_error", higher_is_better=False, unit="value", kind="fidelity", applies=_has_float)
def mean_abs_error(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Mean absolute difference from FP32 over every element of every float output."""
    r, o = per_sample(reference, outputs)
    return float(np.mean(np.abs(o - r))) if r.size else 0.0


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@register_metric("output_kl", higher_is_better=False, unit="value", kind="fidelity", applies=_has_float)
def output_kl(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Mean over samples of KL(softmax(FP32) || softmax(output)) on the last axis of each float output (nats).

    For logits this is how much the predicted distribution moved; outputs with several rows per sample (a
    detector's per-box scores) count the mean over rows, and several outputs add up.
    """
    total = 0.0
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if not np.issubdtype(ref.dtype, np.floating) or name not in outputs or ref.size == 0:
            continue
        r = ref.astype(np.float64).reshape(ref.shape[0], -1, ref.shape[-1] if ref.ndim > 1 else 1)
        o = np.asarray(outputs[name], dtype=np.float64).reshape(r.shape)
        lp, lq = _log_softmax(r), _log_softmax(o)
        total += float((np.exp(lp) * (lp - lq)).sum(axis=-1).mean())
    return max(total, 0.0)
