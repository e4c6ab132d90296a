"""Fidelity metrics against numpy: cosine, SNR, MSE, absolute errors and output noise over every float output."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trtq.metrics import get_metric
from trtq.metrics.fidelity import (
    SNR_IDENTICAL_DB,
    cosine,
    max_abs_error,
    mean_abs_error,
    mse,
    output_noise,
    per_sample,
    snr_db,
)

RNG = np.random.default_rng(1)
REF = {"a": RNG.standard_normal((16, 3, 4)).astype(np.float32), "b": RNG.standard_normal(16).astype(np.float32),
       "ids": np.arange(16)}  # fmt: skip
OUT = {"a": REF["a"] + RNG.standard_normal((16, 3, 4)).astype(np.float32) * 0.1,
       "b": REF["b"] * 0.9, "ids": np.zeros(16, np.int64)}  # fmt: skip


def _flat(d):
    """Per sample, the concatenation of every float output (the metrics' view), in float64."""
    return np.concatenate([d["a"].reshape(16, -1), d["b"].reshape(16, 1)], axis=1).astype(np.float64)


def test_per_sample_concatenates_float_outputs_only():
    r, o = per_sample(REF, OUT)
    assert r.shape == o.shape == (16, 13) and r.dtype == np.float64
    np.testing.assert_array_equal(r, _flat(REF))
    r0, _ = per_sample({"ids": REF["ids"]}, {"ids": REF["ids"]})
    assert r0.size == 0


def test_cosine_is_the_mean_per_sample_cosine():
    r, o = _flat(REF), _flat(OUT)
    expected = np.mean(np.sum(r * o, 1) / np.linalg.norm(r, axis=1) / np.linalg.norm(o, axis=1))
    assert cosine(REF, OUT) == pytest.approx(expected, rel=1e-12)
    zero = {"a": np.zeros((2, 3))}
    assert cosine(zero, zero) == 1.0 and cosine(zero, {"a": np.array([[0, 0, 0], [1, 0, 0]])}) == 0.5
    assert cosine({"ids": REF["ids"]}, {"ids": REF["ids"]}) == 1.0


def test_snr_and_output_noise_are_error_energy_over_signal_energy():
    r, o = _flat(REF), _flat(OUT)
    noise = np.sum((o - r) ** 2) / np.sum(r**2)
    assert output_noise(REF, OUT) == pytest.approx(noise, rel=1e-12)
    assert snr_db(REF, OUT) == pytest.approx(10 * math.log10(1 / noise), rel=1e-12)
    assert snr_db(REF, REF) == SNR_IDENTICAL_DB == 320.0
    zero = {"a": np.zeros((2, 2))}
    assert output_noise(zero, {"a": np.ones((2, 2))}) == 4.0  # no signal: the raw error energy


def test_mse_and_absolute_errors_over_every_element():
    d = _flat(OUT) - _flat(REF)
    assert mse(REF, OUT) == pytest.approx(np.mean(d**2), rel=1e-12)
    assert max_abs_error(REF, OUT) == pytest.approx(np.abs(d).max(), rel=1e-12)
    assert mean_abs_error(REF, OUT) == pytest.approx(np.abs(d).mean(), rel=1e-12)
    ints = {"ids": REF["ids"]}
    assert mse(ints, ints) == max_abs_error(ints, ints) == mean_abs_error(ints, ints) == 0.0


def test_directions_units_and_which_are_automatic():
    higher = {
        n: get_metric(n).higher_is_better
        for n in ("cosine", "snr_db", "mse", "max_abs_error", "mean_abs_error", "output_noise")
    }
    assert higher == {"cosine": True, "snr_db": True, "mse": False, "max_abs_error": False, "mean_abs_error": False,
                      "output_noise": False}  # fmt: skip
    assert get_metric("snr_db").unit == "db" and get_metric("cosine").unit == "value"
    assert [n for n in ("cosine", "snr_db", "mse", "output_noise") if get_metric(n).auto] == [
        "cosine",
        "snr_db",
    ]
    assert all(get_metric(n).kind == "fidelity" for n in higher)
    assert not get_metric("cosine").usable({"ids": REF["ids"]}, None)  # needs a float output


def test_output_kl_against_torch_kl_div():
    import torch

    from trtq.metrics.fidelity import output_kl

    ref = {"logits": RNG.standard_normal((16, 10)).astype(np.float32), "ids": np.arange(16)}
    out = {
        "logits": ref["logits"] + RNG.standard_normal((16, 10)).astype(np.float32) * 0.3,
        "ids": np.arange(16),
    }
    p = torch.log_softmax(torch.from_numpy(ref["logits"]).double(), -1)
    q = torch.log_softmax(torch.from_numpy(out["logits"]).double(), -1)
    expected = torch.nn.functional.kl_div(q, p, reduction="batchmean", log_target=True).item()  # KL(p || q)
    assert output_kl(ref, out) == pytest.approx(expected, rel=1e-9)
    assert output_kl(ref, ref) == 0.0
    # rows inside a sample (a detector's per-box scores) are averaged; outputs add up
    boxes = {"s": np.stack([ref["logits"], out["logits"]], axis=1)}
    assert output_kl(boxes, {"s": boxes["s"][:, ::-1]}) > 0
    assert output_kl({**ref, "b": ref["logits"]}, {**out, "b": out["logits"]}) == pytest.approx(2 * expected)
    assert not get_metric("output_kl").higher_is_better and get_metric("output_kl").kind == "fidelity"
