"""Read a built engine: its I/O tensors, profiles and the engine inspector's JSON (needs a GPU)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from trtq.engines import compat
from trtq.errors import TrtqError

__all__ = ["deserialize", "describe_io", "inspect_plan"]


def deserialize(
    plan: bytes, trt: ModuleType | None = None, *, host_code_allowed: bool = False
) -> _EngineHolder:
    """Deserialize a plan; returns the ICudaEngine (`.engine`) with its Runtime; `TrtqError` when refused.

    TensorRT's plugin library is registered first (a fresh process has not done it, and a plan with a plugin
    layer cannot be loaded without it); `host_code_allowed` lets a version-compatible engine run the lean
    runtime embedded in it.
    """
    trt = trt or compat.import_tensorrt()
    compat.require_gpu(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    runtime = trt.Runtime(logger)
    if runtime is None:
        raise TrtqError(f"TensorRT {trt.__version__} could not create a runtime (no usable GPU?)")
    if host_code_allowed:  # version-compatible engines embed a lean runtime
        runtime.engine_host_code_allowed = True
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        hint = (
            "" if host_code_allowed else " (a version-compatible engine also needs its engine.json beside it)"
        )
        raise TrtqError(
            f"TensorRT {trt.__version__} could not load the engine (built by another TensorRT version or for "
            f"another GPU?{hint}); rebuild it on this machine with trtq engine"
        )
    return _EngineHolder(engine, runtime)


class _EngineHolder:
    """An ICudaEngine with the Runtime that created it (TensorRT needs the runtime to outlive the engine)."""

    def __init__(self, engine: Any, runtime: Any) -> None:
        self.engine = engine
        self.runtime = runtime


def describe_io(engine: Any, trt: ModuleType | None = None) -> list[dict[str, Any]]:
    """Name, mode, dtype, shape (and per-profile min/opt/max for inputs) of every I/O tensor."""
    trt = trt or compat.import_tensorrt()
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = [int(d) for d in engine.get_tensor_shape(name)]
        item: dict[str, Any] = {
            "name": name,
            "mode": "input" if is_input else "output",
            "dtype": str(engine.get_tensor_dtype(name).name).lower(),
            "shape": shape,
        }
        if is_input and any(d < 0 for d in shape):
            item["profiles"] = [
                [[int(d) for d in dims] for dims in engine.get_tensor_profile_shape(name, p)]
                for p in range(engine.num_optimization_profiles)
            ]
        out.append(item)
    return out


def inspect_plan(
    plan: bytes, shapes: Mapping[str, tuple[int, ...]], *, host_code_allowed: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Engine inspector JSON (with an execution context at `shapes`, so formats are resolved) and I/O tensors.

    Args:
        plan: the serialized engine.
        shapes: input name -> shape to set on the execution context (the profile's opt shapes).
        host_code_allowed: allow a version-compatible engine's embedded lean runtime.
    """
    trt = compat.import_tensorrt()
    holder = deserialize(plan, trt, host_code_allowed=host_code_allowed)
    engine = holder.engine
    io = describe_io(engine, trt)
    context = engine.create_execution_context()
    if context is None:
        raise TrtqError("TensorRT could not create an execution context for the engine (out of GPU memory?)")
    input_names = {t["name"] for t in io if t["mode"] == "input"}
    for name, shape in shapes.items():
        if name in input_names and not context.set_input_shape(name, tuple(shape)):
            raise TrtqError(f"TensorRT refused shape {tuple(shape)} for input {name!r} of the engine")
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    try:
        info = json.loads(text)
    except json.JSONDecodeError as e:
        raise TrtqError(f"the engine inspector returned text that is not JSON ({e})") from None
    del inspector, context
    return info, io
