"""Segmentation: mean IoU of per-pixel classes (the first output, [batch, classes, H, W] scores).

The predicted class of a pixel is the argmax over classes; a prediction at another resolution than the label
masks is resized to them nearest-neighbour. Pixels labelled 255 (and the letterbox padding) are ignored. IoU is
TP / (TP + FP + FN) per class from one confusion matrix over every sample, averaged over the classes that occur
in the labels or the predictions. Without labels FP32's per-pixel classes are the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtq.errors import UsageError
from trtq.metrics.base import Outputs, register_metric

__all__ = ["IGNORE", "predicted_classes", "confusion", "iou_per_class", "miou"]

#: The label value that is not scored.
IGNORE = 255


def predicted_classes(outputs: Outputs, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(N, H, W) argmax classes of the first output (N, C, H, W), resized nearest-neighbour to `shape`."""
    name, scores = next(iter(outputs.items()))
    scores = np.asarray(scores)
    if scores.ndim != 4 or scores.shape[1] < 2:
        raise UsageError(
            f"miou expects the first output [batch, classes, H, W] (per-pixel class scores); the model's output "
            f"{name!r} has shape {tuple(scores.shape)}"
        )
    pred = scores.argmax(axis=1)
    if shape is not None and pred.shape[1:] != tuple(shape):
        h, w = shape
        rows = (np.arange(h) * pred.shape[1] // h).astype(np.int64)
        cols = (np.arange(w) * pred.shape[2] // w).astype(np.int64)
        pred = pred[:, rows][:, :, cols]
    return pred


def confusion(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = label, columns = prediction; IGNORE pixels left out."""
    labels, pred = (
        np.asarray(labels).reshape(-1).astype(np.int64),
        np.asarray(pred).reshape(-1).astype(np.int64),
    )
    keep = labels != IGNORE
    labels, pred = labels[keep], pred[keep]
    return np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU per class from a confusion matrix (NaN for classes in neither labels nor predictions)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


@register_metric("miou", needs="segmentation", auto=True, title="mIoU")
def miou(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Mean IoU of per-pixel classes against the label masks (or FP32's classes without labels)."""
    from trtq.data.targets import SegmentationTargets

    if not isinstance(targets, SegmentationTargets):
        raise UsageError(
            "miou needs segmentation data (--task segment: images with PNG label masks, or none)"
        )
    shape = tuple(targets.masks.shape[1:])
    got = predicted_classes(outputs, shape)  # type: ignore[arg-type]
    if len(got) != len(targets):
        raise UsageError(f"{len(targets)} masks for {len(got)} samples; the evaluation data is inconsistent")
    num_classes = int(np.asarray(next(iter(outputs.values()))).shape[1])
    if targets.labelled:
        labels = targets.masks.astype(np.int64)
        bad = labels[(labels != IGNORE) & (labels >= num_classes)]
        if bad.size:
            raise UsageError(
                f"the label masks hold class {int(bad.max())} but the model scores {num_classes} classes (0.."
                f"{num_classes - 1}; 255 = ignore)"
            )
    else:
        labels = predicted_classes(reference, shape).astype(np.int64)  # type: ignore[arg-type]
        labels[targets.masks == IGNORE] = IGNORE  # the padding is not scored
    iou = iou_per_class(confusion(labels, got, num_classes))
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 1.0
