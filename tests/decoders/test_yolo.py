"""The Ultralytics v8/v11 decoder: multi-label candidates, confidence threshold, per-class NMS against a brute-force
NMS written here, max_det, and the one-line error for an output it cannot read."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.decoders import DecodeSettings, resolve_decoder
from trtq.decoders.yolo import cxcywh_to_xyxy, nms
from trtq.errors import UsageError


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _brute_nms(boxes, scores, labels, thr):
    """Greedy NMS per class: take the best remaining box, drop every same-class box overlapping it above thr."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        if all(labels[j] != labels[i] or _iou(boxes[i], boxes[j]) <= thr for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (60, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(60).astype(np.float32) / 60 + 0.01  # distinct: the order is unambiguous
    labels = rng.integers(0, 3, 60)
    got = nms(boxes, scores, labels, 0.5, 1000)
    assert got.tolist() == _brute_nms(boxes, scores, labels, 0.5)
    assert nms(boxes, scores, labels, 0.5, 4).tolist() == got[:4].tolist()


def _head(entries, classes=3, anchors=20):
    """A [1, 4 + classes, anchors] head: the given (cx, cy, w, h, {class: score}) anchors, the rest near zero."""
    head = np.zeros((1, 4 + classes, anchors), np.float32)
    head[0, :4] = np.array([100, 100, 2, 2], np.float32)[:, None]
    head[0, 4:] = 1e-5
    for a, (cx, cy, w, h, scores) in enumerate(entries):
        head[0, :4, a] = (cx, cy, w, h)
        for c, s in scores.items():
            head[0, 4 + c, a] = s
    return head


def test_decodes_boxes_multilabel_and_thresholds():
    head = _head([(20, 20, 10, 10, {0: 0.9, 2: 0.6}), (21, 20, 10, 10, {0: 0.8}), (60, 60, 20, 10, {1: 0.3})])
    dec = resolve_decoder("yolov8")
    d = dec({"output0": head}, DecodeSettings(conf_threshold=0.001, iou_threshold=0.7))[0]
    # anchor 1 overlaps anchor 0 in class 0 (IoU 0.82): suppressed; anchor 0 is also a class-2 candidate
    assert d.labels.tolist() == [0, 2, 1]
    assert d.scores.tolist() == pytest.approx([0.9, 0.6, 0.3])
    assert d.boxes[0].tolist() == [15, 15, 25, 25] and d.boxes[2].tolist() == [50, 55, 70, 65]
    assert dec.num_classes({"output0": head}) == 3
    high = dec({"output0": head}, DecodeSettings(conf_threshold=0.5))[0]
    assert high.labels.tolist() == [0, 2]
    assert len(dec({"output0": head}, DecodeSettings(max_det=1))[0]) == 1
    loose = dec({"output0": head}, DecodeSettings(iou_threshold=0.9))[0]
    assert sorted(loose.scores.tolist()) == pytest.approx([0.3, 0.6, 0.8, 0.9])


def test_batches_decode_per_image():
    a = _head([(20, 20, 10, 10, {0: 0.9})])
    b = _head([(30, 30, 10, 10, {1: 0.5}), (70, 70, 10, 10, {2: 0.4})])
    got = resolve_decoder("yolov8")({"o": np.concatenate([a, b])})
    assert [len(d) for d in got] == [1, 2] and got[1].labels.tolist() == [1, 2]


def test_cxcywh_to_xyxy():
    assert cxcywh_to_xyxy(np.array([[10.0, 20.0, 4.0, 6.0]])).tolist() == [[8, 17, 12, 23]]


@pytest.mark.parametrize("shape", [(2, 10), (2, 4, 100), (2, 3, 32, 32)])
def test_an_output_it_cannot_read_names_the_shape_it_expected(shape):
    with pytest.raises(UsageError) as e:
        resolve_decoder("yolov8")({"logits": np.zeros(shape, np.float32)})
    msg = str(e.value)
    assert "expects one output [batch, 4 + classes, anchors]" in msg and f"'logits' has shape {shape}" in msg
    assert "\n" not in msg
