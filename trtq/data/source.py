"""`DataSource`: a fixed, deterministic list of samples that yields batches of model inputs and targets.

Images are decoded lazily, batch by batch, so memory does not grow with the number of samples. A source feeds
one model input today (`feeds(input_name, batch_size)`); its targets are typed (`trtq.data.targets`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trtq.data.preprocess import Preprocess, load_image
from trtq.data.targets import ClassLabels, Targets
from trtq.errors import UsageError

__all__ = ["DataSource", "Batch"]

#: (inputs, targets of those samples or None)
Batch = tuple[np.ndarray, Targets | None]


@dataclass
class DataSource:
    """A deterministic list of samples that yields float32 NCHW batches (and their targets)."""

    name: str
    files: list[Path] = field(default_factory=list)
    array: np.ndarray | None = None
    targets: Targets | None = None
    preprocess: Preprocess | None = None
    raw_dtype: np.dtype | None = None  # the dtype of an array source as given (batches are float32)

    def __len__(self) -> int:
        return len(self.files) if self.array is None else int(self.array.shape[0])

    @property
    def targets_kind(self) -> str | None:
        """The kind of targets ("class", ...) or None."""
        return None if self.targets is None else self.targets.kind

    @property
    def has_labels(self) -> bool:
        """Whether the samples have class labels."""
        return isinstance(self.targets, ClassLabels)

    @property
    def labels(self) -> np.ndarray | None:
        """Class labels as an int64 array (None without class labels)."""
        return self.targets.values if isinstance(self.targets, ClassLabels) else None

    @property
    def classes(self) -> list[str] | None:
        """Class names (folder names) when known."""
        if isinstance(self.targets, ClassLabels) and self.targets.classes is not None:
            return list(self.targets.classes)
        return None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one sample (decodes the first image for folders)."""
        first, _ = next(self.iter_batches(1))
        return tuple(first.shape[1:])

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """(inputs, targets) per batch, in the source's order."""
        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, not {batch_size}")
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if self.array is not None:
                x = np.ascontiguousarray(self.array[start:stop], dtype=np.float32)
            else:
                x = np.stack([load_image(p, self.preprocess) for p in self.files[start:stop]])
            finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if not finite.all():
                bad = [start + int(i) for i in np.flatnonzero(~finite)]
                which = self._describe(bad[0])
                more = f" (and {len(bad) - 1} more in samples {start}..{stop - 1})" if len(bad) > 1 else ""
                raise UsageError(f"{self.name}: {which} contains NaN or Inf values{more}")
            yield x, None if self.targets is None else self.targets.slice(start, stop)

    def _describe(self, index: int) -> str:
        """How to find sample `index`: its file for image folders, its row for arrays."""
        if self.array is None and index < len(self.files):
            return f"sample {index} ({self.files[index]})"
        return f"sample {index} (row {index} of the array)"

    def num_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def feeds(self, input_name: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts for a runner: {input_name: batch}."""
        for x, _ in self.iter_batches(batch_size):
            yield {input_name: x}

    def subset(self, limit: int | None, seed: int = 0) -> DataSource:
        """A reproducible subset of `limit` samples (kept in their original order)."""
        if limit is None or limit >= len(self):
            return self
        if limit < 1:
            raise UsageError(f"sample count must be >= 1, not {limit}")
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))
        return DataSource(
            name=self.name,
            files=[self.files[i] for i in idx] if self.array is None else [],
            array=None if self.array is None else self.array[idx],
            targets=None if self.targets is None else self.targets.take(idx),
            preprocess=self.preprocess,
            raw_dtype=self.raw_dtype,
        )
