"""What a data set knows about each sample besides its input: its targets (labels, boxes, ...).

Targets are typed by kind, and metrics declare the kind they need (`trtq.metrics.Metric.needs`): a classifier's
top-1 accuracy needs `ClassLabels`; a metric that needs nothing (cosine, agreement with FP32) runs on any data.
Every kind supports `len()`, `take(indices)` (a subset in the given order) and `slice(start, stop)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = ["Targets", "ClassLabels", "DetectionTargets", "SegmentationTargets", "concat_targets"]


@runtime_checkable
class Targets(Protocol):
    """Per-sample targets of one kind."""

    kind: ClassVar[str]

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> Targets: ...

    def slice(self, start: int, stop: int) -> Targets: ...


@dataclass(frozen=True)
class ClassLabels:
    """One integer class per sample, with the class names when the source knows them.

    `np.asarray(labels)` gives the int64 label array, so metrics written for plain label arrays keep working.
    """

    values: np.ndarray
    classes: tuple[str, ...] | None = field(default=None)
    kind: ClassVar[str] = "class"

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.int64).reshape(-1))
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __getitem__(self, item: Any) -> Any:
        return self.values[item]

    def take(self, indices: np.ndarray) -> ClassLabels:
        return ClassLabels(self.values[np.asarray(indices)], self.classes)

    def slice(self, start: int, stop: int) -> ClassLabels:
        return ClassLabels(self.values[start:stop], self.classes)

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None


@dataclass(frozen=True)
class DetectionTargets:
    """Per sample: ground-truth boxes in the ORIGINAL image's pixels, their classes, the image size, and how the
    preprocessing mapped the image onto the model input (so predicted boxes map back).

    Attributes:
        boxes: per sample (K, 4) float64 x1, y1, x2, y2 in original image pixels.
        classes: per sample (K,) int64 class ids (0-based model class index).
        sizes: (N, 2) int64 original (height, width).
        transforms: (N, 4) float64 (sx, sy, ox, oy): input x = original x * sx + ox, input y = original y * sy + oy.
        labelled: False when the data has no labels (then FP32's detections are the reference; boxes are empty).
        names: class names when the labels name them.
        decoder: the run's `trtq.decoders.BoundDecoder` (bound by the task stage; None = yolov8 defaults).
    """

    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]
    sizes: np.ndarray
    transforms: np.ndarray
    labelled: bool = True
    names: tuple[str, ...] | None = None
    decoder: Any = None
    kind: ClassVar[str] = "detection"

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", tuple(np.asarray(b, np.float64).reshape(-1, 4) for b in self.boxes))
        object.__setattr__(self, "classes", tuple(np.asarray(c, np.int64).reshape(-1) for c in self.classes))
        object.__setattr__(self, "sizes", np.asarray(self.sizes, np.int64).reshape(-1, 2))
        object.__setattr__(self, "transforms", np.asarray(self.transforms, np.float64).reshape(-1, 4))
        if self.names is not None:
            object.__setattr__(self, "names", tuple(self.names))

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    def take(self, indices: np.ndarray) -> DetectionTargets:
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        return DetectionTargets(
            tuple(self.boxes[i] for i in idx), tuple(self.classes[i] for i in idx), self.sizes[idx],
            self.transforms[idx], self.labelled, self.names, self.decoder,
        )  # fmt: skip

    def slice(self, start: int, stop: int) -> DetectionTargets:
        return self.take(np.arange(start, min(stop, len(self))))

    def with_decoder(self, decoder: Any) -> DetectionTargets:
        from dataclasses import replace

        return replace(self, decoder=decoder)

    @property
    def max_class(self) -> int | None:
        """The highest class id in the labels (None without boxes)."""
        ids = [int(c.max()) for c in self.classes if len(c)]
        return max(ids) if ids else None


@dataclass(frozen=True)
class SegmentationTargets:
    """Per-pixel class ids at the model's input resolution (the label images through the same geometry as the
    images, nearest-neighbour; padding and 255 are ignored).

    Attributes:
        masks: (N, H, W) uint8 class ids, 255 = ignore.
        labelled: False when the data has no masks (then FP32's per-pixel classes are the reference).
        names: class names when known.
        num_classes: the model's class count (bound by the task stage).
    """

    masks: np.ndarray
    labelled: bool = True
    names: tuple[str, ...] | None = None
    num_classes: int | None = None
    kind: ClassVar[str] = "segmentation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "masks", np.asarray(self.masks, np.uint8))

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def take(self, indices: np.ndarray) -> SegmentationTargets:
        return SegmentationTargets(
            self.masks[np.asarray(indices)], self.labelled, self.names, self.num_classes
        )

    def slice(self, start: int, stop: int) -> SegmentationTargets:
        return SegmentationTargets(self.masks[start:stop], self.labelled, self.names, self.num_classes)


def concat_targets(parts: Sequence[Targets]) -> Targets | None:
    """Targets of consecutive batches joined back into one (None when there are none)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    first = parts[0]
    if isinstance(first, ClassLabels):
        return ClassLabels(np.concatenate([np.asarray(p) for p in parts]), first.classes)
    if isinstance(first, DetectionTargets):
        return DetectionTargets(
            tuple(b for p in parts for b in p.boxes), tuple(c for p in parts for c in p.classes),  # type: ignore[attr-defined]
            np.concatenate([p.sizes for p in parts]), np.concatenate([p.transforms for p in parts]),  # type: ignore[attr-defined]
            first.labelled, first.names, first.decoder,
        )  # fmt: skip
    if isinstance(first, SegmentationTargets):
        masks = np.concatenate([p.masks for p in parts])  # type: ignore[attr-defined]
        return SegmentationTargets(masks, first.labelled, first.names, first.num_classes)
    raise TypeError(f"cannot join targets of kind {first.kind!r}")
