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

__all__ = ["Targets", "ClassLabels", "concat_targets"]


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


def concat_targets(parts: Sequence[Targets]) -> Targets | None:
    """Targets of consecutive batches joined back into one (None when there are none)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    first = parts[0]
    if isinstance(first, ClassLabels):
        return ClassLabels(np.concatenate([np.asarray(p) for p in parts]), first.classes)
    raise TypeError(f"cannot join targets of kind {first.kind!r}")
