"""The names of every file trtq writes into a run folder (the one place they are spelled).

Stages write artifacts by these names through the run context (`trtq.pipeline.RunContext.write_*`); stage
commands map the names they produce onto the paths the user gave (`trtq quantize --out`, `--trt-out`, ...).
"""

from __future__ import annotations

__all__ = [
    "MODEL_ONNX",
    "CALIBRATION_JSON",
    "CALIBRATION_CACHE",
    "INT8_ONNX",
    "TYPED_ONNX",
    "MIXED_ONNX",
    "PLACEMENT_JSON",
    "SENSITIVITY_JSON",
    "SENSITIVITY_PNG",
    "SENSITIVITY_MD",
    "PLAN",
    "ENGINE_JSON",
    "ENGINE_LAYERS_JSON",
    "BENCH_JSON",
    "BENCH_PNG",
    "REPORT_JSON",
    "REPORT_MD",
    "QAT_ONNX",
    "PTQ_ONNX",
    "QAT_METRICS_JSON",
    "TRAINING_CURVES_PNG",
    "QAT_CURVES_PNG",
    "CHECKPOINTS_DIR",
    "QAT_RUN_DIR",
    "CALIB_PLOT_PREFIX",
    "calib_plot_name",
]

MODEL_ONNX = "model.onnx"  #: FP32 export, the reference every later stage starts from
CALIBRATION_JSON = "calibration.json"  #: amax per tensor per method, ranges, statistics
CALIBRATION_CACHE = "calibration.cache"  #: the chosen scales in TensorRT's calibration cache format
INT8_ONNX = "model.int8.onnx"  #: the Q/DQ graph, FP32 typed
TYPED_ONNX = "model.trt.onnx"  #: the Q/DQ graph, strongly typed INT8 + FP16
MIXED_ONNX = "model.mixed.onnx"  #: `trtq sensitivity`: the Q/DQ graph with the FP16 fallback applied
PLACEMENT_JSON = "placement.json"  #: `trtq quantize --plan-out`: the Q/DQ plan and every decision
SENSITIVITY_JSON = "sensitivity.json"
SENSITIVITY_PNG = "sensitivity.png"
SENSITIVITY_MD = "sensitivity.md"
PLAN = "model.plan"  #: the serialized TensorRT engine
ENGINE_JSON = "engine.json"
ENGINE_LAYERS_JSON = "engine.layers.json"
BENCH_JSON = "bench.json"
BENCH_PNG = "bench.png"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
QAT_ONNX = "model.qat.onnx"
PTQ_ONNX = "model.ptq.onnx"
QAT_METRICS_JSON = "metrics.json"
TRAINING_CURVES_PNG = "training_curves.png"
QAT_CURVES_PNG = "qat_curves.png"
CHECKPOINTS_DIR = "checkpoints"
QAT_RUN_DIR = "run"
CALIB_PLOT_PREFIX = "calib_"


def calib_plot_name(tensor: str) -> str:
    """The file name of a tensor's calibration histogram plot."""
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", tensor).strip("._") or "tensor"
    return f"{CALIB_PLOT_PREFIX}{slug[:80]}.png"
