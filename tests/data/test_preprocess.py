"""Preprocessing: torchvision's ImageNet transform reproduced, grey/RGBA conversion, presets, overrides, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtq.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    Preprocess,
    load_data,
    load_image,
    resolve_preprocess,
)
from trtq.errors import UsageError


def test_imagenet_preset_matches_torchvision_transforms(image_folder) -> None:
    from torchvision import transforms as T

    root = image_folder("data", classes=1, per_class=1, size=300)
    path = next(root.rglob("*.png"))
    ours = next(load_data(root, "imagenet").iter_batches(1))[0][0]
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
def test_grey_and_rgba_images_are_converted_to_rgb(mode: str, image_folder) -> None:
    root = image_folder("data", classes=1, per_class=2, mode=mode)
    x, _ = next(load_data(root, Preprocess(size=8, resize=None)).iter_batches(2))
    assert x.shape == (2, 3, 8, 8)
    if mode == "L":
        assert np.allclose(x[:, 0] * 0.229 + 0.485, x[:, 1] * 0.224 + 0.456, atol=1e-5)


def test_unreadable_image_is_named(image_folder) -> None:
    root = image_folder("data", classes=1, per_class=1)
    bad = root / "class_0" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    ds = load_data(root)
    with pytest.raises(UsageError, match="broken.jpg"):
        list(ds.iter_batches(8))


def test_overrides_broadcast_one_value_and_refuse_mismatches():
    grey = PRESETS["imagenet"].with_overrides(channels=1, mean=[0.5], std=[0.5])
    assert (grey.channels, grey.mean, grey.std) == (1, (0.5,), (0.5,))
    assert Preprocess().with_overrides(mean=[0.5], std=[0.25]).mean == (
        0.5,
        0.5,
        0.5,
    )  # one value for 3 channels
    assert Preprocess().with_overrides(size=None) == Preprocess()  # None means "not given"
    with pytest.raises(UsageError, match="--channels must be 1 or 3, not 2"):
        Preprocess().with_overrides(channels=2)
    with pytest.raises(UsageError, match="--mean has 2 values but images have 3 channels"):
        Preprocess().with_overrides(mean=[0.1, 0.2])
    with pytest.raises(UsageError, match="--std values must be non-zero"):
        Preprocess().with_overrides(std=[0.0])
    assert Preprocess().to_json() == {"size": 224, "resize": 256, "mean": list(IMAGENET_MEAN),
                                      "std": list(IMAGENET_STD), "channels": 3, "interpolation": "bilinear"}  # fmt: skip


def test_resolve_from_none_preset_dict_and_the_models_channels():
    assert resolve_preprocess(None, None) == PRESETS["imagenet"]
    assert resolve_preprocess("raw", None) == PRESETS["raw"]
    assert resolve_preprocess(
        {"size": 8, "resize": None, "mean": [0.5], "std": [0.5], "channels": 1}, 1
    ) == Preprocess(size=8, resize=None, mean=(0.5,), std=(0.5,), channels=1)
    grey = resolve_preprocess(None, 1)  # a grey model: the mean of the RGB statistics
    assert grey.channels == 1 and grey.mean == pytest.approx((np.mean(IMAGENET_MEAN),))
    assert resolve_preprocess(None, 7) == PRESETS["imagenet"]  # not an image channel count: left alone
    with pytest.raises(UsageError, match="unknown --preset 'cifar'; choose from imagenet, raw"):
        resolve_preprocess("cifar", None)


def test_resize_then_centre_crop_and_raw_pixels(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 10:30] = 255  # a white band in the centre 20 columns
    Image.fromarray(arr).save(tmp_path / "band.png")
    x = load_image(tmp_path / "band.png", Preprocess(size=10, resize=10, mean=(0, 0, 0), std=(1, 1, 1)))
    assert x.shape == (3, 10, 10) and x.dtype == np.float32
    assert x[:, :, 1:-1].min() > 0.99  # the centre crop of a 10x20 resize is the band
    raw = load_image(tmp_path / "band.png", PRESETS["raw"])
    assert raw.shape == (3, 20, 40) and raw.max() == 1.0 and raw.min() == 0.0
    with pytest.raises(UsageError, match="--resize 5 is smaller than --size 10"):
        load_image(tmp_path / "band.png", Preprocess(size=10, resize=5))


def _ultralytics_letterbox(img: Image.Image, size: int) -> np.ndarray:
    """Ultralytics' LetterBox arithmetic (centre, pad split with round(d -/+ 0.1)), resized with PIL here."""
    w, h = img.size
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[top : top + nh, left : left + nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    return canvas.astype(np.float32).transpose(2, 0, 1) / 255.0


@pytest.mark.parametrize("wh", [(48, 32), (31, 64), (40, 40), (17, 33)])
def test_yolo_letterbox_keeps_aspect_pads_grey_and_maps_boxes_back(tmp_path: Path, wh) -> None:
    from trtq.data import geometry

    w, h = wh
    rng = np.random.default_rng(0)
    p = tmp_path / "i.png"
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
    pre = Preprocess(**{**PRESETS["yolo"].to_json(), "size": 32})
    got = load_image(p, pre)
    assert got.shape == (3, 32, 32)
    assert got == pytest.approx(_ultralytics_letterbox(Image.open(p).convert("RGB"), 32), abs=1e-6)
    sx, sy, ox, oy = geometry(w, h, pre)
    assert sx == pytest.approx(sy, rel=0.05)  # the aspect kept (up to rounding to whole pixels)
    corners = np.array([[0, 0], [w, h]], np.float64)
    mapped = corners * [sx, sy] + [ox, oy]
    assert mapped.min() >= 0 and mapped.max() <= 32 and 32 in np.round(mapped[1], 6)  # the long side fills
    back = (mapped - [ox, oy]) / [sx, sy]
    assert back == pytest.approx(corners)
    assert (
        PRESETS["yolo"].size == 640 and PRESETS["yolo"].mean == (0.0, 0.0, 0.0) and PRESETS["yolo"].letterbox
    )


def test_geometry_matches_the_resize_and_crop_of_every_preset() -> None:
    from trtq.data import geometry

    sx, sy, ox, oy = geometry(300, 200, PRESETS["imagenet"])  # shorter side 256, crop 224 centred
    assert (sx, sy) == pytest.approx((384 / 300, 256 / 200)) and (ox, oy) == (-80.0, -16.0)
    assert geometry(300, 200, PRESETS["raw"]) == (1.0, 1.0, 0.0, 0.0)
    assert geometry(300, 200, Preprocess(size=100, resize=None)) == pytest.approx((1 / 3, 0.5, 0, 0))
