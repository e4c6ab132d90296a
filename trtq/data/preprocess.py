"""Preprocessing: how an image file becomes a model input (resize, crop, scale, normalise), and presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtq.errors import UsageError

__all__ = [
    "Preprocess",
    "PRESETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "resolve_preprocess",
    "load_image",
    "load_mask",
    "valid_mask",
    "geometry",
    "image_size",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a model input.

    Args:
        size: final (centre-cropped) side length, or None to keep the image size.
        resize: shorter side is resized to this before cropping; None resizes straight to `size`.
        mean, std: per-channel normalisation applied after scaling pixels to [0, 1].
        channels: 3 (RGB) or 1 (grey).
        interpolation: how images are resized: "bilinear" (torchvision's default), "bicubic" (most timm
            models) or "nearest".
        letterbox: keep the aspect ratio: resize the longer side to `size` and pad to a `size` square, centred,
            with `pad_value` (the `yolo` preset; `resize` is ignored). The per-image scale and padding are
            recorded (`geometry`), so boxes map back to the original image.
        pad_value: the letterbox padding, in pixel values 0-255 (114, Ultralytics' grey).
    """

    size: int | None = 224
    resize: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    interpolation: str = "bilinear"
    letterbox: bool = False
    pad_value: int = 114

    def to_json(self) -> dict[str, Any]:
        doc = {
            "size": self.size,
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
            "interpolation": self.interpolation,
        }
        if self.letterbox:  # recorded only where used, so earlier runs' records read the same
            doc.update(letterbox=True, pad_value=self.pad_value)
        return doc

    def with_overrides(self, **kw: Any) -> Preprocess:
        kw = {k: v for k, v in kw.items() if v is not None}
        for key in ("mean", "std"):
            if key in kw:
                kw[key] = tuple(float(v) for v in kw[key])
        p = replace(self, **kw)
        if p.channels not in (1, 3):
            raise UsageError(f"--channels must be 1 or 3, not {p.channels}")
        for key in ("mean", "std"):
            vals = getattr(p, key)
            if len(vals) == 1 and p.channels == 3:
                p = replace(p, **{key: vals * 3})
            elif len(getattr(p, key)) != p.channels:
                raise UsageError(f"--{key} has {len(vals)} values but images have {p.channels} channels")
        if any(s == 0 for s in p.std):
            raise UsageError("--std values must be non-zero")
        if p.interpolation not in _RESAMPLE:
            raise UsageError(f"interpolation {p.interpolation!r}: choose from {', '.join(_RESAMPLE)}")
        return p


#: interpolation name -> PIL resampling filter name
_RESAMPLE = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST"}

PRESETS: dict[str, Preprocess] = {
    "imagenet": Preprocess(),
    "raw": Preprocess(size=None, resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    # Ultralytics: letterbox to 640 with grey 114, RGB / 255, no normalisation
    "yolo": Preprocess(size=640, resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), letterbox=True),
}


def resolve_preprocess(
    preprocess: Preprocess | str | dict[str, Any] | None, channels: int | None
) -> Preprocess:
    """The preprocessing to use: a Preprocess, a preset name, a dict of fields, or None (imagenet).

    `channels` is what the model takes in dim 1 (None when unknown): for 1 or 3 it overrides the preset's channel
    count (grey models get the mean of the RGB statistics); other counts mean array data, left alone.
    """
    if preprocess is None:
        preprocess = PRESETS["imagenet"]
    elif isinstance(preprocess, str):
        if preprocess not in PRESETS:
            raise UsageError(f"unknown --preset {preprocess!r}; choose from {', '.join(PRESETS)}")
        preprocess = PRESETS[preprocess]
    elif isinstance(preprocess, dict):
        preprocess = Preprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in preprocess.items()})
    if channels in (1, 3) and channels != preprocess.channels:
        mean, std = preprocess.mean, preprocess.std
        if channels == 1 and len(mean) == 3:
            mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
        preprocess = preprocess.with_overrides(channels=channels, mean=mean, std=std)
    return preprocess


