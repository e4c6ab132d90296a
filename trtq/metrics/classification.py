"""Classification metrics on the first output read as logits (N, classes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trtq.errors import UsageError
from trtq.metrics.base import Outputs, register_metric

__all__ = ["is_classifier", "logits", "top1_accuracy", "top5_accuracy", "top1_agreement"]


def is_classifier(reference: Outputs) -> bool:
    """Whether the first output looks like classifier logits: (N, K) with K > 1."""
    first = np.asarray(next(iter(reference.values())))
    return first.ndim == 2 and first.shape[1] > 1


def logits(outputs: Outputs, what: str) -> np.ndarray:
    """The first output as (N, K) logits; UsageError naming `what` otherwise."""
    first = np.asarray(next(iter(outputs.values())))
    if first.ndim < 2 or first.shape[0] == 0:
        raise UsageError(
            f"{what} needs classifier outputs (N, classes); the first output has shape {first.shape}: "
            "choose another --metric for this task"
        )
    return first.reshape(first.shape[0], -1)


def _labels(targets: Any, n: int, what: str) -> np.ndarray:
    if targets is None:
        raise UsageError(f"{what} needs labelled evaluation data (class sub-folders or .npz with y)")
    labels = np.asarray(targets).reshape(-1)
    if len(labels) != n:
        raise UsageError(f"{len(labels)} labels for {n} samples; the evaluation data is inconsistent")
    return labels


@register_metric("top1_accuracy", needs="class", applies=is_classifier, auto=True, title="top-1")
def top1_accuracy(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Share of samples whose top-1 class is the label."""
    got = logits(outputs, "top-1 accuracy")
    return float(np.mean(got.argmax(1) == _labels(targets, len(got), "top-1 accuracy")))


@register_metric("top5_accuracy", needs="class", applies=is_classifier, auto=True, title="top-5")
def top5_accuracy(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Share of samples whose label is among the 5 highest logits (all of them with fewer classes)."""
    got = logits(outputs, "top-5 accuracy")
    labels = _labels(targets, len(got), "top-5 accuracy")
    k = min(5, got.shape[1])
    top = np.argsort(-got, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


@register_metric("top1_agreement", applies=is_classifier, auto=True, title="top-1 agreement with FP32")
def top1_agreement(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Share of samples whose top-1 class matches the FP32 model's."""
    ref, got = logits(reference, "top-1 agreement"), logits(outputs, "top-1 agreement")
    return float(np.mean(ref.argmax(1) == got.argmax(1)))
