"""Detection and segmentation data: a folder of images with COCO, YOLO or PNG-mask labels.

Images are the folder's image files, or those of its `images/` sub-folder (Ultralytics' layout). Labels, unless
`--labels PATH` names them, are found beside the images, in this order:

- COCO: `instances.json` or `annotations.json` in the folder (or one `annotations/*.json`): images by
  `file_name`, boxes `[x, y, w, h]` in pixels, categories sorted by id give the class index 0, 1, ...;
- YOLO: `labels/STEM.txt` (or `STEM.txt` beside each image): `class cx cy w h` per line, normalised to [0, 1];
  an image without a file has no objects; `classes.txt` (one name per line) names the classes;
- segmentation: `masks/STEM.png`, one class id per pixel, 255 = ignore.

No labels: the samples are unlabelled and FP32's predictions are the reference. Boxes are checked against the
image (a box outside it, a label for an image that is not there, a malformed line: one line naming the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trtq.data.preprocess import Preprocess, geometry, image_size, load_mask, valid_mask
from trtq.data.source import DataSource
from trtq.data.targets import DetectionTargets, SegmentationTargets
from trtq.errors import UsageError

__all__ = [
    "load_detection",
    "load_segmentation",
    "task_source",
    "image_files",
    "find_labels",
    "BOX_TOLERANCE",
]

#: How far (pixels, or the same share of a normalised coordinate) a box may pass the image edge (rounding).
BOX_TOLERANCE = 1.0
_COCO_NAMES = ("instances.json", "annotations.json")


def image_files(folder: Path, what: str = "data folder") -> list[Path]:
    """The images of a detection folder: its `images/` sub-folder's when it has one, else its own."""
    from trtq.data.load import IMAGE_EXTENSIONS

    root = folder / "images" if (folder / "images").is_dir() else folder
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UsageError(f"{what} {folder} contains no images (looked in {root})")
    return files


def find_labels(folder: Path, files: list[Path], segment: bool = False) -> Path | None:
    """Where a folder's labels are (a COCO .json, a folder of .txt or of masks), or None."""
    root = files[0].parent
    if segment:
        for cand in (folder / "masks", root.parent / "masks", folder / "labels"):
            if cand.is_dir() and any(cand.glob("*.png")):
                return cand
        return None
    for name in _COCO_NAMES:
        for base in (folder, root):
            if (base / name).is_file():
                return base / name
    ann = folder / "annotations"
    if ann.is_dir():
        found = sorted(ann.glob("*.json"))
        if len(found) == 1:
            return found[0]
        if found:
            raise UsageError(f"{ann} holds {len(found)} .json files; name one with --labels")
    for cand in (folder / "labels", root.parent / "labels"):
        if cand.is_dir() and any(cand.glob("*.txt")):
            return cand
    if any(p.suffix == ".txt" and p.name != "classes.txt" for p in root.iterdir()):
        return root
    return None


def _check_box(box: np.ndarray, w: int, h: int, where: str, tol: float) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    if not np.all(np.isfinite(box)) or x2 <= x1 or y2 <= y1:
        raise UsageError(f"{where}: box {_fmt(box)} is empty or not finite; give x2 > x1 and y2 > y1")
    if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
        raise UsageError(
            f"{where}: box {_fmt(box)} lies outside the {w}x{h} image; fix the label (boxes are in the image)"
        )


def _fmt(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in box) + "]"