def load_image(path: Path, pre: Preprocess | None) -> np.ndarray:
    """Decode, resize, crop and normalise one image into a float32 (C, H, W) array; UsageError naming a bad file."""
    from PIL import Image, UnidentifiedImageError

    pre = pre or PRESETS["imagenet"]
    resample = getattr(Image, _RESAMPLE.get(pre.interpolation, "BILINEAR"))
    try:
        with Image.open(path) as im:
            im.load()
            img = _to_mode(im, pre.channels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UsageError(
            f"cannot read image {path} ({type(e).__name__}); remove or replace the file"
        ) from None
    img, _ = _apply(img, pre, resample, _fill(pre))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = (arr - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _to_mode(im: Any, channels: int) -> Any:
    from PIL import Image

    if channels == 1:
        return im.convert("L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        bg = Image.new("RGB", im.size, (0, 0, 0))
        rgba = im.convert("RGBA")
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB")


def _fill(pre: Preprocess) -> Any:
    v = int(pre.pad_value)
    return v if pre.channels == 1 else (v, v, v)


def _plan(width: int, height: int, pre: Preprocess) -> dict[str, Any]:
    """How an image of this size becomes the model input: the resize, the crop or the padding, and the map
    (sx, sy, ox, oy) from original to input pixels. One computation for images, masks and boxes."""
    w, h = int(width), int(height)
    if pre.size is None:
        return {"transform": (1.0, 1.0, 0.0, 0.0)}
    if pre.letterbox:
        r = min(pre.size / w, pre.size / h)
        nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
        left, top = (pre.size - nw) // 2, (pre.size - nh) // 2
        return {
            "resize": (nw, nh),
            "paste": (left, top),
            "transform": (nw / w, nh / h, float(left), float(top)),
        }
    if pre.resize is not None:
        # same arithmetic as torchvision's Resize(int) + CenterCrop, so accuracy numbers carry over
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(pre.resize * long / short)
        rw, rh = (pre.resize, new_long) if w <= h else (new_long, pre.resize)
        left, top = int(round((rw - pre.size) / 2.0)), int(round((rh - pre.size) / 2.0))
        if left < 0 or top < 0:
            raise UsageError(f"--resize {pre.resize} is smaller than --size {pre.size}")
        return {
            "resize": (rw, rh),
            "crop": (left, top, left + pre.size, top + pre.size),
            "transform": (rw / w, rh / h, -float(left), -float(top)),
        }
    return {"resize": (pre.size, pre.size), "transform": (pre.size / w, pre.size / h, 0.0, 0.0)}


def geometry(width: int, height: int, pre: Preprocess | None) -> tuple[float, float, float, float]:
    """(sx, sy, ox, oy): an original pixel (x, y) lands at (x * sx + ox, y * sy + oy) in the model input."""
    return _plan(width, height, pre or PRESETS["imagenet"])["transform"]


def _apply(img: Any, pre: Preprocess, resample: Any, fill: Any) -> tuple[Any, tuple[float, ...]]:
    from PIL import Image

    plan = _plan(img.size[0], img.size[1], pre)
    if "resize" in plan and plan["resize"] != img.size:
        img = img.resize(plan["resize"], resample)
    if "crop" in plan:
        img = img.crop(plan["crop"])
    if "paste" in plan:
        canvas = Image.new(img.mode, (pre.size, pre.size), fill)
        canvas.paste(img, plan["paste"])
        img = canvas
    return img, plan["transform"]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header; UsageError naming a bad file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UsageError(
            f"cannot read image {path} ({type(e).__name__}); remove or replace the file"
        ) from None


def load_mask(path: Path, pre: Preprocess | None, size: tuple[int, int] | None = None) -> np.ndarray:
    """A label image (class id per pixel, 255 = ignore) through the images' geometry, nearest-neighbour,
    padding 255: (H, W) uint8. `size` is the (width, height) its image has (a mismatch is a UsageError)."""
    from PIL import Image, UnidentifiedImageError

    pre = pre or PRESETS["imagenet"]
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                raise UsageError(
                    f"label image {path} is {im.mode}; save one class id per pixel (mode L or P, 255 = ignore)"
                )
            values = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UsageError(
            f"cannot read label image {path} ({type(e).__name__}); remove or replace the file"
        ) from None
    if values.size and int(values.max()) > 255:
        raise UsageError(
            f"label image {path} holds class id {int(values.max())}; class ids are 0-254 (255 = ignore)"
        )
    mask = Image.fromarray(values.astype(np.uint8))
    if size is not None and tuple(mask.size) != tuple(size):
        raise UsageError(
            f"label image {path} is {mask.size[0]}x{mask.size[1]} but its image is {size[0]}x{size[1]}; "
            "a mask has one class id per image pixel"
        )
    mask, _ = _apply(mask, pre, Image.NEAREST, 255)
    return np.asarray(mask, dtype=np.uint8)


def valid_mask(width: int, height: int, pre: Preprocess | None) -> np.ndarray:
    """(H, W) uint8 at the model input: 0 where the image lands, 255 in the letterbox padding."""
    from PIL import Image

    pre = pre or PRESETS["imagenet"]
    mask, _ = _apply(Image.new("L", (int(width), int(height)), 0), pre, Image.NEAREST, 255)
    return np.asarray(mask, dtype=np.uint8)
