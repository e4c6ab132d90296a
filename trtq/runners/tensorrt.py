"""TensorRT runner behind the same interface as the ONNX Runtime runner.

Device buffers are torch CUDA tensors (torch is already a dependency; no pycuda). Inference runs on a
non-default CUDA stream that the runner owns. Besides `infer`, the runner hands the benchmark the steps
it times separately (`cuda_steps()`): `bind` (shapes, buffers, addresses), `copy_inputs` /
`copy_outputs` (host <-> device through pinned memory) and `enqueue` (execute_async_v3 only).

Importing this module imports neither tensorrt nor torch: both are imported in `activate`, tensorrt
through `trtq.engines.compat` (the only module that imports it). Written against the TensorRT 10/11
Python API without a GPU here: the names it uses are checked against the real bindings
(tests/test_engines_contract.py scans this file); its behaviour is exercised only by
scripts/gpu_smoke.sh on a machine with a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trtq.engines import compat
from trtq.errors import TensorRTUnavailable, TrtqError, UsageError
from trtq.runners.base import BaseRunner, CudaSteps, TensorMeta

__all__ = ["TensorRTRunner", "TORCH_DTYPES", "NUMPY_DTYPES"]

#: TensorRT DataType name (lower case) -> torch dtype attribute name.
TORCH_DTYPES = {
    "float": "float32",
    "half": "float16",
    "bf16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int32": "int32",
    "int64": "int64",
    "bool": "bool",
    "fp8": "float8_e4m3fn",
}
#: TensorRT DataType name (lower case) -> numpy dtype for host arrays (bf16/fp8 hosts get float32).
NUMPY_DTYPES = {
    "float": np.float32,
    "half": np.float16,
    "bf16": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
    "fp8": np.float32,
}


class TensorRTRunner(BaseRunner):
    """Run a serialized TensorRT engine on a CUDA GPU.

    Args:
        engine: plan bytes or a path to a .plan/.engine file.
        profile: optimisation profile index to run with.
        device: CUDA device index (the `device` attribute, as for every runner, names the kind: "cuda").
        host_code_allowed: allow a version-compatible engine's embedded lean runtime; None (the default): allow it
            for an engine file whose trtq engine.json beside it records `--version-compat`
            (`trtq.engines.metadata.recorded_version_compatible`).
        name: runner name in comparisons and benchmarks.
    """

    backend = "tensorrt"
    device = "cuda"

    def __init__(
        self,
        engine: str | os.PathLike | bytes,
        *,
        profile: int = 0,
        device: int = 0,
        host_code_allowed: bool | None = None,
        name: str = "tensorrt",
    ) -> None:
        super().__init__()
        self.name = name
        self._source = engine
        self._profile = int(profile)
        self._device_index = int(device)
        self._host_code_allowed = host_code_allowed
        self._holder: Any = None
        self._torch: Any = None
        self._device: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.stream: Any = None
        self._io: list[dict[str, Any]] = []
        self._buffers: dict[str, Any] = {}
        self._pinned: dict[str, Any] = {}

    # lifecycle -----------------------------------------------------------------------------------
    def _plan_bytes(self) -> bytes:
        if isinstance(self._source, (bytes, bytearray)):
            return bytes(self._source)
        path = Path(self._source)
        if not path.is_file():
            raise UsageError(f"engine file {path} does not exist")
        return path.read_bytes()

    def host_code_allowed(self) -> bool:
        """Whether the engine may run host code: as given, else what trtq's engine.json beside the file records."""
        if self._host_code_allowed is not None:
            return bool(self._host_code_allowed)
        from trtq.engines.metadata import recorded_version_compatible

        return isinstance(self._source, (str, os.PathLike)) and recorded_version_compatible(self._source)

    def activate_impl(self) -> None:
        trt = compat.import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise TensorRTUnavailable(
                "no CUDA GPU is visible (torch.cuda.is_available() is False); engines need one"
            )
        from trtq.engines.inspect import describe_io, deserialize

        self._torch = torch
        self._device = torch.device("cuda", self._device_index)
        torch.cuda.set_device(self._device)
        allowed = self._host_code_allowed
        if allowed is None:
            from trtq.engines.metadata import recorded_version_compatible

            allowed = isinstance(self._source, (str, os.PathLike)) and recorded_version_compatible(
                self._source
            )
        self._holder = deserialize(self._plan_bytes(), trt, host_code_allowed=allowed)
        self.engine = self._holder.engine
        if not 0 <= self._profile < max(1, self.engine.num_optimization_profiles):
            raise UsageError(
                f"profile {self._profile} does not exist; the engine has {self.engine.num_optimization_profiles}"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TrtqError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = torch.cuda.Stream(device=self._device)
        if self._profile:
            self.context.set_optimization_profile_async(self._profile, self.stream.cuda_stream)
            self.stream.synchronize()
        self._io = describe_io(self.engine, trt)
        self._buffers, self._pinned = {}, {}

    def deactivate_impl(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()
        self._buffers, self._pinned = {}, {}
        self.context = None
        self.engine = None
        self._holder = None
        self.stream = None

    # metadata ------------------------------------------------------------------------------------
    def input_metadata(self) -> TensorMeta:
        assert self.engine is not None, "activate the runner first"
        return {
            t["name"]: (np.dtype(NUMPY_DTYPES.get(t["dtype"], np.float32)), tuple(t["shape"]))
            for t in self._io
            if t["mode"] == "input"
        }

    def output_names(self) -> list[str]:
        assert self.engine is not None, "activate the runner first"
        return [t["name"] for t in self._io if t["mode"] == "output"]

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
        """(min, opt, max) shape of a dynamic input in the active profile, None when static."""
        for t in self._io:
            if t["name"] == name and t.get("profiles"):
                mn, opt, mx = t["profiles"][self._profile]
                return tuple(mn), tuple(opt), tuple(mx)
        return None

    # the steps -----------------------------------------------------------------------------------
    def cuda_steps(self) -> CudaSteps:
        """The steps the benchmark times with CUDA events on the runner's stream.

        Raises:
            RuntimeError: the runner is not active (there is no stream yet).
        """
        self._require_active("cuda_steps()")
        return CudaSteps(
            bind=self.bind,
            copy_inputs=self.copy_inputs,
            enqueue=self.enqueue,
            copy_outputs=self.copy_outputs,
            stream=self.stream,
        )

    def _dtype(self, t: Mapping[str, Any]) -> Any:
        return getattr(self._torch, TORCH_DTYPES.get(t["dtype"], "float32"))

    def bind(self, feed: Mapping[str, np.ndarray]) -> None:
        """Set input shapes, (re)allocate device buffers, set every tensor address, copy the inputs in."""
        torch = self._torch
        inputs = [t for t in self._io if t["mode"] == "input"]
        missing = [t["name"] for t in inputs if t["name"] not in feed]
        if missing:
            raise UsageError(
                f"missing input(s) {', '.join(missing)}; the engine takes {', '.join(t['name'] for t in inputs)}"
            )
        with torch.cuda.stream(self.stream):
            for t in inputs:
                name = t["name"]
                host = np.ascontiguousarray(feed[name], dtype=NUMPY_DTYPES.get(t["dtype"], np.float32))
                if not self.context.set_input_shape(name, tuple(host.shape)):
                    rng = self.profile_range(name)
                    allowed = f"; the profile allows {rng[0]} to {rng[2]}" if rng else ""
                    raise UsageError(
                        f"input {name!r} of shape {tuple(host.shape)} does not fit the engine{allowed}"
                    )
                buf = self._buffer(name, tuple(host.shape), self._dtype(t))
                self._pinned[name] = torch.from_numpy(host).pin_memory()
                buf.copy_(self._pinned[name], non_blocking=True)
                self.context.set_tensor_address(name, buf.data_ptr())
            for t in self._io:
                if t["mode"] != "output":
                    continue
                name = t["name"]
                shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise TrtqError(
                        f"output {name!r} has a data-dependent shape {shape}; trtq's runner does not support it"
                    )
                buf = self._buffer(name, shape, self._dtype(t))
                self._pinned[name] = torch.empty(shape, dtype=buf.dtype, pin_memory=True)
                self.context.set_tensor_address(name, buf.data_ptr())
        self.stream.synchronize()

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != shape or buf.dtype != dtype:
            buf = self._torch.empty(shape, dtype=dtype, device=self._device)
            self._buffers[name] = buf
        return buf

    def copy_inputs(self) -> None:
        """Enqueue host -> device copies of the bound inputs (pinned memory, asynchronous on the stream)."""
        with self._torch.cuda.stream(self.stream):
            for t in self._io:
                if t["mode"] == "input":
                    self._buffers[t["name"]].copy_(self._pinned[t["name"]], non_blocking=True)

    def copy_outputs(self) -> None:
        """Enqueue device -> host copies of the outputs into pinned memory (asynchronous on the stream)."""
        with self._torch.cuda.stream(self.stream):
            for t in self._io:
                if t["mode"] == "output":
                    self._pinned[t["name"]].copy_(self._buffers[t["name"]], non_blocking=True)

    def enqueue(self) -> None:
        """Enqueue one inference on the runner's stream (no copies, no synchronisation)."""
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TrtqError("TensorRT execute_async_v3 failed; see the TensorRT log")

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.bind(feed)
        self.enqueue()
        self.copy_outputs()
        self.stream.synchronize()
        out = {}
        for name in self.output_names():
            host = self._pinned[name]
            if host.dtype in (self._torch.bfloat16, getattr(self._torch, "float8_e4m3fn", None)):
                host = host.float()
            out[name] = host.numpy().copy()
        return out
