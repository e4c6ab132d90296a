"""Calibrators against independent implementations, and the histogram collector's exactness.

References: ModelOpt's PyTorch HistogramCalibrator (entropy), numpy.percentile, brute-force MSE search
(numeric integration of the same objective, and the raw samples), numpy max. Data: heavy-tailed
(Student-t, Laplace), bimodal, ReLU-like, and real activations of a small random-init conv net.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from trtq.calibrators import (
    EntropyCalibrator,
    HistogramCollector,
    MinMaxCalibrator,
    MSECalibrator,
    NonFiniteActivation,
    PercentileCalibrator,
    get_calibrator,
    list_calibrators,
)
from trtq.calibrators.entropy import entropy_threshold_bins
from trtq.calibrators.mse import mse_errors, mse_threshold_bins
from trtq.errors import TrtqError, UsageError

N = 200_000


def _real_activations() -> dict[str, np.ndarray]:
    """Pre-activation (signed) and post-ReLU outputs of a small random-init conv net on random images."""
    torch.manual_seed(0)
    conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
    conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        pre = conv2(torch.relu(conv1(x)))
    return {"conv_out": pre.numpy().ravel(), "relu_out": torch.relu(pre).numpy().ravel()}


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {
        "student_t3": rng.standard_t(3, N),
        "laplace": rng.laplace(size=N),
        "bimodal": np.concatenate([rng.normal(-3, 0.5, N // 2), rng.normal(5, 1, N // 2)]),
        "relu_normal": np.maximum(rng.standard_normal(N), 0),
    }
    out.update(_real_activations())
    return {k: v.astype(np.float32) for k, v in out.items()}


DATA = _data()


def _collect(x: np.ndarray, batches: int = 5) -> HistogramCollector:
    col = HistogramCollector()
    for part in np.array_split(x, batches):
        col.collect({"t": part})
    return col


def _aligned(x: np.ndarray) -> np.ndarray:
    """Rescale so max|x| = 16 - 2**-20: then trtq's bins and a one-shot [0, max|x|] 2048-bin histogram coincide."""
    return (x / np.abs(x).max() * np.float32(16 - 2**-20)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- registry


def test_registry_has_the_four_methods_and_the_max_alias():
    assert list_calibrators() == ["entropy", "minmax", "percentile", "mse"]  # the order --calib all uses
    assert isinstance(get_calibrator("max"), MinMaxCalibrator)
    assert get_calibrator("percentile", percentile=99.9).percentile == 99.9
    with pytest.raises(UsageError, match="'kl' is not a registered calibration method; choose from entropy"):
        get_calibrator("kl")


def test_standalone_calibrators_follow_the_collect_compute_protocol():
    x = DATA["laplace"]
    cals = {m: get_calibrator(m) for m in list_calibrators()}
    for part in np.array_split(x, 4):
        for c in cals.values():
            c.collect({"a": part, "b": 2 * part})
    shared = HistogramCollector()
    for part in np.array_split(x, 4):
        shared.collect({"a": part, "b": 2 * part})
    for m, c in cals.items():
        amax = c.compute_amax()
        assert set(amax) == {"a", "b"}
        assert amax["b"] == pytest.approx(2 * amax["a"], rel=1e-6)  # scale equivariance (power-of-two bins)
        assert amax == get_calibrator(m, collector=shared).compute_amax()
    assert cals["minmax"].collector.tensors["a"].fine is None  # minmax alone keeps no histogram


# ---------------------------------------------------------------------------------------------- minmax


@pytest.mark.parametrize("name", sorted(DATA))
def test_minmax_is_the_exact_max_abs(name):
    x = DATA[name]
    assert MinMaxCalibrator(collector=_collect(x)).compute_amax()["t"] == float(np.abs(x).max())


# ---------------------------------------------------------------------------------------------- entropy


@pytest.mark.parametrize(
    ("name", "bins"),
    [("relu_out", 2048), ("student_t3", 1024), ("laplace", 1024), ("bimodal", 1024), ("conv_out", 1024)],
)
def test_entropy_matches_modelopt_histogram_calibrator_within_one_bin(name, bins):
    """Same data into ModelOpt's HistogramCalibrator (one collect, `bins` bins over [0, max|x|]) and into trtq.

    The data is scaled so max|x| = 16 - 2**-20: both histograms then have `bins` bins of width max|x|/bins
    (up to 2**-31), so both run the KL search over the same histogram. Tolerance: one bin (max|x| / bins).
    Fewer bins than 2048 in some cases only because ModelOpt's Python loop takes seconds per call.
    """
    from modelopt.torch.quantization.calib.histogram import HistogramCalibrator

    x = _aligned(DATA[name])
    col = _collect(x)
    hist = col["t"].coarse(bins)
    assert len(hist.counts) == bins and hist.bin_width == 16 / bins
    ours = EntropyCalibrator(num_bins=bins, collector=col).compute_amax()["t"]
    ref = HistogramCalibrator(num_bins=bins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.collect(torch.from_numpy(x))
        theirs = float(ref.compute_amax("entropy"))
    assert abs(ours - theirs) <= hist.bin_width + 1e-6, (ours, theirs)


@pytest.mark.parametrize("seed", range(4))
def test_entropy_search_equals_modelopt_on_the_same_histogram(seed):
    """The vectorised KL search picks exactly the threshold of ModelOpt's loop, on arbitrary histograms."""
    from modelopt.torch.quantization.calib.histogram import _compute_amax_entropy

    rng = np.random.default_rng(seed)
    nb = 400
    shape = np.exp(-np.linspace(0, rng.uniform(3, 12), nb)) * rng.uniform(0.5, 1.5, nb)
    counts = rng.poisson(shape * 5000).astype(np.int64)
    counts[rng.choice(nb, 40, replace=False)] = 0  # empty bins exercise the zero-bin handling
    counts[-1] = max(counts[-1], 1)
    edges = np.arange(nb + 1, dtype=np.float64)
    theirs = float(_compute_amax_entropy(counts.copy(), edges, 8, False))
    assert entropy_threshold_bins(counts) == theirs


# ---------------------------------------------------------------------------------------------- percentile


@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_matches_numpy_within_one_fine_bin(name, p):
    x = DATA[name]
    col = _collect(x)
    ours = PercentileCalibrator(p, collector=col).compute_amax()["t"]
    ref = float(np.percentile(np.abs(x), p))
    fine = col["t"].fine_width  # max|x| / 32768 .. / 65536, 1/16 .. 1/32 of a 2048-bin bin
    assert ref - 1e-6 <= ours <= ref + fine + 1e-6


def test_percentile_100_is_the_max():
    x = DATA["laplace"]
    assert PercentileCalibrator(100.0, collector=_collect(x)).compute_amax()["t"] == float(np.abs(x).max())


# ---------------------------------------------------------------------------------------------- mse


def _brute_force_expected_mse(counts: np.ndarray, start_bin: int = 128, sub: int = 32) -> np.ndarray:
    """The same objective by numeric integration: each bin's mass spread over `sub` points, quantized directly."""
    nb = len(counts)
    pts = (np.arange(nb * sub) + 0.5) / sub  # positions in bin widths
    w = np.repeat(counts.astype(np.float64) / sub, sub)
    errs = []
    for i in range(start_bin, nb + 1):
        s = i / 127.0
        q = np.minimum(np.rint(pts / s), 127) * s
        errs.append(float(w @ (q - pts) ** 2))
    return np.array(errs)


@pytest.mark.parametrize("name", ["student_t3", "bimodal", "relu_out"])
def test_mse_equals_brute_force_search_of_the_same_objective(name):
    col = _collect(DATA[name])
    counts = col["t"].coarse(384).counts  # few bins keep the brute force quick
    cand, errs = mse_errors(counts)
    brute = _brute_force_expected_mse(counts)
    np.testing.assert_allclose(errs, brute, rtol=2e-3)
    assert abs(mse_threshold_bins(counts) - (128 + int(np.argmin(brute)))) <= 1


@pytest.mark.parametrize("name", ["student_t3", "laplace", "bimodal", "relu_normal", "conv_out"])
def test_mse_threshold_is_near_optimal_on_the_raw_samples(name):
    """On the raw samples, trtq's amax loses < 0.1% MSE against the best candidate found by brute force."""
    x = DATA[name]
    col = _collect(x)
    ours = MSECalibrator(collector=col).compute_amax()["t"]
    a = np.abs(x).astype(np.float64)

    def mse(t: float) -> float:
        return float(np.mean((np.minimum(np.rint(a * 127 / t), 127) * t / 127 - a) ** 2))

    w = col["t"].coarse().bin_width
    grid = np.arange(max(ours - 40 * w, w), ours + 40 * w, w / 2)
    best = min(mse(t) for t in grid)
    assert mse(ours) <= best * 1.001
    assert mse(ours) < mse(float(a.max()))  # and it beats not clipping at all on these tails


# ---------------------------------------------------------------------------------------------- collector


def test_fine_histogram_equals_numpy_histogram_with_the_final_edges():
    x = DATA["student_t3"]
    col = _collect(x, batches=9)
    rec = col["t"]
    ref, _ = np.histogram(np.abs(x), bins=col.fine_bins, range=(0, col.fine_bins * rec.fine_width))
    np.testing.assert_array_equal(rec.fine, ref)
    assert rec.absmax < col.fine_bins * rec.fine_width <= 2 * rec.absmax  # no half-empty range


def test_histograms_do_not_depend_on_batch_size_or_order():
    """Growing ranges merge bins exactly: any split and order gives the same histogram and thresholds."""
    x = DATA["laplace"]
    rising = x[np.argsort(np.abs(x))]  # the range grows with every batch
    runs = [
        _collect(x, 1),
        _collect(rising, 50),
        _collect(rising[::-1], 7),
        _collect(np.random.default_rng(1).permutation(x), 13),
    ]
    ref = runs[0]["t"]
    for col in runs[1:]:
        np.testing.assert_array_equal(col["t"].fine, ref.fine)
        assert col["t"].exponent == ref.exponent
    for m in list_calibrators():
        values = {get_calibrator(m, collector=c).compute_amax()["t"] for c in runs}
        assert len(values) == 1, (m, values)


def test_memory_is_bins_not_samples():
    col = HistogramCollector()
    rng = np.random.default_rng(0)
    for i in range(30):
        col.collect({"t": rng.standard_normal(10_000).astype(np.float32) * (1 + i)})
    rec = col["t"]
    assert rec.fine.nbytes == col.fine_bins * 8 and rec.count == 300_000
    assert int(rec.fine.sum()) == rec.count


def test_zeros_before_the_first_nonzero_batch_are_counted():
    col = HistogramCollector()
    col.collect({"t": np.zeros(1000, np.float32)})
    col.collect({"t": np.ones(10, np.float32)})
    rec = col["t"]
    assert rec.fine[0] == 1000 and rec.fine.sum() == 1010 and rec.nonzero == 10


def test_coarse_histogram_covers_max_with_close_to_num_bins():
    for name in ("student_t3", "relu_out"):
        rec = _collect(DATA[name])["t"]
        hist = rec.coarse(2048)
        assert 1928 <= len(hist.counts) <= 2048
        assert (len(hist.counts) - 1) * hist.bin_width <= rec.absmax < len(hist.counts) * hist.bin_width
        assert hist.counts.sum() == rec.count


def test_float16_and_float64_activations_are_accepted():
    x = DATA["laplace"][:1000]
    col = HistogramCollector()
    col.collect({"h": x.astype(np.float16), "d": x.astype(np.float64)})
    assert col["h"].count == col["d"].count == 1000
    assert col["d"].absmax == float(np.abs(x).max())


def test_non_float_and_non_finite_tensors_are_refused_by_name():
    col = HistogramCollector()
    with pytest.raises(UsageError, match="'shape'.*int64"):
        col.collect({"shape": np.array([1, 2, 3])})
    bad = np.ones(10, np.float32)
    bad[3] = np.inf
    with pytest.raises(NonFiniteActivation, match="'act'.*batch 4") as e:
        col.collect({"act": bad}, batch_index=4)
    assert isinstance(e.value, TrtqError)


def test_threads_and_merging_shares_give_the_single_pass_result():
    """Folding tensors in threads, or merging collectors fed disjoint shares, equals one sequential pass."""
    rng = np.random.default_rng(2)
    batches = [
        {
            "a": (rng.laplace(size=300_000) * (1 + i)).astype(np.float32),
            "b": rng.standard_normal(300_000).astype(np.float32),
        }
        for i in range(6)
    ]
    batches.insert(0, {"a": np.zeros(300_000, np.float32), "b": np.zeros(300_000, np.float32)})
    one, threaded = HistogramCollector(workers=1), HistogramCollector(workers=3)
    shares = [HistogramCollector(workers=1) for _ in range(3)]
    for i, b in enumerate(batches):
        one.collect(b)
        threaded.collect(b)
        shares[i % 3].collect(b)
    merged = shares[2]  # the share that saw the largest values last: merges must grow the others
    merged.merge(shares[0])
    merged.merge(shares[1])
    for col in (threaded, merged):
        for t in ("a", "b"):
            np.testing.assert_array_equal(col[t].fine, one[t].fine)
            assert (col[t].count, col[t].nonzero, col[t].min, col[t].max) == (
                one[t].count,
                one[t].nonzero,
                one[t].min,
                one[t].max,
            )
            assert col[t].sum == pytest.approx(one[t].sum, rel=1e-6, abs=1e-3)
    assert merged.batches == one.batches == len(batches)
    with pytest.raises(UsageError, match="fine bins"):
        one.merge(HistogramCollector(fine_bins=1 << 12))


def test_threaded_errors_name_the_first_bad_tensor_in_order():
    bad = np.ones(1 << 19, np.float32)
    bad[-1] = np.nan
    col = HistogramCollector(workers=2)
    with pytest.raises(NonFiniteActivation, match="'first'"):
        col.collect({"ok": np.ones(1 << 20, np.float32), "first": bad, "second": bad.copy()})
