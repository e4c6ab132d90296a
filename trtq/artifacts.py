"""The names of every file trtq writes into a run folder (the one place they are spelled).

Stages write artifacts by these names through the run context (`trtq.pipeline.RunContext.write_*`); stage
commands map the names they produce onto the paths the user gave (`trtq quantize --out`, `--trt-out`, ...).
"""

from __future__ import annotations

__all__ = [
    "MODEL_ONNX",
    "SMOOTHQUANT_ONNX",
    "EQUALIZED_ONNX",
    "CALIBRATION_JSON",
    "CALIBRATION_CACHE",
    "INT8_ONNX",
    "TYPED_ONNX",
    "MIXED_ONNX",
    "PLACEMENT_JSON",
    "SENSITIVITY_JSON",
    "SENSITIVITY_PNG",
    "SENSITIVITY_MD",
    "TRADEOFF_PNG",
    "PLAN",
    "ENGINE_JSON",
    "ENGINE_LAYERS_JSON",
    "ENGINE_LOG",
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
    "DESCRIPTIONS",
    "describe",
]

MODEL_ONNX = "model.onnx"  #: FP32 export, the reference every later stage starts from
SMOOTHQUANT_ONNX = "model.smoothquant.onnx"  #: `--smoothquant`: the smoothed FP32 graph calibration ran on
EQUALIZED_ONNX = (
    "model.equalized.onnx"  #: `--weight-ptq equalize`: the equalised FP32 graph calibration ran on
)
CALIBRATION_JSON = "calibration.json"  #: amax per tensor per method, ranges, statistics
CALIBRATION_CACHE = "calibration.cache"  #: the chosen scales in TensorRT's calibration cache format
INT8_ONNX = "model.int8.onnx"  #: the Q/DQ graph, FP32 typed
TYPED_ONNX = "model.trt.onnx"  #: the Q/DQ graph, strongly typed INT8 + FP16
MIXED_ONNX = "model.mixed.onnx"  #: `trtq sensitivity`: the Q/DQ graph with the FP16 fallback applied
PLACEMENT_JSON = "placement.json"  #: `trtq quantize --plan-out`: the Q/DQ plan and every decision
SENSITIVITY_JSON = "sensitivity.json"
SENSITIVITY_PNG = "sensitivity.png"
SENSITIVITY_MD = "sensitivity.md"
TRADEOFF_PNG = (
    "tradeoff.png"  #: the fallback's metric against INT8 share of MACs, the Pareto front, the choice
)
PLAN = "model.plan"  #: the serialized TensorRT engine
ENGINE_JSON = "engine.json"
ENGINE_LAYERS_JSON = "engine.layers.json"
ENGINE_LOG = "engine.log"  #: TensorRT's log of the engine build (kept when the build fails)
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


#: What each artifact is for (report.md's Artifacts table).
DESCRIPTIONS = {
    MODEL_ONNX: "FP32 export: the reference every later stage starts from",
    SMOOTHQUANT_ONNX: "FP32 graph after SmoothQuant (same function): what calibration.json's tensors refer to",
    EQUALIZED_ONNX: "FP32 graph after cross-layer equalisation (same function): what calibration.json's tensors refer to",
    CALIBRATION_JSON: "amax per tensor for each method computed, the chosen method, FP16 ranges",
    CALIBRATION_CACHE: "the chosen scales of every float tensor as a TensorRT calibration cache (TensorRT 10 implicit INT8)",
    INT8_ONNX: "Q/DQ graph, FP32 typed: TensorRT 10 with INT8+FP16 builder flags, CPU checks",
    TYPED_ONNX: "Q/DQ graph, strongly typed INT8+FP16: TensorRT 10.12+ and 11",
    MIXED_ONNX: "Q/DQ graph with the FP16 fallback applied, FP32 typed",
    PLACEMENT_JSON: "the Q/DQ plan and the decision about every candidate node",
    SENSITIVITY_JSON: "per-layer sensitivity and the FP16 fallback choice",
    SENSITIVITY_PNG: "the most sensitive layers (chart)",
    SENSITIVITY_MD: "the sensitivity report",
    TRADEOFF_PNG: "FP16 fallback trade-off: metric against INT8 share of MACs, Pareto front, chosen set (chart)",
    PLAN: "the TensorRT engine (for this GPU model and TensorRT version)",
    ENGINE_JSON: "how the engine was built, its precision proof",
    ENGINE_LAYERS_JSON: "the engine inspector's per-layer JSON",
    ENGINE_LOG: "TensorRT's log of the engine build",
    BENCH_JSON: "engine latency percentiles and throughput",
    BENCH_PNG: "engine latency (chart)",
    REPORT_JSON: "everything in this report, machine-readable, with the configuration to repeat the run",
    REPORT_MD: "this report",
    QAT_CURVES_PNG: "QAT training curves",
}


def describe(name: str) -> str:
    """What an artifact is (a calibration histogram plot, by its prefix)."""
    if name.startswith(CALIB_PLOT_PREFIX) and name.endswith(".png"):
        return "activation histogram with each method's threshold"
    if name.endswith(".onnx.data"):
        return f"the weights of {name[: -len('.data')]} (ONNX external data: the model is over protobuf's 2 GB limit)"
    return DESCRIPTIONS.get(name, "")


def calib_plot_name(tensor: str) -> str:
    """The file name of a tensor's calibration histogram plot."""
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", tensor).strip("._") or "tensor"
    return f"{CALIB_PLOT_PREFIX}{slug[:80]}.png"
