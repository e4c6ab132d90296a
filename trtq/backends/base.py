"""The runner interface every backend implements."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["BaseRunner", "TensorMeta"]

# name -> (numpy dtype, shape with None / -1 / str for dynamic axes)
TensorMeta = dict[str, tuple[np.dtype, tuple[Any, ...]]]


class BaseRunner:
    """Activate, feed named arrays, get named arrays back.

    Subclasses implement `activate_impl`, `deactivate_impl`, `infer_impl` and `input_metadata`.
    `infer` records the wall time of the last call (`last_inference_time`, seconds).
    """

    name: str = "runner"

    def __init__(self) -> None:
        self.is_active = False
        self._last_time: float | None = None

    # lifecycle -----------------------------------------------------------------------------------
    def activate(self) -> None:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> BaseRunner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # inference -----------------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError(f"{self.name} must be activated before infer() (use it as a context manager)")
        start = time.perf_counter()
        out = self.infer_impl(feed)
        self._last_time = time.perf_counter() - start
        return out

    def last_inference_time(self) -> float | None:
        return self._last_time

    # to implement --------------------------------------------------------------------------------
    def activate_impl(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def deactivate_impl(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def input_metadata(self) -> TensorMeta:  # pragma: no cover - interface
        raise NotImplementedError

    def output_names(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError
