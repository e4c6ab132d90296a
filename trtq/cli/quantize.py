"""`trtq quantize`: an FP32 ONNX model + calibration.json -> the Q/DQ model (and the strongly typed one)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import S, add_model_args, add_placement_args, add_typing_args, config_from_args

NAME = "quantize"
HELP = "insert Q/DQ where TensorRT fuses them (ONNX + calibration.json -> model.int8.onnx [+ model.trt.onnx])"
DESCRIPTION = (
    "Plan where Q/DQ go (inputs of Conv/Gemm/MatMul, residual Add inputs, pooling in INT8 chains, shared "
    "Concat scales; tiny convs and matrix-vector products stay high precision), insert them with the "
    "calibrated scales (per-channel weights, per-tensor activations, symmetric INT8) and write "
    "model.int8.onnx (FP32 typed). --trt-out also writes the strongly typed graph for TensorRT 10.12+/11: "
    "everything outside INT8 typed FP16 (FP32 where calibration saw FP16 overflow), graph I/O FP32."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, onnx_only=True)
    p.add_argument("--calibration", "-c", required=True, help="calibration.json from trtq calibrate")
    p.add_argument(
        "--out", "-o", default="model.int8.onnx", help="Q/DQ model to write (default model.int8.onnx)"
    )
    p.add_argument("--trt-out", help="also write the strongly typed FP16+INT8 model here (model.trt.onnx)")
    p.add_argument("--plan-out", help="also write the placement plan and per-node decisions as JSON")
    p.add_argument("--method", help="calibration method to use (default: the one chosen in the file)")
    p.add_argument("--force", action="store_true", default=S, help="overwrite existing output files")
    add_typing_args(p, keep=True, switch=False)
    add_placement_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.pipeline.commands import quantize_files

    ctx = quantize_files(config_from_args(args), args.calibration, args.out, trt_out=args.trt_out,
                         plan_out=args.plan_out, method=args.method)  # fmt: skip
    pl, written = ctx.result.placement, [str(p) for p in ctx.result.artifacts.values()]
    lines = [
        f"quantized {pl.quantized_nodes} layers: {pl.activation_qdq} activation and {pl.weight_qdq} weight Q/DQ "
        f"pairs (thresholds: {ctx.calibration.method})",
        f"kept in high precision: {len(pl.skipped)} candidate nodes (see --plan-out or --json)",
        *[f"wrote {p}" for p in written],
    ]
    emit(args, {**pl.to_json(), "method": ctx.calibration.method, "outputs": written}, "\n".join(lines))
    return 0
