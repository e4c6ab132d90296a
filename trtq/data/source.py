"""`DataSource`: a fixed, deterministic list of samples that yields batches of model inputs and targets.

A source holds either one unnamed input (image files decoded lazily, batch by batch, or one array), which feeds a
model with a single input, or named arrays (`inputs`, one per model input: token ids, masks, images), which feed
the inputs of the same names. Floating-point inputs are fed as float32; integer inputs (token ids, masks,
positions) keep integer values and are never normalised. Targets are typed (`trtq.data.targets`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trtq.data.preprocess import Preprocess, load_image
from trtq.data.targets import ClassLabels, Targets
from trtq.errors import UsageError

__all__ = ["DataSource", "Batch", "Feed"]

#: (inputs, targets of those samples or None)
Batch = tuple[np.ndarray, Targets | None]
#: input name -> one batch of it
Feed = dict[str, np.ndarray]


@dataclass
class DataSource:
    """A deterministic list of samples that yields batches of model inputs (and their targets).

    Attributes:
        name: how errors name the source (its path, or the option it came from).
        files: image files (one unnamed input, decoded with `preprocess`).
        array: one unnamed input as an array (N, ...).
        inputs: named inputs, name -> array (N, ...), in the order the model's forward takes them.
        targets: per-sample targets, or None.
        preprocess: how image files are decoded.
    """

    name: str
    files: list[Path] = field(default_factory=list)
    array: np.ndarray | None = None
    inputs: dict[str, np.ndarray] | None = None
    targets: Targets | None = None
    preprocess: Preprocess | None = None
    raw_dtype: np.dtype | None = None  # the dtype of an array source as given (batches are float32)

    def __len__(self) -> int:
        if self.inputs is not None:
            return int(next(iter(self.inputs.values())).shape[0])
        return len(self.files) if self.array is None else int(self.array.shape[0])

    @property
    def is_named(self) -> bool:
        """Whether the source holds named inputs (one array per model input)."""
        return self.inputs is not None

    @property
    def input_names(self) -> list[str] | None:
        """The names of the inputs a named source holds (None for one unnamed input)."""
        return None if self.inputs is None else list(self.inputs)

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
        """The shape of one sample of an unnamed source (decodes the first image for folders)."""
        if self.inputs is not None:
            raise UsageError(f"{self.name} has named inputs {self.input_names}; use sample_shapes")
        first, _ = next(self.iter_batches(1))
        return tuple(first.shape[1:])

    @property
    def sample_shapes(self) -> dict[str | None, tuple[int, ...]]:
        """input name -> shape of one sample (the key is None for an unnamed source)."""
        if self.inputs is None:
            return {None: self.sample_shape}
        return {k: tuple(v.shape[1:]) for k, v in self.inputs.items()}

    def _unnamed(self, start: int, stop: int) -> np.ndarray:
        if self.array is not None:
            x = np.ascontiguousarray(self.array[start:stop], dtype=np.float32)
        else:
            x = np.stack([load_image(p, self.preprocess) for p in self.files[start:stop]])
        finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if not finite.all():
            bad = [start + int(i) for i in np.flatnonzero(~finite)]
            more = f" (and {len(bad) - 1} more in samples {start}..{stop - 1})" if len(bad) > 1 else ""
            raise UsageError(f"{self.name}: {self._describe(bad[0])} contains NaN or Inf values{more}")
        return x

    def _named(self, name: str, start: int, stop: int, dtype: np.dtype | None) -> np.ndarray:
        a = self.inputs[name][start:stop]  # type: ignore[index]
        if np.issubdtype(a.dtype, np.floating):
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not np.all(np.isfinite(a)):
                raise UsageError(f"{self.name}: input {name!r} contains NaN or Inf values")
            return a
        if dtype is not None and np.issubdtype(dtype, np.integer) and a.dtype != dtype:
            cast = a.astype(dtype)
            if not np.array_equal(cast, a):
                raise UsageError(
                    f"{self.name}: input {name!r} holds {a.dtype} values that do not fit the model's {np.dtype(dtype)}"
                )
            return np.ascontiguousarray(cast)
        return np.ascontiguousarray(a)

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """(inputs, targets) per batch, in the source's order (sources with one unnamed input)."""
        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, not {batch_size}")
        if self.inputs is not None:
            raise UsageError(
                f"{self.name} has named inputs {self.input_names}; this step takes data with one input"
            )
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield (
                self._unnamed(start, stop),
                None if self.targets is None else self.targets.slice(start, stop),
            )

    def _describe(self, index: int) -> str:
        """How to find sample `index`: its file for image folders, its row for arrays."""
        if self.array is None and index < len(self.files):
            return f"sample {index} ({self.files[index]})"
        return f"sample {index} (row {index} of the array)"

    def num_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def feeds(
        self,
        input_names: str | Sequence[str],
        batch_size: int,
        dtypes: Mapping[str, np.dtype] | None = None,
    ) -> Iterator[Feed]:
        """Feed dicts for a runner, `{input name: batch}`, for the model inputs `input_names`.

        An unnamed source feeds a model with one input; a named source feeds each input from the array of the
        same name. Integer arrays are cast to the model's integer type in `dtypes` when every value fits.
        """
        names = [input_names] if isinstance(input_names, str) else list(input_names)
        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, not {batch_size}")
        if self.inputs is None and len(names) != 1:
            raise UsageError(
                f"the model takes {len(names)} inputs ({', '.join(names)}) but {self.name} holds one unnamed input; "
                "give an .npz with one array per input, named like the inputs"
            )
        if self.inputs is not None:
            missing = [n for n in names if n not in self.inputs]
            if missing:
                raise UsageError(
                    f"{self.name} has no array for model input {missing[0]!r} (it has: {self.input_names})"
                )
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if self.inputs is None:
                yield {names[0]: self._unnamed(start, stop)}
            else:
                yield {k: self._named(k, start, stop, (dtypes or {}).get(k)) for k in names}

    def batches(
        self, input_names: str | Sequence[str], batch_size: int
    ) -> Iterator[tuple[Feed, Targets | None]]:
        """(feed, targets of those samples) per batch."""
        for i, feed in enumerate(self.feeds(input_names, batch_size)):
            start = i * batch_size
            stop = start + len(next(iter(feed.values())))
            yield feed, None if self.targets is None else self.targets.slice(start, stop)

    def sample(self, count: int = 2) -> np.ndarray | Feed:
        """The first `count` samples: an array for an unnamed source, `{name: array}` for a named one."""
        count = min(count, len(self))
        if self.inputs is None:
            return self._unnamed(0, count)
        return {k: self._named(k, 0, count, None) for k in self.inputs}

    def subset_indices(self, limit: int | None, seed: int = 0) -> np.ndarray:
        """The sample indices `subset(limit, seed)` keeps, in order (all of them when `limit` is None or large)."""
        if limit is None or limit >= len(self):
            return np.arange(len(self))
        if limit < 1:
            raise UsageError(f"sample count must be >= 1, not {limit}")
        return np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))

    def subset(self, limit: int | None, seed: int = 0) -> DataSource:
        """A reproducible subset of `limit` samples (kept in their original order)."""
        if limit is None or limit >= len(self):
            return self
        return self.take(self.subset_indices(limit, seed))

    def take(self, idx: Sequence[int] | np.ndarray) -> DataSource:
        """The samples at `idx`, in that order (files, arrays and targets alike)."""
        idx = np.asarray(idx, dtype=np.int64)
        return DataSource(
            name=self.name,
            files=[self.files[i] for i in idx] if self.files else [],
            array=None if self.array is None else self.array[idx],
            inputs=None if self.inputs is None else {k: v[idx] for k, v in self.inputs.items()},
            targets=None if self.targets is None else self.targets.take(idx),
            preprocess=self.preprocess,
            raw_dtype=self.raw_dtype,
        )
