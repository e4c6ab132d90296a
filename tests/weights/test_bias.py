"""`trtq.weights.bias`: bias correction, measured through ONNX Runtime on the Q/DQ graph as written."""

from __future__ import annotations

import numpy as np

from tests.weights.cases import conv_model, quantized, run


def test_bias_correction_removes_the_mean_shift_of_biased_rounding():
    """Each channel: one weight 127 steps, the other 15 at 0.45 steps, all rounding down to 0; with a positive
    input that shifts every output by -0.45 * 15 * E[x] steps. Bias correction must remove it."""
    rng = np.random.default_rng(0)
    step = 0.01
    w = np.full((8, 16, 1, 1), 0.45 * step, np.float32)
    w[:, 0] = 127 * step
    model = conv_model(w, np.zeros(8, np.float32))
    x_cal = rng.uniform(0.5, 1.5, (128, 16, 6, 6)).astype(np.float32)
    x_val = rng.uniform(0.5, 1.5, (64, 16, 6, 6)).astype(np.float32)
    ref = run(model, x_val)
    plain, _ = quantized(model, x_cal, [])
    fixed, res = quantized(model, x_cal, ["bias-correction"])
    shift_plain = abs(float((run(plain, x_val) - ref).mean()))
    shift_fixed = abs(float((run(fixed, x_val) - ref).mean()))
    assert shift_plain > 0.05  # 0.45 * 15 * 1.0 * 0.01 = 0.0675, less the activation rounding
    assert shift_fixed < 0.1 * shift_plain, (shift_plain, shift_fixed)
    assert res.summary["bias-correction"]["layers"] == 1
    assert set(res.initializers) == {"b"}  # only the bias changed
