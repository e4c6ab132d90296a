"""TensorRT engines: build, prove precision, run (TensorRT 10.x and 11.x).

Importing this package never imports TensorRT: `tensorrt` is imported lazily, inside the functions
that need it, through `trtq.engines.compat` (the only module that knows TensorRT versions).

Public API:
    tensorrt_status() -> (available, one-line reason)
    EngineOptions
    build_engine(onnx, options=None, *, typed=None) -> bytes
    engine_stage(run_dir, trt_onnx, int8_onnx, options, expected_int8_layers=None) -> dict
    build_engine_file(onnx, out, options=None, ...) -> dict
    TensorRTRunner
    precision_summary / check_precision / graph_expectations (the precision proof, no TensorRT needed)
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "tensorrt_status": "trtq.engines.compat",
    "EngineOptions": "trtq.engines.options",
    "parse_batch": "trtq.engines.options",
    "parse_shapes": "trtq.engines.options",
    "compute_profile": "trtq.engines.profiles",
    "build_engine": "trtq.engines.build",
    "build_engine_info": "trtq.engines.build",
    "choose_graph": "trtq.engines.build",
    "EngineBuild": "trtq.engines.build",
    "engine_stage": "trtq.engines.stage",
    "build_engine_file": "trtq.engines.stage",
    "TensorRTRunner": "trtq.runners.tensorrt",
    "precision_summary": "trtq.engines.precision",
    "check_precision": "trtq.engines.precision",
    "graph_expectations": "trtq.engines.precision",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'trtq.engines' has no attribute {name!r}")
