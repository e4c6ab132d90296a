"""`trtq build`: model + calibration data -> INT8 Q/DQ ONNX (+ typed graph, engine with TensorRT) + report."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit, summary_text
from trtq.cli._options import (
    S,
    add_calibration_args,
    add_data_args,
    add_engine_args,
    add_fallback_args,
    add_model_args,
    add_output_args,
    add_placement_args,
    add_preprocess_args,
    add_task_args,
    add_typing_args,
    add_weights_args,
    config_from_args,
)

NAME = "build"
HELP = "export, calibrate, quantize, validate (and build the engine where TensorRT is present)"
DESCRIPTION = (
    "Build a TensorRT-ready INT8 ONNX from a PyTorch model and calibration data, validated against FP32 in "
    "ONNX Runtime. Writes model.onnx, calibration.json, model.int8.onnx, model.trt.onnx, "
    "report.json and report.md into --out; with TensorRT and a GPU also model.plan and engine.json. "
    "--config run/report.json repeats a recorded run (options given here override it)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--config", default=S, metavar="JSON", help="repeat a run: its report.json (or a recipe.json)"
    )
    p.add_argument("--from-qat", default=S, metavar="MODEL_QAT_ONNX",
                   help="continue from `trtq qat`'s model.qat.onnx instead of calibrating (needs --eval-data)")  # fmt: skip
    p.add_argument(
        "--fp32-onnx", default=S, help="with --from-qat: the FP32 reference (default: model.onnx beside it)"
    )
    add_output_args(p)
    add_calibration_args(p, cache=True, smoothquant=True)
    add_data_args(p)
    add_preprocess_args(p)
    add_task_args(p)
    add_placement_args(p)
    add_weights_args(p)
    add_fallback_args(p)
    add_typing_args(p)
    add_engine_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.pipeline import run_build

    result = run_build(config_from_args(args))
    emit(args, result.to_json(), summary_text(result))
    if getattr(args, "quiet", False) and not getattr(args, "json", False):
        import sys

        for w in result.warnings:  # --quiet silences the summary, not what a careful user must read
            print(f"trtq build: warning: {w}", file=sys.stderr)
    return 0
