"""The histogram collector: exact against numpy, independent of batching and order, memory in bins, merging."""

from __future__ import annotations

import numpy as np
import pytest

from tests.calibrators.cases import collect
from trtq.calibrators import HistogramCollector, NonFiniteActivation, get_calibrator, list_calibrators
from trtq.errors import TrtqError, UsageError


def test_fine_histogram_equals_numpy_histogram_with_the_final_edges(samples):
    x = samples["student_t3"]
    col = collect(x, batches=9)
    rec = col["t"]
    ref, _ = np.histogram(np.abs(x), bins=col.fine_bins, range=(0, col.fine_bins * rec.fine_width))
    np.testing.assert_array_equal(rec.fine, ref)
    assert rec.absmax < col.fine_bins * rec.fine_width <= 2 * rec.absmax  # no half-empty range


def test_histograms_do_not_depend_on_batch_size_or_order(samples):
    """Growing ranges merge bins exactly: any split and order gives the same histogram and thresholds."""
    x = samples["laplace"]
    rising = x[np.argsort(np.abs(x))]  # the range grows with every batch
    runs = [
        collect(x, 1),
        collect(rising, 50),
        collect(rising[::-1], 7),
        collect(np.random.default_rng(1).permutation(x), 13),
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


def test_coarse_histogram_covers_max_with_close_to_num_bins(samples):
    for name in ("student_t3", "relu_out"):
        rec = collect(samples[name])["t"]
        hist = rec.coarse(2048)
        assert 1928 <= len(hist.counts) <= 2048
        assert (len(hist.counts) - 1) * hist.bin_width <= rec.absmax < len(hist.counts) * hist.bin_width
        assert hist.counts.sum() == rec.count


def test_float16_and_float64_activations_are_accepted(samples):
    x = samples["laplace"][:1000]
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


@pytest.mark.parametrize("workers", [1, 2])  # 2: the threaded path (tensors of at least one chunk)
def test_an_optional_tensor_holding_inf_is_dropped_and_the_rest_folded(workers: int) -> None:
    rng = np.random.default_rng(0)
    good = rng.standard_normal(1 << 18).astype(np.float32)
    mask = np.zeros(1 << 18, np.float32)
    mask[7] = -np.inf
    col = HistogramCollector(workers=workers)
    assert col.collect({"mask": mask, "x": good}, batch_index=3, optional={"mask"}) == ["mask"]
    assert list(col.tensors) == ["x"] and col["x"].absmax == pytest.approx(float(np.abs(good).max()))
    with pytest.raises(NonFiniteActivation, match=r"'mask'.*batch 4"):  # not optional: still an error
        col.collect({"mask": mask, "x": good}, batch_index=4)
