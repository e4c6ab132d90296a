"""COCO mAP: the ground truth against itself is 1.0; values agree with pycocotools run independently on the
same JSON files (trtq computes with faster-coco-eval, the reference here is pycocotools, read from the files);
per-class AP; letterboxed outputs map back to the original images; FP32 as the reference."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trtq.data import PRESETS
from trtq.data.detection import load_detection
from trtq.data.targets import DetectionTargets
from trtq.decoders import DECODERS, BoundDecoder, DecodeSettings, Detections
from trtq.errors import UsageError
from trtq.metrics import METRICS, resolve_metric
from trtq.metrics.detection import coco_evaluate, detections_in_images, evaluate_detection


def _scene(seed: int, images: int = 6, classes: int = 3):
    """Random ground truth and noisy detections (shifted boxes, misses, false positives, class mix-ups)."""
    rng = np.random.default_rng(seed)
    sizes = np.array([[rng.integers(60, 120), rng.integers(60, 120)] for _ in range(images)])
    gt_b, gt_c, dets = [], [], []
    for h, w in sizes:
        k = int(rng.integers(1, 6))
        xy = rng.uniform(0, [w * 0.6, h * 0.6], (k, 2))
        wh = rng.uniform(5, [w * 0.4, h * 0.4], (k, 2))
        b = np.concatenate([xy, xy + wh], 1)
        c = rng.integers(0, classes, k)
        gt_b.append(b)
        gt_c.append(c)
        keep = rng.random(k) > 0.2
        db = b[keep] + rng.normal(0, 3, (int(keep.sum()), 4))
        dc = np.where(rng.random(int(keep.sum())) < 0.15, rng.integers(0, classes, int(keep.sum())), c[keep])
        fp = int(rng.integers(0, 3))
        fxy = rng.uniform(0, [w * 0.5, h * 0.5], (fp, 2))
        db = np.concatenate([db, np.concatenate([fxy, fxy + 10], 1)])
        dc = np.concatenate([dc, rng.integers(0, classes, fp)])
        db[:, 0::2] = np.clip(db[:, 0::2], 0, w)
        db[:, 1::2] = np.clip(db[:, 1::2], 0, h)
        ok = (db[:, 2] > db[:, 0] + 0.5) & (db[:, 3] > db[:, 1] + 0.5)
        dets.append(Detections(db[ok], rng.uniform(0.05, 1, int(ok.sum())), dc[ok]))
    return sizes, gt_b, gt_c, dets


def test_ground_truth_against_itself_is_one():
    sizes, gt_b, gt_c, _ = _scene(0)
    perfect = [Detections(b, np.ones(len(b)), c) for b, c in zip(gt_b, gt_c)]
    r = coco_evaluate(gt_b, gt_c, sizes, perfect, num_classes=3)
    assert r.map50_95 == pytest.approx(1.0) and r.map50 == pytest.approx(1.0)
    assert all(c.map50_95 == pytest.approx(1.0) for c in r.classes)
    assert sum(c.instances for c in r.classes) == sum(len(c) for c in gt_c)


def _pycocotools(tmp: Path, sizes, gt_b, gt_c, dets, classes: int) -> tuple[float, float, list[float]]:
    """mAP50-95, mAP50 and per-class AP from pycocotools (the reference COCOeval), reading JSON files written here."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1, "width": int(w), "height": int(h)} for i, (h, w) in enumerate(sizes)]
    anns, res = [], []
    for i, (b, c, d) in enumerate(zip(gt_b, gt_c, dets)):
        for (x1, y1, x2, y2), k in zip(b.tolist(), c.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": k + 10, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})  # fmt: skip
        for (x1, y1, x2, y2), s, k in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist()):
            res.append(
                {"image_id": i + 1, "category_id": k + 10, "score": s, "bbox": [x1, y1, x2 - x1, y2 - y1]}
            )
    cats = [{"id": k + 10, "name": str(k)} for k in range(classes)]
    (tmp / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (tmp / "dt.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp / "gt.json"))
        ev = COCOeval(gt, gt.loadRes(str(tmp / "dt.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]
    per_class = []
    for k in range(classes):
        p = precision[:, :, k, 0, -1]
        per_class.append(float(np.mean(p[p > -1])))
    return float(ev.stats[0]), float(ev.stats[1]), per_class


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_pycocotools(tmp_path, seed):
    sizes, gt_b, gt_c, dets = _scene(seed)
    ours = coco_evaluate(gt_b, gt_c, sizes, dets, num_classes=3, max_det=100)
    ref50_95, ref50, ref_classes = _pycocotools(tmp_path, sizes, gt_b, gt_c, dets, 3)
    assert 0.1 < ours.map50_95 < 0.95  # a real, imperfect case
    assert ours.map50_95 == pytest.approx(ref50_95, abs=1e-6)
    assert ours.map50 == pytest.approx(ref50, abs=1e-6)
    assert [c.map50_95 for c in ours.classes] == pytest.approx(ref_classes, abs=1e-6)


def test_empty_cases():
    sizes, gt_b, gt_c, _ = _scene(4, images=2)
    none = [Detections(np.zeros((0, 4)), [], []) for _ in gt_b]
    r = coco_evaluate(gt_b, gt_c, sizes, none, num_classes=3)
    assert r.map50_95 == 0.0 and all(c.map50_95 == 0.0 for c in r.classes)
    empty_gt = [np.zeros((0, 4))] * 2, [np.zeros(0, np.int64)] * 2
    assert coco_evaluate(*empty_gt, sizes, none, num_classes=3).map50_95 == 1.0
    some = [Detections([[0, 0, 5, 5]], [0.5], [0])] * 2
    assert coco_evaluate(*empty_gt, sizes, some, num_classes=3).map50_95 == 0.0


def _targets(sizes, boxes, classes, transforms=None, labelled=True, decoder=None):
    n = len(sizes)
    tf = np.tile([1.0, 1.0, 0.0, 0.0], (n, 1)) if transforms is None else transforms
    return DetectionTargets(tuple(boxes), tuple(classes), sizes, tf, labelled, None, decoder)


def _yolo_head(dets_per_image, classes=3, anchors=12):
    head = np.zeros((len(dets_per_image), 4 + classes, anchors), np.float32)
    head[:, :4] = np.array([-50, -50, 1, 1], np.float32)[None, :, None]  # off the image: clipped away
    for i, dets in enumerate(dets_per_image):
        for a, (x1, y1, x2, y2, c, s) in enumerate(dets):
            head[i, :4, a] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
            head[i, 4 + c, a] = s
    return head


def test_letterboxed_detections_map_back_to_the_original_image(tmp_path):
    from tests.zoo.detectors import FIXED_BOXES, make_detection_folder

    folder = make_detection_folder(tmp_path / "d", sizes=((48, 32), (20, 40), (33, 17)))
    ds = load_detection(folder, replace(PRESETS["yolo"], size=32))
    head = _yolo_head([FIXED_BOXES] * 3)
    got = detections_in_images({"output0": head}, ds.targets)
    for d, boxes in zip(got, ds.targets.boxes):
        assert d.boxes == pytest.approx(boxes.astype(np.float32), abs=1e-4)
    assert METRICS.get("map50_95")({"o": head}, {"o": head}, ds.targets) == pytest.approx(1.0)


def test_without_labels_fp32_is_the_reference():
    sizes = np.array([[64, 64], [64, 64]])
    ref = _yolo_head([[(5, 5, 20, 20, 0, 0.9), (30, 30, 50, 60, 1, 0.8)], [(10, 10, 30, 30, 2, 0.7)]])
    moved = ref.copy()
    moved[0, 0, 1] += 6  # one box shifted by 6 px: IoU 0.54 with FP32's
    t = _targets(sizes, [np.zeros((0, 4))] * 2, [np.zeros(0)] * 2, labelled=False)
    m = METRICS.get("map50_95")
    assert m({"o": ref}, {"o": ref}, t) == pytest.approx(1.0)
    assert m({"o": ref}, {"o": moved}, t) < 1.0
    assert METRICS.get("map50")({"o": ref}, {"o": moved}, t) == pytest.approx(1.0)  # still a match at IoU 0.5


def test_without_labels_only_fp32s_confident_detections_are_the_ground_truth():
    sizes = np.array([[64, 64]])
    ref = _yolo_head([[(5, 5, 20, 20, 0, 0.9), (30, 30, 50, 60, 1, 0.1)]])  # the 0.1 box is FP32's noise
    only_confident = _yolo_head([[(5, 5, 20, 20, 0, 0.9)]])
    t = _targets(sizes, [np.zeros((0, 4))], [np.zeros(0)], labelled=False)
    m = METRICS.get("map50_95")
    assert m({"o": ref}, {"o": ref}, t) == pytest.approx(1.0)  # the noise ranks after every match
    assert m({"o": ref}, {"o": only_confident}, t) == pytest.approx(1.0)  # missing FP32's noise costs nothing
    strict = BoundDecoder(DECODERS.get("yolov8"), DecodeSettings(), 3, reference_conf=0.05)
    assert m({"o": ref}, {"o": only_confident}, replace(t, decoder=strict)) == pytest.approx(0.5)


def test_the_bound_decoder_and_settings_are_used():
    sizes = np.array([[64, 64]])
    head = _yolo_head([[(5, 5, 20, 20, 0, 0.9), (30, 30, 50, 60, 1, 0.2)]])
    gt = [np.array([[5, 5, 20, 20], [30, 30, 50, 60]])], [np.array([0, 1])]
    strict = BoundDecoder(DECODERS.get("yolov8"), DecodeSettings(conf_threshold=0.5), 3)
    assert evaluate_detection({"o": head}, {"o": head}, _targets(sizes, *gt)).map50_95 == pytest.approx(1.0)
    half = evaluate_detection({"o": head}, {"o": head}, _targets(sizes, *gt, decoder=strict))
    assert half.map50_95 == pytest.approx(0.5)  # class 1's only box is under the threshold


def test_needs_detection_targets():
    m = METRICS.get("map50_95")
    assert m.needs == "detection" and m.unit == "fraction" and m.auto
    with pytest.raises(UsageError, match="--metric map50_95 needs evaluation data with detection targets"):
        resolve_metric("map50_95", "class")
    assert resolve_metric(None, "detection").name == "map50_95"
    assert m.drop(0.40, 0.395) == pytest.approx(0.5)  # --max-drop is in mAP points
