"""Fake runners that record how they are driven (no ONNX Runtime, no GPU): a host runner and one with CUDA steps."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trtq.runners import BaseRunner, CudaSteps

__all__ = ["HostRunner", "CudaRunner"]


class HostRunner(BaseRunner):
    """A host runner: identity on `x` (N x 4, float32); counts `infer` calls."""

    backend = "fake-host"

    def __init__(self, name: str = "host", device: str = "cpu") -> None:
        super().__init__()
        self.name = name
        self.device = device
        self.infers = 0

    def activate_impl(self) -> None:
        pass

    def deactivate_impl(self) -> None:
        pass

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.infers += 1
        return {"y": np.asarray(feed["x"])}

    def input_metadata(self) -> dict:
        return {"x": (np.dtype(np.float32), ("N", 4))}

    def output_names(self) -> list[str]:
        return ["y"]


class CudaRunner(HostRunner):
    """A runner with CUDA steps (batch 1..4 in its profile); records each step it is asked to take."""

    backend = "fake-cuda"

    def __init__(self, name: str = "cuda") -> None:
        super().__init__(name, device="cuda")
        self.log: list[object] = []
        self.stream = object()

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return (1, 4), (2, 4), (4, 4)

    def cuda_steps(self) -> CudaSteps:
        return CudaSteps(
            bind=lambda feed: self.log.append(("bind", tuple(feed["x"].shape))),
            copy_inputs=lambda: self.log.append("copy_inputs"),
            enqueue=lambda: self.log.append("enqueue"),
            copy_outputs=lambda: self.log.append("copy_outputs"),
            stream=self.stream,
        )