def _coco(
    path: Path, files: list[Path]
) -> tuple[list[Path], list[np.ndarray], list[np.ndarray], tuple[str, ...]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"labels {path} is not a JSON file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or "annotations" not in doc:
        raise UsageError(f"labels {path} is not COCO instances JSON (needs images, annotations, categories)")
    cats = sorted(doc.get("categories") or [], key=lambda c: c["id"])
    index = {int(c["id"]): i for i, c in enumerate(cats)}
    names = tuple(str(c.get("name", c["id"])) for c in cats)
    by_name = {p.name: p for p in files}
    by_rel = {str(p.relative_to(files[0].parent)): p for p in files}
    images, boxes, classes = [], {}, {}
    for im in sorted(doc["images"], key=lambda i: str(i.get("file_name", ""))):
        name = str(im.get("file_name", ""))
        p = by_rel.get(name) or by_name.get(Path(name).name)
        if p is None:
            raise UsageError(
                f"labels {path} has image {name!r}, which is not in {files[0].parent}; remove its entry or add "
                "the image"
            )
        w, h = image_size(p)
        if ("width" in im and int(im["width"]) != w) or ("height" in im and int(im["height"]) != h):
            raise UsageError(
                f"labels {path}: image {name!r} is {w}x{h}, but the labels say {im.get('width')}x{im.get('height')}"
            )
        images.append((int(im["id"]), p, w, h))
        boxes[int(im["id"])], classes[int(im["id"])] = [], []
    sizes = {i: (w, h, p) for i, p, w, h in images}
    for a in doc["annotations"]:
        img = int(a.get("image_id", -1))
        if img not in sizes:
            raise UsageError(
                f"labels {path}: annotation {a.get('id')} is for image id {img}, which has no entry"
            )
        if a.get("iscrowd", 0):
            continue  # crowd regions are ignored by COCO evaluation; trtq does not score them
        cat = int(a.get("category_id", -1))
        if cat not in index:
            raise UsageError(
                f"labels {path}: annotation {a.get('id')} has category {cat}, which is not listed"
            )
        x, y, bw, bh = (float(v) for v in a["bbox"])
        box = np.asarray([x, y, x + bw, y + bh])
        w, h, p = sizes[img]
        _check_box(box, w, h, f"labels {path} (image {p.name}, annotation {a.get('id')})", BOX_TOLERANCE)
        boxes[img].append(box)
        classes[img].append(index[cat])
    return (
        [p for _, p, _, _ in images],
        [np.asarray(boxes[i], np.float64).reshape(-1, 4) for i, _, _, _ in images],
        [np.asarray(classes[i], np.int64) for i, _, _, _ in images],
        names,
    )


def _yolo(
    folder: Path, files: list[Path]
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[str, ...] | None]:
    stems = {p.stem: p for p in files}
    txts = sorted(p for p in folder.glob("*.txt") if p.name != "classes.txt")
    for t in txts:
        if t.stem not in stems:
            raise UsageError(
                f"labels {t} are for image {t.stem!r}, which is not in {files[0].parent}; remove the file or add "
                "the image"
            )
    names_file = folder / "classes.txt"
    names = (
        tuple(n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip())
        if names_file.is_file()
        else None
    )
    boxes, classes = [], []
    for p in files:
        t = folder / f"{p.stem}.txt"
        rows: list[list[float]] = []
        if t.is_file():
            for n, line in enumerate(t.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    vals = [float(v) for v in parts]
                except ValueError:
                    vals = []
                if len(vals) != 5 or vals[0] != int(vals[0]) or vals[0] < 0:
                    raise UsageError(
                        f"labels {t} line {n}: expected 'class cx cy w h' (class an integer >= 0)"
                    )
                rows.append(vals)
        w, h = image_size(p)
        arr = np.asarray(rows, np.float64).reshape(-1, 5)
        cx, cy, bw, bh = arr[:, 1] * w, arr[:, 2] * h, arr[:, 3] * w, arr[:, 4] * h
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        for n, box in enumerate(xyxy, 1):
            _check_box(box, w, h, f"labels {t} box {n}", BOX_TOLERANCE)
        boxes.append(xyxy)
        classes.append(arr[:, 0].astype(np.int64))
    return boxes, classes, names


def load_detection(
    folder: Path,
    pre: Preprocess,
    *,
    labels: str | Path | None = None,
    with_labels: bool = True,
    what: str = "data",
) -> DataSource:
    """A detection source: the folder's images, their boxes (when labelled) and each image's geometry."""
    files = image_files(folder, what)
    found = Path(labels) if labels is not None else find_labels(folder, files) if with_labels else None
    if found is not None and not found.exists():
        raise UsageError(f"--labels {found} does not exist")
    names = None
    if found is None:
        n = len(files)
        boxes, classes = [np.zeros((0, 4))] * n, [np.zeros(0, np.int64)] * n
    elif found.is_file():
        files, boxes, classes, names = _coco(found, files)
    else:
        boxes, classes, names = _yolo(found, files)
    sizes = [image_size(p) for p in files]
    targets = DetectionTargets(
        boxes=tuple(boxes), classes=tuple(classes), sizes=np.asarray([(h, w) for w, h in sizes]),
        transforms=np.asarray([geometry(w, h, pre) for w, h in sizes]), labelled=found is not None, names=names,
    )  # fmt: skip
    return DataSource(name=str(folder), files=files, targets=targets, preprocess=pre)


def load_segmentation(
    folder: Path,
    pre: Preprocess,
    *,
    labels: str | Path | None = None,
    with_labels: bool = True,
    what: str = "data",
) -> DataSource:
    """A segmentation source: the folder's images and their label images through the same geometry."""
    files = image_files(folder, what)
    found = Path(labels) if labels is not None else find_labels(folder, files, True) if with_labels else None
    if found is not None and not found.is_dir():
        raise UsageError(f"--labels {found}: give the folder of PNG label images (STEM.png per image)")
    if found is None:
        masks = [valid_mask(*image_size(p), pre) for p in files]
        if len({m.shape for m in masks}) != 1:
            raise UsageError(f"{folder}: images differ in size after preprocessing; give --size")
        return DataSource(
            str(folder), files=files, targets=SegmentationTargets(np.stack(masks), False), preprocess=pre
        )
    stems = {p.stem for p in files}
    pngs = sorted(found.glob("*.png"))
    for m in pngs:
        if m.stem not in stems:
            raise UsageError(f"label image {m} is for image {m.stem!r}, which is not in {files[0].parent}")
    out: list[np.ndarray] = []
    for p in files:
        m = found / f"{p.stem}.png"
        if not m.is_file():
            raise UsageError(f"image {p} has no label image {m}; give every image its mask (or none at all)")
        out.append(load_mask(m, pre, image_size(p)))
    if len({a.shape for a in out}) != 1:
        raise UsageError(f"{folder}: label images differ in size after preprocessing; give --size")
    return DataSource(str(folder), files=files, targets=SegmentationTargets(np.stack(out)), preprocess=pre)


def task_source(
    task: str, path: Any, pre: Preprocess, labels: Any, with_labels: bool, what: str
) -> DataSource:
    """The source of a detection or segmentation folder (`load_data` for everything else)."""
    folder = Path(path)
    load = load_detection if task == "detect" else load_segmentation
    return load(folder, pre, labels=labels, with_labels=with_labels, what=what)
