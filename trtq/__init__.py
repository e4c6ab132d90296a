"""trtq: a trained PyTorch model to a fast, accurate INT8 TensorRT engine.

The public API is imported lazily so `import trtq` stays cheap and works without TensorRT.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "export_onnx": "trtq.export",
    "export_sample": "trtq.export",
    "load_data": "trtq.data",
    "Preprocess": "trtq.data",
    "OnnxRuntimeRunner": "trtq.runners.onnxrt",
    "PlacementConfig": "trtq.placement",
    "QDQPlan": "trtq.placement",
    "plan_qdq": "trtq.placement",
    "insert_qdq": "trtq.qdq",
    "to_strongly_typed": "trtq.precision",
    "quantize": "trtq.quantization",
    "QuantizeResult": "trtq.quantization",
    "build": "trtq.pipeline",
    "BuildResult": "trtq.pipeline",
    "calibrate": "trtq.calibration",
    "Calibration": "trtq.calibration",
    "choose_method": "trtq.calibration",
    "write_trt_cache": "trtq.calibration",
    "read_trt_cache": "trtq.calibration",
    "tensorrt_status": "trtq.engines",
    "EngineOptions": "trtq.engines",
    "build_engine": "trtq.engines",
    "TensorRTRunner": "trtq.runners.tensorrt",
    "bench": "trtq.benchmark",
    "BenchSettings": "trtq.benchmark",
    "analyze_sensitivity": "trtq.sensitivity",
    "choose_fallback": "trtq.sensitivity",
    "run_sensitivity": "trtq.sensitivity",
    "SensitivityResult": "trtq.sensitivity",
    "FallbackResult": "trtq.sensitivity",
    "qat": "trtq.qat",
    "build_from_qat": "trtq.qat",
    "QATResult": "trtq.qat",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'trtq' has no attribute {name!r}")
