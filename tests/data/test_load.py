"""Data sources: folders (labels from sub-folders), arrays, iterables, preprocessing, subsets, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_image_folder
from trtq.data import PRESETS, Preprocess, load_data
from trtq.errors import UsageError


def test_class_subfolders_give_sorted_labels_and_deterministic_order(tmp_path: Path) -> None:
    make_image_folder(tmp_path, classes=3, per_class=2)
    ds = load_data(tmp_path, Preprocess(size=16, resize=20))
    assert ds.classes == ["class_0", "class_1", "class_2"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    a = np.concatenate([x for x, _ in ds.iter_batches(4)])
    b = np.concatenate([x for x, _ in load_data(tmp_path, Preprocess(size=16, resize=20)).iter_batches(1)])
    assert a.shape == (6, 3, 16, 16) and np.array_equal(a, b)


def test_imagenet_preset_matches_torchvision_transforms(tmp_path: Path) -> None:
    from torchvision import transforms as T

    make_image_folder(tmp_path, classes=1, per_class=1, size=300)
    path = next(tmp_path.rglob("*.png"))
    ours = next(load_data(tmp_path, "imagenet").iter_batches(1))[0][0]
    ref = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(PRESETS["imagenet"].mean, PRESETS["imagenet"].std),
        ]
    )
    theirs = ref(Image.open(path).convert("RGB")).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224)
    # PIL bilinear resampling in both; allow a couple of grey levels of rounding difference
    assert np.abs(ours - theirs).max() < 3 / 255 / 0.224


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grey_and_rgba_images_are_converted_to_rgb(tmp_path: Path, mode: str) -> None:
    make_image_folder(tmp_path, classes=1, per_class=2, mode=mode)
    x, _ = next(load_data(tmp_path, Preprocess(size=8, resize=None)).iter_batches(2))
    assert x.shape == (2, 3, 8, 8)
    if mode == "L":
        assert np.allclose(x[:, 0] * 0.229 + 0.485, x[:, 1] * 0.224 + 0.456, atol=1e-5)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    make_image_folder(tmp_path, classes=1, per_class=1)
    bad = tmp_path / "class_0" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    ds = load_data(tmp_path)
    with pytest.raises(UsageError, match="broken.jpg"):
        list(ds.iter_batches(8))


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
    np.save(tmp_path / "flat.npy", np.zeros((3, 4)))
    with pytest.raises(UsageError, match=r"expected \(N, C, H, W\)"):
        load_data(tmp_path / "flat.npy")


def test_nan_in_data_is_reported() -> None:
    x = np.zeros((4, 1, 2, 2), np.float32)
    x[2, 0, 1, 1] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        list(load_data(x).iter_batches(2))


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
