"""Calibration and evaluation data: folders of images, .npy/.npz arrays, iterables and DataLoaders.

Every source becomes a `DataSource`: a fixed, deterministic list of samples that yields float32 NCHW
batches (and integer labels when the source has them). Images are decoded lazily, batch by batch, so
memory does not grow with the number of samples.

Folders: flat (no labels) or one sub-folder per class (labels = sorted class names, as torchvision's
ImageFolder). Grey, palette and RGBA images are converted to the channel count the model wants, since
that is what users expect; an unreadable file is an error that names it.
Arrays: `.npy` (N, C, H, W), or `.npz` with one array, or `x`/`images`/`data` plus optional
`y`/`labels`. Arrays are taken as already preprocessed. Pickled arrays are refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtq.errors import UsageError

__all__ = ["Preprocess", "PRESETS", "DataSource", "load_data", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}
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
    """

    size: int | None = 224
    resize: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
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
        return p


PRESETS: dict[str, Preprocess] = {
    "imagenet": Preprocess(),
    "raw": Preprocess(size=None, resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
}


@dataclass
class DataSource:
    """A deterministic list of samples that yields float32 NCHW batches."""

    name: str
    _files: list[Path] = field(default_factory=list)
    _array: np.ndarray | None = None
    labels: np.ndarray | None = None
    classes: list[str] | None = None
    preprocess: Preprocess | None = None

    def __len__(self) -> int:
        return len(self._files) if self._array is None else int(self._array.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one sample (decodes the first image for folders)."""
        first, _ = next(self.iter_batches(1))
        return tuple(first.shape[1:])

    def iter_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, not {batch_size}")
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if self._array is not None:
                x = np.ascontiguousarray(self._array[start:stop], dtype=np.float32)
            else:
                x = np.stack([_load_image(p, self.preprocess) for p in self._files[start:stop]])
            if not np.all(np.isfinite(x)):
                raise UsageError(f"{self.name}: samples {start}..{stop - 1} contain NaN or Inf values")
            y = None if self.labels is None else self.labels[start:stop]
            yield x, y

    def num_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def feeds(self, input_name: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts for a runner: {input_name: batch}."""
        for x, _ in self.iter_batches(batch_size):
            yield {input_name: x}

    def subset(self, limit: int | None, seed: int = 0) -> DataSource:
        """A reproducible subset of `limit` samples (kept in their original order)."""
        if limit is None or limit >= len(self):
            return self
        if limit < 1:
            raise UsageError(f"sample count must be >= 1, not {limit}")
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))
        return DataSource(
            name=self.name,
            _files=[self._files[i] for i in idx] if self._array is None else [],
            _array=None if self._array is None else self._array[idx],
            labels=None if self.labels is None else self.labels[idx],
            classes=self.classes,
            preprocess=self.preprocess,
        )


