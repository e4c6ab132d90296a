"""`trtq quantize`: an FP32 ONNX model + calibration.json -> the Q/DQ model (and the strongly typed one)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import add_placement_args, names, placement_from

NAME = "quantize"
HELP = "insert Q/DQ where TensorRT fuses them (ONNX + calibration.json -> model.int8.onnx [+ model.trt.onnx])"
DESCRIPTION = (
    "Plan where Q/DQ go (inputs of Conv/Gemm/MatMul, residual Add inputs, pooling in INT8 chains, shared "
    "Concat scales; tiny convs and matrix-vector products stay high precision), insert them with the "
    "calibrated scales (per-channel weights, per-tensor activations, symmetric INT8) and write "
    "model.int8.onnx (FP32 typed). --trt-out also writes the strongly typed graph for TensorRT 10.12+/11: "
    "everything outside INT8 typed FP16, graph inputs and outputs FP32."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="the FP32 .onnx model")
    p.add_argument("--calibration", "-c", required=True, help="calibration.json from trtq calibrate")
    p.add_argument(
        "--out", "-o", default="model.int8.onnx", help="Q/DQ model to write (default model.int8.onnx)"
    )
    p.add_argument("--trt-out", help="also write the strongly typed FP16+INT8 model here (model.trt.onnx)")
    p.add_argument("--plan-out", help="also write the placement plan and per-node decisions as JSON")
    p.add_argument("--method", help="calibration method to use (default: the one chosen in the file)")
    p.add_argument(
        "--keep-fp32", action="append", metavar="NAME_OR_REGEX", help="nodes the typed model keeps FP32"
    )
    p.add_argument(
        "--keep-fp32-op-type", action="append", metavar="OP", help="op types the typed model keeps FP32"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_placement_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.quantization import quantize_files

    result = quantize_files(
        args.model,
        args.calibration,
        args.out,
        trt_out=args.trt_out,
        plan_out=args.plan_out,
        force=args.force,
        config=placement_from(args),
        method=args.method,
        keep_fp32_nodes=names(args.keep_fp32),
        keep_fp32_op_types=names(args.keep_fp32_op_type),
    )
    s = result.summary()
    written = [p for p in (args.out, args.trt_out, args.plan_out) if p]
    lines = [
        f"quantized {s['quantized_nodes']} layers: {s['activation_qdq']} activation and {s['weight_qdq']} weight "
        f"Q/DQ pairs" + (f" (thresholds: {s['method']})" if s["method"] else ""),
        f"kept in high precision: {len(s['high_precision'])} candidate nodes (see --plan-out or --json)",
        *[f"wrote {p}" for p in written],
    ]
    emit(args, {**s, "outputs": written}, "\n".join(lines))
    return 0
