"""`trtq.weights.clip`: the per-channel weight clipping search, measured through ONNX Runtime."""

from __future__ import annotations

import numpy as np

from tests.weights.cases import conv_model, quantized, run


def test_clip_search_beats_max_on_an_outlier_weight_of_a_quiet_input():
    """Weights ~N(0, 1) with one weight of 40 per channel on an input channel that is nearly constant (as after
    BatchNorm folding of a dead channel): max |w| spends the grid on it, the output-error search clips it (its
    error costs nothing at the output) and rounds the others finer."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1, (8, 32, 1, 1)).astype(np.float32)
    w[:, 0] = 40.0
    model = conv_model(w, np.zeros(8, np.float32))
    x_cal = rng.normal(0, 1, (128, 32, 6, 6)).astype(np.float32)
    x_val = rng.normal(0, 1, (64, 32, 6, 6)).astype(np.float32)
    x_cal[:, 0] *= 0.001
    x_val[:, 0] *= 0.001
    ref = run(model, x_val)
    err = {}
    for methods in ([], ["clip"]):
        q, res = quantized(model, x_cal, methods, amax={"x": 4.0})
        err[bool(methods)] = float(((run(q, x_val) - ref) ** 2).mean())
    assert err[True] < 0.8 * err[False], err  # measured: 0.24x
    assert res.summary["clip"]["clipped_channels"] > 0
