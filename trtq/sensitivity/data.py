"""`EvalData`: the evaluation batches sensitivity runs many times over, with their targets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from trtq.errors import UsageError

__all__ = ["EvalData"]


class EvalData:
    """Evaluation batches that can be iterated more than once, with their targets.

    Args:
        data: a `trtq.data.DataSource`, an (N, ...) array for the model's single input, or a list of feed
            dicts.
        input_name: the model input(s) the data feeds: one name, or every input name of a multi-input model
            (a DataSource with named inputs feeds each by name).
        batch_size: batch size for DataSource and array data.
        targets: targets (`trtq.data.ClassLabels`, or a plain label array); taken from the DataSource when it
            has them.
    """

    def __init__(
        self,
        data: Any,
        input_name: str | Sequence[str],
        batch_size: int = 32,
        targets: Any = None,
    ) -> None:
        from trtq.data import ClassLabels, DataSource

        if batch_size < 1:
            raise UsageError(f"batch size must be >= 1, not {batch_size}")
        self._source = data
        self.input_name = input_name
        self.batch_size = batch_size
        if isinstance(data, DataSource):
            self.count = len(data)
            targets = targets if targets is not None else data.targets
        elif isinstance(data, np.ndarray):
            if data.ndim < 1 or len(data) == 0:
                raise UsageError(f"evaluation array of shape {data.shape} holds no samples")
            self.count = len(data)
        elif isinstance(data, Sequence) and all(isinstance(f, Mapping) for f in data):
            self._source = [dict(f) for f in data]
            self.count = sum(len(next(iter(f.values()))) for f in self._source)
        else:
            raise UsageError(
                f"evaluation data must be a DataSource, an array or a list of feed dicts, not {type(data).__name__}"
            )
        if self.count == 0:
            raise UsageError("the evaluation data holds no samples")
        if targets is not None and not hasattr(targets, "kind"):
            targets = ClassLabels(np.asarray(targets))
        if targets is not None and len(targets) != self.count:
            raise UsageError(f"{len(targets)} labels for {self.count} evaluation samples")
        self.targets = targets

    @property
    def targets_kind(self) -> str | None:
        return None if self.targets is None else self.targets.kind

    @property
    def labels(self) -> np.ndarray | None:
        """Class labels as an array (None without class labels)."""
        return None if self.targets_kind != "class" else np.asarray(self.targets)

    def feeds(self) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts, in the same order every time."""
        from trtq.data import DataSource

        if isinstance(self._source, DataSource):
            yield from self._source.feeds(self.input_name, self.batch_size)
        elif isinstance(self._source, np.ndarray):
            name = self.input_name if isinstance(self.input_name, str) else self.input_name[0]
            for i in range(0, self.count, self.batch_size):
                yield {name: np.ascontiguousarray(self._source[i : i + self.batch_size])}
        else:
            yield from self._source

    def sample(self) -> dict[str, np.ndarray]:
        """The first sample, as a batch of one."""
        first = next(self.feeds())
        return {k: np.asarray(v)[:1] for k, v in first.items()}
