"""Preprocessing: how an image file becomes a model input (resize, crop, scale, normalise), and presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtq.errors import UsageError

__all__ = ["Preprocess", "PRESETS", "IMAGENET_MEAN", "IMAGENET_STD", "resolve_preprocess", "load_image"]

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
    """

    size: int | None = 224
    resize: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    interpolation: str = "bilinear"

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
            "interpolation": self.interpolation,
        }

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
    if pre.size is not None:
        if pre.resize is not None:
            # same arithmetic as torchvision's Resize(int) + CenterCrop, so accuracy numbers carry over
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(pre.resize * long / short)
            img = img.resize((pre.resize, new_long) if w <= h else (new_long, pre.resize), resample)
            w, h = img.size
            left, top = int(round((w - pre.size) / 2.0)), int(round((h - pre.size) / 2.0))
            if left < 0 or top < 0:
                raise UsageError(f"--resize {pre.resize} is smaller than --size {pre.size}")
            img = img.crop((left, top, left + pre.size, top + pre.size))
        else:
            img = img.resize((pre.size, pre.size), resample)
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
