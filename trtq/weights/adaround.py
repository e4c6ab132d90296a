"""Learned rounding (AdaRound, Nagel et al. 2020): per layer, whether each weight rounds up or down.

For a layer with per-channel scale s, weight w = s (floor(w / s) + r), the rounding is learned as
h(V) in [0, 1] (a rectified sigmoid), the soft weight s clip(floor(w / s) + h(V)) reconstructing the FP32
output on sampled calibration input patches:

    loss = mean || P_q W_soft^T - P W^T ||^2 + lambda L0 mean (1 - |2 h(V) - 1|^beta)

where L0 is the loss of rounding to nearest (so lambda = `REG` is scale-free), P are FP32 input patches and P_q the same patches quantized with the layer input's calibrated scale
(the input TensorRT will feed it); beta anneals from 20 to 2 after a warm-up, driving h to 0 or 1. The
result is hard: floor + (h >= 0.5). Each layer runs a fixed number of iterations (`iters`) on a fixed sample
(`PATCHES_PER_LAYER` patches, `BATCH` per step), so its time is bounded and the same seed gives the same
rounding. The learned weights are stored on the grid (s * q), so TensorRT's round-to-nearest reproduces them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtq.weights.base import WeightState, channel_scales, register_weight_method

__all__ = ["adaround", "ITERS", "BATCH", "REG"]

ITERS = 300
BATCH = 512
REG = 0.1
_ZETA, _GAMMA = 1.1, -0.1
_WARMUP = 0.2


def _h(v: Any) -> Any:
    import torch

    return torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)


def _fake_input(p: np.ndarray, amax: float | None, fmt: Any) -> np.ndarray:
    if amax is None or amax <= 0:
        return p
    s = np.float32(max(amax / fmt.max_value, 2.0**-14))
    return (np.clip(np.round(p / s), fmt.qmin, fmt.qmax) * s).astype(np.float32)


def round_layer(
    w: np.ndarray,
    scale: np.ndarray,
    patches: np.ndarray,
    patches_q: np.ndarray,
    *,
    iters: int,
    seed: int,
    fmt: Any,
) -> tuple[np.ndarray, float, float]:
    """Learned rounding of one layer (grouped layout); returns (weight on the grid, nearest loss, learned loss)."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    wt = torch.from_numpy(w.astype(np.float32))
    s = torch.from_numpy(scale.astype(np.float32))[..., None]
    p = torch.from_numpy(patches.astype(np.float32))
    pq = torch.from_numpy(patches_q.astype(np.float32))
    target = torch.einsum("gnk,gok->gno", p, wt)
    base = torch.floor(wt / s)
    rest = (wt / s - base).clamp(1e-4, 1 - 1e-4)
    prob = ((rest - _GAMMA) / (_ZETA - _GAMMA)).clamp(1e-4, 1 - 1e-4)
    v = torch.log(prob / (1 - prob)).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=1e-2)
    lo, hi = fmt.qmin, fmt.qmax  # the range QuantizeLinear executes (INT8 -128..127), as fake_quant

    def out(weight: Any, rows: Any) -> Any:
        return torch.einsum("gnk,gok->gno", pq[:, rows], weight)

    def loss_of(weight: Any, rows: Any) -> float:
        return float(((out(weight, rows) - target[:, rows]) ** 2).mean())

    n = p.shape[1]
    every = torch.arange(n)
    nearest = torch.clamp(torch.round(wt / s), lo, hi) * s
    before = loss_of(nearest, every)
    warm = int(iters * _WARMUP)
    for it in range(iters):
        rows = torch.randint(0, n, (min(BATCH, n),), generator=g)
        soft = torch.clamp(base + _h(v), lo, hi) * s
        rec = ((out(soft, rows) - target[:, rows]) ** 2).mean()
        if it >= warm:
            beta = 20 + (2 - 20) * (it - warm) / max(1, iters - warm)
            reg = (1 - (2 * _h(v) - 1).abs().pow(beta)).sum() / v.numel()
            loss = (
                rec + REG * before * reg
            )  # scale-free: the penalty is relative to the nearest-rounding loss
        else:
            loss = rec
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hard = torch.clamp(base + (_h(v) >= 0.5).float(), lo, hi) * s
        after = loss_of(hard, every)
        if after > before:  # never worse than nearest on the sample
            return nearest.numpy().astype(np.float32), before, before
    return hard.numpy().astype(np.float32), before, after


@register_weight_method(
    "adaround", order=30, needs_patches=True,
    help="learned up/down rounding per weight reconstructing each layer's output (AdaRound)",
)  # fmt: skip
def adaround(state: WeightState) -> dict[str, Any]:
    import torch

    iters = int(state.params.get("adaround_iters", ITERS))
    gains: list[float] = []
    flipped = total = 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for i, ly in enumerate(state.layers):
        patches = state.inputs.patches.get(ly.node)
        if patches is None:
            continue
        w = state.weights[ly.node]
        scale = channel_scales(state.amax[ly.node], state.fmt)
        pq = _fake_input(patches, state.act_amax.get(ly.input), state.fmt)
        new, before, after = round_layer(
            w, scale, patches, pq, iters=iters, seed=state.seed * 1000 + i, fmt=state.fmt
        )
        near = state.quantized(ly.node)
        flipped += int((np.abs(new - near) > 0).sum())
        total += new.size
        state.weights[ly.node] = new
        state.on_grid.add(ly.node)
        gains.append(after / before if before > 0 else 1.0)
    return {"layers": len(gains), "iters": iters, "flipped_fraction": flipped / total if total else 0.0,
            "mean_loss_ratio": float(np.mean(gains)) if gains else 1.0}  # fmt: skip
