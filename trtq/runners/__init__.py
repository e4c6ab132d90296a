"""Ways to run a graph behind one small interface (the shape of Polygraphy's runners).

A runner is activated (as a context manager), fed a dict of named numpy arrays, and returns a dict of
named numpy arrays. `make_runner(artifact)` picks the runner for a file or model: ONNX Runtime for ONNX
(always available, on the CPU), TensorRT for serialized engines (GPU). `TensorRTRunner` is loaded on
first use, so `import trtq.runners` imports neither torch nor TensorRT.

Public API:
    BaseRunner, CudaSteps, TensorMeta (trtq.runners.base)
    OnnxRuntimeRunner, QDQ_FUSION_OPTIMIZERS, expose_tensors, PartRunner, OUTPUT_BUDGET (trtq.runners.onnxrt)
    TensorRTRunner (trtq.runners.tensorrt, lazy)
    make_runner(artifact, *, threads=None, name=None, **kwargs), ONNX_SUFFIXES, ENGINE_SUFFIXES
"""

from __future__ import annotations

import importlib
from typing import Any

from trtq.runners.base import BaseRunner, CudaSteps, TensorMeta
from trtq.runners.factory import ENGINE_SUFFIXES, ONNX_SUFFIXES, make_runner
from trtq.runners.onnxrt import (
    OUTPUT_BUDGET,
    QDQ_FUSION_OPTIMIZERS,
    OnnxRuntimeRunner,
    PartRunner,
    expose_tensors,
)

__all__ = [
    "BaseRunner",
    "CudaSteps",
    "TensorMeta",
    "OnnxRuntimeRunner",
    "QDQ_FUSION_OPTIMIZERS",
    "expose_tensors",
    "PartRunner",
    "OUTPUT_BUDGET",
    "TensorRTRunner",
    "make_runner",
    "ONNX_SUFFIXES",
    "ENGINE_SUFFIXES",
]

#: names loaded on first access (their modules import torch / TensorRT when used)
_LAZY = {"TensorRTRunner": "trtq.runners.tensorrt"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trtq.runners' has no attribute {name!r}")
