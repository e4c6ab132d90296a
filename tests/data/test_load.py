"""Opening data: folders (labels from sub-folders), .npy/.npz arrays, arrays, iterables and DataLoaders; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.data import Preprocess, load_data
from trtq.errors import UsageError


def test_class_subfolders_give_sorted_labels_and_deterministic_order(image_folder) -> None:
    root = image_folder("data", classes=3, per_class=2)
    ds = load_data(root, Preprocess(size=16, resize=20))
    assert ds.classes == ["class_0", "class_1", "class_2"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    a = np.concatenate([x for x, _ in ds.iter_batches(4)])
    b = np.concatenate([x for x, _ in load_data(root, Preprocess(size=16, resize=20)).iter_batches(1)])
    assert a.shape == (6, 3, 16, 16) and np.array_equal(a, b)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="contains no images"):
        load_data(tmp_path / "empty")
    with pytest.raises(UsageError, match="does not exist"):
        load_data(tmp_path / "nope", what="--calib-data")


def test_npz_with_labels_npy_and_pickle_refusal(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5))
    ds = load_data(tmp_path / "d.npz")
    assert ds.has_labels and len(ds) == 5
    np.testing.assert_array_equal(next(ds.iter_batches(5))[0], x)
    np.save(tmp_path / "d.npy", x)
    assert len(load_data(tmp_path / "d.npy")) == 5
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="unpickling"):
        load_data(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", x=x, y=np.array([{"a": 1}] * 5, dtype=object))
    with pytest.raises(UsageError, match=r"obj.npz array 'y' cannot be read without unpickling"):
        load_data(tmp_path / "obj.npz")
    np.save(tmp_path / "flat.npy", np.zeros((3, 4)))
    with pytest.raises(UsageError, match=r"expected \(N, C, H, W\)"):
        load_data(tmp_path / "flat.npy")


def test_subset_is_reproducible_and_keeps_order() -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1)
    a = load_data(x, limit=10, seed=1)
    b = load_data(x, limit=10, seed=1)
    c = load_data(x, limit=10, seed=2)
    va, vb, vc = (next(d.iter_batches(10))[0].ravel() for d in (a, b, c))
    assert np.array_equal(va, vb) and not np.array_equal(va, vc)
    assert np.all(np.diff(va) > 0)


def test_iterables_and_dataloaders() -> None:
    x = torch.randn(6, 3, 4, 4)
    y = torch.arange(6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    ds = load_data(loader)
    assert len(ds) == 6 and ds.labels.tolist() == list(range(6))
    np.testing.assert_allclose(next(ds.iter_batches(6))[0], x.numpy())
    assert len(load_data([np.zeros((3, 4, 4))] * 3)) == 3


def test_a_flat_folder_has_no_labels_and_hidden_or_empty_class_folders_are_skipped(
    tmp_path: Path, image_folder
) -> None:
    root = image_folder("imgs", classes=2, per_class=2)
    (root / "empty_class").mkdir()
    (root / ".cache").mkdir()
    ds = load_data(root, Preprocess(size=8, resize=None))
    assert ds.classes == ["class_0", "class_1"] and ds.labels.tolist() == [0, 0, 1, 1]
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((root / "class_1").iterdir()):
        p.rename(flat / p.name)
    ds = load_data(flat, "raw")
    assert len(ds) == 2 and not ds.has_labels and ds.sample_shape == (3, 40, 48)


def test_one_image_file_arrays_and_unknown_sources(tmp_path: Path, image_folder) -> None:
    one = next((image_folder("imgs", classes=1, per_class=1) / "class_0").iterdir())
    assert len(load_data(one)) == 1
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        UsageError, match="--calib-data .*notes.txt is neither an image folder nor a .npy/.npz file"
    ):
        load_data(tmp_path / "notes.txt", what="--calib-data")
    with pytest.raises(UsageError, match=r"--eval-data: array of shape \(3, 4\); expected \(N, C, H, W\)"):
        load_data(np.zeros((3, 4)), what="--eval-data")
    with pytest.raises(UsageError, match="unsupported data source of type int"):
        load_data(3)
    with pytest.raises(UsageError, match="unknown preprocessing preset 'cifar'"):
        load_data(np.zeros((1, 3, 2, 2)), "cifar")
    with pytest.raises(UsageError, match="data yielded no samples"):
        load_data([])


def test_npz_keys_labels_and_inconsistent_files(tmp_path: Path) -> None:
    x = np.zeros((4, 1, 2, 2), np.float32)
    np.savez(tmp_path / "images.npz", images=x, labels=np.arange(4))
    assert load_data(tmp_path / "images.npz").labels.tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "two.npz", a=x, b=x)
    two = load_data(tmp_path / "two.npz")  # several arrays: one per model input, fed by name
    assert two.is_named and two.input_names == ["a", "b"] and two.labels is None
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(3))
    with pytest.raises(UsageError, match="3 labels for 4 samples"):
        load_data(tmp_path / "bad.npz")
    np.save(tmp_path / "none.npy", np.zeros((0, 1, 2, 2), np.float32))
    with pytest.raises(UsageError, match="holds no samples"):
        load_data(tmp_path / "none.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UsageError, match="junk.npz is not a readable .npy/.npz file"):
        load_data(tmp_path / "junk.npz")


def test_a_truncated_npy_is_called_unreadable_not_pickled(tmp_path: Path) -> None:
    np.save(tmp_path / "cut.npy", np.zeros((4, 1, 2, 2), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:100])
    with pytest.raises(UsageError, match="cut.npy is not a readable .npy/.npz file"):
        load_data(tmp_path / "cut.npy")
