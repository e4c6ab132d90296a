"""Ultralytics YOLOv8 / YOLO11 heads: one output `[batch, 4 + classes, anchors]`.

Rows 0-3 are the box centre, width and height in input pixels; rows 4.. are the class scores, already through
the Sigmoid. Like Ultralytics' validator: every (anchor, class) pair above the confidence threshold is a
candidate (multi-label), at most 30000 candidates per image by score, per-class NMS with torchvision's
`batched_nms`, then the `max_det` best.
"""

from __future__ import annotations

import numpy as np

from trtq.decoders.base import DecodeSettings, Detections, Outputs, register_decoder
from trtq.errors import UsageError

__all__ = ["yolov8", "yolo_head", "nms", "cxcywh_to_xyxy", "MAX_CANDIDATES"]

#: Candidates per image kept before NMS (Ultralytics' `max_nms`).
MAX_CANDIDATES = 30000
EXPECTS = (
    "one output [batch, 4 + classes, anchors] (cx, cy, w, h in input pixels, then sigmoided class scores)"
)


def yolo_head(outputs: Outputs) -> np.ndarray:
    """The head output as (batch, 4 + classes, anchors); UsageError naming its shape and the one expected."""
    name, head = next(iter(outputs.items()))
    head = np.asarray(head)
    if head.ndim != 3 or head.shape[1] < 5:
        raise UsageError(
            f"decoder yolov8 expects {EXPECTS}; the model's output {name!r} has shape {tuple(head.shape)} "
            "(choose another --decoder, e.g. boxes, or give package.module:function)"
        )
    return head


def _classes(outputs: Outputs) -> int:
    return int(yolo_head(outputs).shape[1]) - 4


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """(..., 4) centre, width, height -> corners."""
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float, max_det: int
) -> np.ndarray:
    """Indices kept by per-class NMS (torchvision's `batched_nms`), best first, at most `max_det`."""
    import torch
    from torchvision.ops import batched_nms

    if len(scores) == 0:
        return np.zeros(0, np.int64)
    keep = batched_nms(
        torch.from_numpy(np.ascontiguousarray(boxes, np.float32)),
        torch.from_numpy(np.ascontiguousarray(scores, np.float32)),
        torch.from_numpy(np.ascontiguousarray(labels, np.int64)),
        float(iou_threshold),
    )
    return keep[:max_det].numpy().astype(np.int64)


@register_decoder("yolov8", expects=EXPECTS, classes=_classes, aliases=("yolo11", "ultralytics"))
def yolov8(outputs: Outputs, settings: DecodeSettings) -> list[Detections]:
    """Ultralytics v8/v11 head [batch, 4 + classes, anchors]: multi-label candidates, per-class NMS."""
    head = yolo_head(outputs).astype(np.float32)
    out = []
    for pred in head:  # (4 + C, A)
        boxes = cxcywh_to_xyxy(pred[:4].T)
        scores = pred[4:].T  # (A, C)
        anchor, cls = np.nonzero(scores > settings.conf_threshold)
        conf = scores[anchor, cls]
        if len(conf) > MAX_CANDIDATES:
            top = np.argsort(-conf, kind="stable")[:MAX_CANDIDATES]
            anchor, cls, conf = anchor[top], cls[top], conf[top]
        keep = nms(boxes[anchor], conf, cls, settings.iou_threshold, settings.max_det)
        out.append(Detections(boxes[anchor[keep]], conf[keep], cls[keep]))
    return out
