"""Opening calibration and evaluation data: image folders, .npy/.npz arrays, iterables and DataLoaders.

Folders: flat (no labels) or one sub-folder per class (labels = sorted class names, as torchvision's
ImageFolder). Grey, palette and RGBA images are converted to the channel count the model wants, since that is
what users expect; an unreadable file is an error that names it.
Arrays: `.npy` (N, C, H, W), or `.npz` with one array, or `x`/`images`/`data` plus optional `y`/`labels`.
Arrays are taken as already preprocessed. Pickled arrays are refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trtq.data.named import (
    LABEL_KEYS,
    SINGLE_INPUT_KEYS,
    is_named_layout,
    named_from_arrays,
    named_from_dicts,
    named_from_shards,
)
from trtq.data.preprocess import PRESETS, Preprocess
from trtq.data.source import DataSource
from trtq.data.targets import ClassLabels
from trtq.errors import UsageError

__all__ = ["load_data", "read_npz", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}


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
            files=files,
            targets=ClassLabels(np.asarray(labels, np.int64), tuple(classes)),
            preprocess=pre,
        )
    if not flat:
        raise UsageError(f"data folder {folder} contains no images ({_ext_hint()})")
    return DataSource(name=str(folder), files=flat, preprocess=pre)


def _ext_hint() -> str:
    return "looked for " + ", ".join(sorted(IMAGE_EXTENSIONS))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz (or the one array of an .npy under the key ""), without unpickling."""
    loaded = _open_arrays(path)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {k: _member(loaded, k, path) for k in loaded.keys()}
    return {"": loaded}


def _open_arrays(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):  # numpy's refusal of pickled (object) data
            raise UsageError(
                f"{path} cannot be read without unpickling ({e}); save plain numeric arrays"
            ) from None
        raise UsageError(f"{path} is not a readable .npy/.npz file ({e})") from None
    except Exception as e:
        raise UsageError(f"{path} is not a readable .npy/.npz file ({type(e).__name__})") from None


def _member(loaded: Any, key: str, path: Path) -> np.ndarray:
    """One array of an .npz; an object (pickled) member is refused the way a pickled .npy is."""
    try:
        return loaded[key]
    except ValueError as e:
        raise UsageError(
            f"{path} array {key!r} cannot be read without unpickling ({e}); save plain numeric arrays"
        ) from None


def _one_token_array(loaded: Any, keys: list[str], path: Path) -> bool:
    """One named integer [N, sequence] array (token ids): a named input, not an image batch."""
    inputs = [k for k in keys if k not in LABEL_KEYS]
    if len(inputs) != 1 or inputs[0] in SINGLE_INPUT_KEYS or inputs[0].startswith("arr_"):
        return False
    a = _member(loaded, inputs[0], path)
    return a.ndim == 2 and np.issubdtype(a.dtype, np.integer)


def _from_arrays(path: Path, input_names: Sequence[str] | None = None) -> DataSource:
    loaded = _open_arrays(path)
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if is_named_layout(keys, input_names) or _one_token_array(loaded, keys, path):
                return named_from_arrays({k: _member(loaded, k, path) for k in keys}, input_names, str(path))
            xkey = next(
                (k for k in ("x", "images", "data", "input") if k in keys),
                keys[0] if len(keys) == 1 else None,
            )
            if xkey is None:  # pragma: no cover - is_named_layout takes every other layout
                raise UsageError(f"{path} has arrays {keys}; name the samples 'x' (and labels 'y')")
            x = _member(loaded, xkey, path)
            ykey = next((k for k in ("y", "labels", "label") if k in keys), None)
            labels = _member(loaded, ykey, path).astype(np.int64) if ykey else None
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
    return DataSource(name=str(path), array=x, targets=None if labels is None else ClassLabels(labels),
                      raw_dtype=x.dtype)  # fmt: skip


def _from_iterable(items: Iterable[Any], name: str, input_names: Sequence[str] | None = None) -> DataSource:
    items = iter(items)
    first = next(items, None)
    if first is None:
        raise UsageError(f"{name} yielded no samples")
    multi = input_names is not None and len(input_names) > 1
    if isinstance(first, Mapping) or (
        multi and isinstance(first, (tuple, list)) and len(first) >= len(input_names)
    ):
        import itertools

        return named_from_dicts(itertools.chain([first], items), input_names, name)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    import itertools

    for item in itertools.chain([first], items):
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
    return DataSource(name=name, array=x, targets=None if labels is None else ClassLabels(labels))


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
    input_names: Sequence[str] | None = None,
) -> DataSource:
    """Open a calibration or evaluation source.

    Args:
        source: image folder, `.npy`/`.npz` file, a folder of `.npz` shards, an (N, C, H, W) array, a dict of arrays
            (one per model input), or (API) any iterable of arrays / tensors / (input, label) pairs / dicts of
            named inputs / tuples in input order, including a torch DataLoader.
        preprocess: a Preprocess, a preset name ("imagenet", "raw"), or None for "imagenet"; folders only.
        limit: take a reproducible subset of this many samples.
        seed: seed of that subset.
        what: how to name the source in errors ("--calib-data", "--eval-data").
        input_names: the model's inputs, when known: an .npz whose arrays carry those names feeds them by name.
    """
    if isinstance(preprocess, str):
        if preprocess not in PRESETS:
            raise UsageError(f"unknown preprocessing preset {preprocess!r}; choose from {', '.join(PRESETS)}")
        preprocess = PRESETS[preprocess]
    pre = preprocess or PRESETS["imagenet"]
    if isinstance(source, Mapping):
        ds = named_from_arrays({str(k): np.asarray(v) for k, v in source.items()}, input_names, what)
    elif isinstance(source, np.ndarray):
        if source.ndim != 4:
            raise UsageError(f"{what}: array of shape {source.shape}; expected (N, C, H, W)")
        ds = DataSource(name=what, array=source, raw_dtype=source.dtype)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise UsageError(f"{what} {path} does not exist")
        if path.is_dir() and _only_npz(path):
            ds = named_from_shards(path, input_names)
        elif path.is_dir():
            ds = _from_folder(path, pre)
        elif path.suffix.lower() in (".npy", ".npz"):
            ds = _from_arrays(path, input_names)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            ds = DataSource(name=str(path), files=[path], preprocess=pre)
        else:
            raise UsageError(f"{what} {path} is neither an image folder nor a .npy/.npz file")
    elif isinstance(source, Iterable):
        ds = _from_iterable(source, what, input_names)
    else:
        raise UsageError(f"{what}: unsupported data source of type {type(source).__name__}")
    return ds.subset(limit, seed)


def _only_npz(folder: Path) -> bool:
    """A folder of .npz shards (and nothing else but hidden files): one named source."""
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return bool(files) and all(p.is_file() and p.suffix.lower() == ".npz" for p in files)