def _load_image(path: Path, pre: Preprocess | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    pre = pre or PRESETS["imagenet"]
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
            img = img.resize((pre.resize, new_long) if w <= h else (new_long, pre.resize), Image.BILINEAR)
            w, h = img.size
            left, top = int(round((w - pre.size) / 2.0)), int(round((h - pre.size) / 2.0))
            if left < 0 or top < 0:
                raise UsageError(f"--resize {pre.resize} is smaller than --size {pre.size}")
            img = img.crop((left, top, left + pre.size, top + pre.size))
        else:
            img = img.resize((pre.size, pre.size), Image.BILINEAR)
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


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _from_folder(folder: Path, pre: Preprocess) -> DataSource:
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    flat = _list_images(folder)
    if subdirs and not flat:
        classes, files, labels = [], [], []
        for d in subdirs:
            imgs = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not imgs:
                continue
            classes.append(d.name)
            files += imgs
            labels += [len(classes) - 1] * len(imgs)
        if not files:
            raise UsageError(f"data folder {folder} has sub-folders but no images in them ({_ext_hint()})")
        return DataSource(
            name=str(folder),
            _files=files,
            labels=np.asarray(labels, np.int64),
            classes=classes,
            preprocess=pre,
        )
    if not flat:
        raise UsageError(f"data folder {folder} contains no images ({_ext_hint()})")
    return DataSource(name=str(folder), _files=flat, preprocess=pre)


def _ext_hint() -> str:
    return "looked for " + ", ".join(sorted(IMAGE_EXTENSIONS))


def _from_arrays(path: Path) -> DataSource:
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise UsageError(
            f"{path} cannot be read without unpickling ({e}); save plain numeric arrays"
        ) from None
    except Exception as e:
        raise UsageError(f"{path} is not a readable .npy/.npz file ({type(e).__name__})") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            xkey = next(
                (k for k in ("x", "images", "data", "input") if k in keys),
                keys[0] if len(keys) == 1 else None,
            )
            if xkey is None:
                raise UsageError(f"{path} has arrays {keys}; name the samples 'x' (and labels 'y')")
            x = loaded[xkey]
            ykey = next((k for k in ("y", "labels", "label") if k in keys), None)
            labels = loaded[ykey].astype(np.int64) if ykey else None
    else:
        x = loaded
    if x.ndim != 4:
        raise UsageError(f"{path} holds an array of shape {x.shape}; expected (N, C, H, W)")
    if not np.issubdtype(x.dtype, np.number):
        raise UsageError(f"{path} holds {x.dtype} values; expected numbers")
    if labels is not None and len(labels) != len(x):
        raise UsageError(f"{path}: {len(labels)} labels for {len(x)} samples")
    if len(x) == 0:
        raise UsageError(f"{path} holds no samples")
    return DataSource(name=str(path), _array=x, labels=labels)


def _from_iterable(items: Iterable[Any], name: str) -> DataSource:
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for item in items:
        label = None
        if isinstance(item, (tuple, list)) and len(item) == 2:
            item, label = item
        arr = _as_numpy(item)
        if arr.ndim == 3:
            arr = arr[None]
        xs.append(arr.astype(np.float32))
        if label is not None:
            ys.append(np.atleast_1d(_as_numpy(label)).astype(np.int64))
    if not xs:
        raise UsageError(f"{name} yielded no samples")
    x = np.concatenate(xs)
    labels = np.concatenate(ys) if ys and len(ys) == len(xs) else None
    return DataSource(name=name, _array=x, labels=labels)


def _as_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def load_data(
    source: str | os.PathLike | np.ndarray | Iterable[Any],
    preprocess: Preprocess | str | None = "imagenet",
    *,
    limit: int | None = None,
    seed: int = 0,
    what: str = "data",
) -> DataSource:
    """Open a calibration or evaluation source.

    Args:
        source: image folder, `.npy`/`.npz` file, an (N, C, H, W) array, or (API) any iterable of arrays /
            tensors / (input, label) pairs, including a torch DataLoader.
        preprocess: a Preprocess, a preset name ("imagenet", "raw"), or None for "imagenet"; folders only.
        limit: take a reproducible subset of this many samples.
        seed: seed of that subset.
        what: how to name the source in errors ("--calib-data", "--eval-data").
    """
    if isinstance(preprocess, str):
        if preprocess not in PRESETS:
            raise UsageError(f"unknown preprocessing preset {preprocess!r}; choose from {', '.join(PRESETS)}")
        preprocess = PRESETS[preprocess]
    pre = preprocess or PRESETS["imagenet"]
    if isinstance(source, np.ndarray):
        if source.ndim != 4:
            raise UsageError(f"{what}: array of shape {source.shape}; expected (N, C, H, W)")
        ds = DataSource(name=what, _array=source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise UsageError(f"{what} {path} does not exist")
        if path.is_dir():
            ds = _from_folder(path, pre)
        elif path.suffix.lower() in (".npy", ".npz"):
            ds = _from_arrays(path)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            ds = DataSource(name=str(path), _files=[path], preprocess=pre)
        else:
            raise UsageError(f"{what} {path} is neither an image folder nor a .npy/.npz file")
    elif isinstance(source, Iterable):
        ds = _from_iterable(source, what)
    else:
        raise UsageError(f"{what}: unsupported data source of type {type(source).__name__}")
    return ds.subset(limit, seed)
