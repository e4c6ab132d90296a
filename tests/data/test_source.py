"""`DataSource`: batches in order with their targets, feeds, properties, NaN refused, reproducible subsets."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.data import ClassLabels, DataSource, load_data
from trtq.errors import UsageError


def _source(n: int = 7, labels: bool = True) -> DataSource:
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 1, 2, 1)
    return DataSource(
        "s", array=x, targets=ClassLabels(np.arange(n) % 3, ("a", "b", "c")) if labels else None
    )


def test_nan_in_data_is_reported() -> None:
    x = np.zeros((4, 1, 2, 2), np.float32)
    x[2, 0, 1, 1] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        list(load_data(x).iter_batches(2))


def test_batches_cover_every_sample_in_order_with_their_targets():
    ds = _source()
    batches = list(ds.iter_batches(3))
    assert [len(x) for x, _ in batches] == [3, 3, 1] and ds.num_batches(3) == 3
    assert all(x.dtype == np.float32 and x.flags.c_contiguous for x, _ in batches)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), ds.array.astype(np.float32))
    assert [t.values.tolist() for _, t in batches] == [[0, 1, 2], [0, 1, 2], [0]]
    assert batches[0][1].classes == ("a", "b", "c")
    feeds = list(ds.feeds("images", 4))
    assert [list(f) for f in feeds] == [["images"], ["images"]] and feeds[1]["images"].shape == (3, 1, 2, 1)
    assert [t for _, t in _source(labels=False).iter_batches(4)] == [None, None]
    with pytest.raises(UsageError, match="--batch-size must be >= 1, not 0"):
        next(ds.iter_batches(0))


def test_properties_read_the_targets():
    ds = _source()
    assert len(ds) == 7 and ds.sample_shape == (1, 2, 1)
    assert ds.has_labels and ds.targets_kind == "class" and ds.classes == ["a", "b", "c"]
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    bare = _source(labels=False)
    assert (bare.has_labels, bare.targets_kind, bare.labels, bare.classes) == (False, None, None, None)
    assert DataSource("n", array=np.zeros((2, 1, 1, 1)), targets=ClassLabels([1, 2])).classes is None


def test_subset_keeps_order_targets_and_is_seeded():
    ds = _source(20)
    sub = ds.subset(5, seed=3)
    assert len(sub) == 5 and sub.subset(None) is sub and ds.subset(20) is ds
    idx = (sub.array[:, 0, 0, 0] / 2).astype(int)
    assert np.all(np.diff(idx) > 0) and sub.labels.tolist() == (idx % 3).tolist()
    assert np.array_equal(ds.subset(5, seed=3).array, sub.array)
    with pytest.raises(UsageError, match="sample count must be >= 1, not 0"):
        ds.subset(0)


def test_a_folder_subset_takes_the_same_files_as_the_array_subset(image_folder):
    folder = load_data(image_folder(classes=2, per_class=4), "raw")
    sub = folder.subset(3, seed=1)
    order = np.sort(np.random.default_rng(1).choice(8, size=3, replace=False))
    assert (
        sub.files == [folder.files[i] for i in order] and sub.labels.tolist() == folder.labels[order].tolist()
    )
