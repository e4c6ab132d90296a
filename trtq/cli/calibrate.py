"""`trtq calibrate`: an FP32 ONNX model + calibration data -> calibration.json (and a TensorRT cache)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import (
    S,
    add_calibration_args,
    add_data_args,
    add_model_args,
    add_placement_args,
    add_preprocess_args,
    config_from_args,
    version_triple,
)

NAME = "calibrate"
HELP = "compute per-tensor INT8 thresholds (every registered method) from one pass of the data"
DESCRIPTION = (
    "Run the FP32 ONNX model once over the calibration data and write calibration.json with each method's amax "
    "per activation tensor, the FP16 ranges the typed graph needs, and histogram statistics. --calib all "
    "computes every registered method from the same pass and keeps the most faithful one on --eval-data (or on "
    "the calibration data without it). Optionally writes a TensorRT calibration cache and threshold plots."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, onnx_only=True)
    add_data_args(p)
    p.add_argument("--tensors", default="auto",
                   help="'auto' (activations the Q/DQ placement quantizes) or comma-separated tensor names")  # fmt: skip
    add_calibration_args(p)
    p.add_argument("--out", "-o", default="calibration.json", help="calibration.json to write")
    p.add_argument("--force", action="store_true", default=S, help="overwrite existing output files")
    p.add_argument("--trt-cache", help="also write a TensorRT calibration cache file here")
    p.add_argument(
        "--trt-version", type=version_triple, default=S, help="TensorRT version in the cache header"
    )
    p.add_argument("--plots", help="folder for histogram plots of the tensors where methods disagree most")
    add_preprocess_args(p)
    add_placement_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.pipeline.commands import calibrate_files

    cfg = config_from_args(args)
    ctx = calibrate_files(cfg, args.out, trt_cache=args.trt_cache, plots=args.plots, tensors=args.tensors)
    cal = ctx.calibration
    lines = [f"calibrated {len(cal.tensors)} tensors with {', '.join(cal.methods)}; chosen: {cal.method}"]
    lines += [
        f"  {m:10s} " + "  ".join(f"{k} {v:.6g}" for k, v in s.items()) for m, s in (cal.scores or {}).items()
    ]
    lines += [f"warning: {w}" for w in cal.warnings]
    lines += [f"wrote {p}" for p in ctx.result.artifacts.values()]
    payload = {"out": args.out, "trt_cache": args.trt_cache, "method": cal.method, "methods": cal.methods,
               "tensors": len(cal.tensors), "scores": cal.scores, "warnings": cal.warnings}  # fmt: skip
    emit(args, payload, "\n".join(lines))
    return 0
