"""The runner interface every backend implements, and what it tells the benchmark.

A runner is activated (as a context manager), fed a dict of named numpy arrays, and returns a dict of
named numpy arrays (Polygraphy's runner shape). Besides `infer`, a runner says where it runs (`device`)
and, through `cuda_steps()`, whether the benchmark may time it step by step with CUDA events: host
runners return None and are timed with the wall clock around `infer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["BaseRunner", "CudaSteps", "TensorMeta", "DEVICES"]

#: name -> (numpy dtype, shape with None / -1 / str for dynamic axes)
TensorMeta = dict[str, tuple[np.dtype, tuple[Any, ...]]]
#: the values `BaseRunner.device` takes
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class CudaSteps:
    """One inference split into the steps a CUDA-event benchmark times separately.

    Attributes:
        bind: sets input shapes, device buffers and tensor addresses for a feed and copies it in
            (untimed; called once per batch size, synchronises).
        copy_inputs: enqueues the host -> device copies of the bound inputs (no synchronisation).
        enqueue: enqueues one inference (no copies, no synchronisation).
        copy_outputs: enqueues the device -> host copies of the outputs (no synchronisation).
        stream: the non-default `torch.cuda.Stream` every step enqueues on.
    """

    bind: Callable[[Mapping[str, np.ndarray]], None]
    copy_inputs: Callable[[], None]
    enqueue: Callable[[], None]
    copy_outputs: Callable[[], None]
    stream: Any


class BaseRunner:
    """Activate, feed named arrays, get named arrays back.

    Subclasses implement `activate_impl`, `deactivate_impl`, `infer_impl`, `input_metadata` and
    `output_names`; device runners also override `cuda_steps`. `infer` records the wall time of the last
    call (`last_inference_time`, seconds).

    Attributes:
        name: the runner's label in comparisons and benchmarks.
        backend: what executes the graph ("onnxruntime", "tensorrt"); recorded in bench.json.
        device: where inference runs: "cpu" or "cuda".
    """

    name: str = "runner"
    backend: ClassVar[str] = "custom"
    device: str = "cpu"

    def __init__(self) -> None:
        self.is_active = False
        self._last_time: float | None = None

    # lifecycle -----------------------------------------------------------------------------------
    def activate(self) -> None:
        """Load what inference needs (a session, an engine); a no-op when already active."""
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        """Release what `activate` loaded; a no-op when not active."""
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
        """Run one inference.

        Args:
            feed: input name -> array.

        Returns:
            Output name -> array (host memory).

        Raises:
            RuntimeError: the runner is not active.
        """
        self._require_active("infer()")
        start = time.perf_counter()
        out = self.infer_impl(feed)
        self._last_time = time.perf_counter() - start
        return out

    def last_inference_time(self) -> float | None:
        """Wall time of the last `infer` call in seconds, None before the first."""
        return self._last_time

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
        """(min, opt, max) shape a dynamic input accepts, None when the runner has no such limit."""
        return None

    def cuda_steps(self) -> CudaSteps | None:
        """The steps a CUDA-event benchmark times, or None for a runner timed on the host (the default).

        Raises:
            RuntimeError: a device runner that is not active.
        """
        return None

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name} must be activated before {what} (use it as a context manager)")

    # to implement --------------------------------------------------------------------------------
    def activate_impl(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def deactivate_impl(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def input_metadata(self) -> TensorMeta:  # pragma: no cover - interface
        """Input name -> (numpy dtype, shape); dynamic axes are None, a negative number or a name."""
        raise NotImplementedError

    def output_names(self) -> list[str]:  # pragma: no cover - interface
        """Names of the outputs `infer` returns, in order."""
        raise NotImplementedError
