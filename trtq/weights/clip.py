"""Per-channel weight clipping by search: each output channel's amax minimises the layer's output error.

For a channel with weight w (k values) and the second moment H = E[p p^T] of its input patches p on
calibration data, clipping at amax a gives the expected squared output error

    e(a) = d^T H d,   d = w - Q(w; a)

(Q: round to the nearest of 255 levels of a / 127, saturating). The search tries `CANDIDATES` ratios
a / max|w| from `MIN_RATIO` to 1 and keeps the best per channel; without patches H is the identity (the
weight's own MSE). Max |w| (ratio 1) is always a candidate, so the error never grows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtq.weights.base import WeightState, channel_scales, register_weight_method

__all__ = ["clip_search", "MIN_RATIO", "CANDIDATES"]

MIN_RATIO = 0.5
CANDIDATES = 51


def _second_moment(patches: np.ndarray | None, k: int, groups: int) -> np.ndarray | None:
    if patches is None:
        return None
    p = patches.astype(np.float64)
    return (np.einsum("gnk,gnl->gkl", p, p) / p.shape[1]).astype(np.float32)  # (groups, k, k)


def channel_errors(w: np.ndarray, amax: np.ndarray, h: np.ndarray | None, fmt: Any) -> np.ndarray:
    """Expected output error per channel (groups, out) of quantizing w (groups, out, k) with `amax`."""
    s = channel_scales(amax, fmt)[..., None]
    d = w - np.clip(np.round(w / s), fmt.qmin, fmt.qmax) * s  # the executed range, as fake_quant
    if h is None:
        return (d * d).sum(axis=-1)
    return np.einsum("gok,gkl,gol->go", d, h, d)


@register_weight_method(
    "clip",
    order=20,
    needs_patches=True,
    help="per-channel weight amax searched to minimise the layer's output error",
)
def clip_search(state: WeightState) -> dict[str, Any]:
    ratios = np.linspace(MIN_RATIO, 1.0, CANDIDATES, dtype=np.float32)
    chosen: list[np.ndarray] = []
    for ly in state.layers:
        w = state.weights[ly.node]
        top = np.abs(w).max(axis=-1)
        h = _second_moment(state.inputs.patches.get(ly.node), w.shape[-1], w.shape[0])
        best_err = np.full(top.shape, np.inf, dtype=np.float64)
        best = top.copy()
        for r in ratios[::-1]:  # from 1 down: ties keep the larger amax
            a = (top * r).astype(np.float32)
            err = channel_errors(w, a, h, state.fmt)
            better = err < best_err * (1 - 1e-9)
            best_err = np.where(better, err, best_err)
            best = np.where(better, a, best)
        state.amax[ly.node] = best.astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            chosen.append(np.where(top > 0, best / np.where(top > 0, top, 1), 1.0).ravel())
    allr = np.concatenate(chosen) if chosen else np.ones(0)
    return {"layers": len(state.layers), "channels": int(allr.size),
            "clipped_channels": int((allr < 1).sum()),
            "mean_ratio": float(allr.mean()) if allr.size else 1.0,
            "objective": "output error on calibration patches"}  # fmt: skip
