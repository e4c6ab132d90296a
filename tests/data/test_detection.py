"""Detection and segmentation folders: COCO and YOLO labels read alike, Ultralytics' images/labels layout, labels
found or named, and every bad label a one-line error naming the file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.zoo.detectors import FIXED_BOXES, letterbox_inverse, make_detection_folder, make_mask_folder
from trtq.data import PRESETS
from trtq.data.detection import find_labels, image_files, load_detection, load_segmentation
from trtq.errors import UsageError

PRE = replace(PRESETS["yolo"], size=32)


def _expected(folder: Path) -> list[np.ndarray]:
    out = []
    for p in sorted(folder.glob("*.png")):
        w, h = Image.open(p).size
        boxes = [letterbox_inverse(b, w, h, 32) for b in FIXED_BOXES]
        out.append(np.clip(np.array(boxes), 0, [w, h, w, h]))
    return out


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_coco_and_yolo_give_the_same_targets(tmp_path, fmt):
    folder = make_detection_folder(tmp_path / fmt, fmt=fmt)
    ds = load_detection(folder, PRE)
    t = ds.targets
    assert t.labelled and len(ds) == len(t) == 4 and t.kind == "detection"
    for got, want in zip(t.boxes, _expected(folder)):
        assert got == pytest.approx(want, abs=1e-3)  # YOLO's text has 6 decimals
    assert [c.tolist() for c in t.classes] == [[0, 1, 2]] * 4
    assert t.sizes[0].tolist() == [32, 48]  # (height, width)
    assert t.transforms[0].tolist() == pytest.approx([32 / 48, 21 / 32, 0, 5])  # 48x32 -> 32x21, 5 px on top
    assert (t.names == ("class_0", "class_1", "class_2")) == (fmt == "coco")
    assert ds.sample_shape == (3, 32, 32)


def test_ultralytics_layout_and_class_names(tmp_path):
    src = make_detection_folder(tmp_path / "src", fmt="yolo")
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for p in src.glob("*.png"):
        p.rename(root / "images" / p.name)
    for p in src.glob("*.txt"):
        p.rename(root / "labels" / p.name)
    (root / "labels" / "classes.txt").write_text("cat\ndog\nbird\n")
    (root / "labels" / "img_3.txt").unlink()  # a background image: no objects
    files = image_files(root)
    assert [p.parent.name for p in files] == ["images"] * 4
    assert find_labels(root, files) == root / "labels"
    t = load_detection(root, PRE).targets
    assert t.names == ("cat", "dog", "bird") and len(t.boxes[3]) == 0 and t.max_class == 2


def test_coco_categories_sorted_by_id_give_class_indices_and_crowds_are_left_out(tmp_path):
    folder = make_detection_folder(tmp_path / "c")
    doc = json.loads((folder / "instances.json").read_text())
    for c in doc["categories"]:
        c["id"] = {1: 7, 2: 3, 3: 90}[c["id"]]
    for a in doc["annotations"]:
        a["category_id"] = {1: 7, 2: 3, 3: 90}[a["category_id"]]
    doc["annotations"][0]["iscrowd"] = 1
    (folder / "labels.json").write_text(json.dumps(doc))
    (folder / "instances.json").unlink()
    t = load_detection(folder, PRE, labels=folder / "labels.json").targets
    assert t.names == ("class_1", "class_0", "class_2")  # ids 3, 7, 90
    assert t.classes[0].tolist() == [0, 2] and t.classes[1].tolist() == [1, 0, 2]


def test_no_labels_is_unlabelled_and_calibration_ignores_them(tmp_path):
    folder = make_detection_folder(tmp_path / "n")
    (folder / "instances.json").unlink()
    t = load_detection(folder, PRE).targets
    assert not t.labelled and all(len(b) == 0 for b in t.boxes) and len(t) == 4
    labelled = make_detection_folder(tmp_path / "l")
    assert not load_detection(labelled, PRE, with_labels=False).targets.labelled


def _edit_json(folder: Path, fn) -> None:
    doc = json.loads((folder / "instances.json").read_text())
    fn(doc)
    (folder / "instances.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "fmt, edit, message",
    [
        ("coco", lambda f: _edit_json(f, lambda d: d["images"].append({"id": 9, "file_name": "gone.png"})),
         r"instances.json has image 'gone.png', which is not in .*; remove its entry or add the image"),
        ("yolo", lambda f: (f / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n"),
         r"labels .*gone.txt are for image 'gone', which is not in"),
        ("coco", lambda f: _edit_json(f, lambda d: d["annotations"][0].update(bbox=[40, 0, 20, 10])),
         r"instances.json \(image img_0.png, annotation 1\): box \[40, 0, 60, 10\] lies outside the 48x32 image"),
        ("yolo", lambda f: (f / "img_1.txt").write_text("1 0.5 0.9 0.2 0.4\n"),
         r"img_1.txt box 1: box .* lies outside the 32x40 image"),
        ("yolo", lambda f: (f / "img_1.txt").write_text("1 0.5 0.5 0.2\n"), r"img_1.txt line 1: expected 'class cx cy w h'"),
        ("yolo", lambda f: (f / "img_1.txt").write_text("-1 0.5 0.5 0.2 0.2\n"), r"img_1.txt line 1"),
        ("coco", lambda f: _edit_json(f, lambda d: d["images"][0].update(width=50)),
         r"image 'img_0.png' is 48x32, but the labels say 50x32"),
        ("coco", lambda f: _edit_json(f, lambda d: d["annotations"][0].update(category_id=55)),
         r"annotation 1 has category 55, which is not listed"),
        ("coco", lambda f: _edit_json(f, lambda d: d["annotations"][0].update(bbox=[1, 1, 0, 5])),
         r"box \[1, 1, 1, 6\] is empty or not finite"),
        ("coco", lambda f: (f / "instances.json").write_text("{"), r"labels .*instances.json is not a JSON file"),
    ],
)  # fmt: skip
def test_bad_labels_are_one_line_errors(tmp_path, fmt, edit, message):
    folder = make_detection_folder(tmp_path / "b", fmt=fmt)
    edit(folder)
    with pytest.raises(UsageError, match=message) as e:
        load_detection(folder, PRE)
    assert "\n" not in str(e.value)


def test_segmentation_masks_follow_the_image_geometry(tmp_path):
    folder = make_mask_folder(tmp_path / "s")
    ds = load_segmentation(folder, PRE)
    m = ds.targets.masks
    assert m.shape == (4, 32, 32) and ds.targets.labelled and ds.targets.kind == "segmentation"
    assert (m[:, :3] == 255).all() and (m[:, -3:] == 255).all()  # 40x32 -> 32x26: 3 rows of padding each side
    raw = np.asarray(Image.open(folder / "masks" / "img_0.png"))
    want = np.asarray(Image.fromarray(raw).resize((32, 26), Image.NEAREST))
    assert (m[0, 3:29] == want).all()
    (tmp_path / "u").mkdir()
    for p in folder.glob("*.png"):
        (tmp_path / "u" / p.name).write_bytes(p.read_bytes())
    unl = load_segmentation(tmp_path / "u", PRE).targets
    assert not unl.labelled and (unl.masks[:, :3] == 255).all() and (unl.masks[:, 3:29] == 0).all()


def test_segmentation_errors(tmp_path):
    folder = make_mask_folder(tmp_path / "s")
    (folder / "masks" / "img_1.png").unlink()
    with pytest.raises(
        UsageError, match=r"image .*img_1.png has no label image .*img_1.png; give every image its mask"
    ):
        load_segmentation(folder, PRE)
    folder = make_mask_folder(tmp_path / "t")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "masks" / "img_2.png")
    with pytest.raises(UsageError, match=r"label image .*img_2.png is 5x5 but its image is 40x32"):
        load_segmentation(folder, PRE)
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(folder / "masks" / "img_2.png")
    with pytest.raises(UsageError, match=r"label image .*img_2.png is RGB; save one class id per pixel"):
        load_segmentation(folder, PRE)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(folder / "masks" / "extra.png")
    with pytest.raises(UsageError, match=r"label image .*extra.png is for image 'extra', which is not in"):
        load_segmentation(folder, PRE)


def test_a_subset_keeps_each_image_with_its_boxes(tmp_path):
    ds = load_detection(make_detection_folder(tmp_path / "c"), PRE)
    sub = ds.subset(2, seed=1)
    for f, boxes, size in zip(sub.files, sub.targets.boxes, sub.targets.sizes):
        i = ds.files.index(f)
        assert (boxes == ds.targets.boxes[i]).all() and (size == ds.targets.sizes[i]).all()
    with pytest.raises(UsageError, match=r"--eval-data .* contains no images"):
        load_detection(tmp_path, PRE, what="--eval-data")
