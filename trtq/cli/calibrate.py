"""`trtq calibrate`: an FP32 ONNX model + calibration data -> calibration.json (and a TensorRT cache)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import add_placement_args, add_preprocess_args, placement_from, preprocess_from
from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION

NAME = "calibrate"
HELP = "compute per-tensor INT8 thresholds (entropy, minmax, percentile, mse) from one pass of the data"
DESCRIPTION = (
    "Run the FP32 ONNX model once over the calibration data and write calibration.json with each method's "
    "amax per activation tensor (scale = amax / 127) and histogram statistics. --calib all computes the four "
    "methods from the same pass; with --eval-data the most faithful one (output cosine similarity to FP32) "
    "is chosen. Optionally writes a TensorRT calibration cache (trtexec --calib) and threshold plots."
)


def _version(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected MAJOR.MINOR.PATCH, got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="the FP32 .onnx model")
    p.add_argument("--calib-data", required=True, help="image folder or .npy/.npz (N,C,H,W)")
    p.add_argument(
        "--calib-samples", type=int, default=512, help="reproducible subset size (default 512; 0 = all)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="batch size of the calibration pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets")
    p.add_argument(
        "--tensors",
        default="auto",
        help="'auto' (activations the Q/DQ placement quantizes) or comma-separated tensor names",
    )
    p.add_argument(
        "--calib",
        default="entropy",
        help="entropy, minmax (max), percentile, mse, all, or a comma-separated list (default entropy)",
    )
    p.add_argument("--percentile", type=float, default=99.99, help="percentile for the percentile method")
    p.add_argument("--eval-data", help="held-out data to choose the most faithful method (with several)")
    p.add_argument("--eval-samples", type=int, default=0, help="subset of the held-out data (0 = all)")
    p.add_argument("--out", "-o", default="calibration.json", help="calibration.json to write")
    p.add_argument("--trt-cache", help="also write a TensorRT calibration cache file here")
    p.add_argument(
        "--trt-version",
        type=_version,
        default=DEFAULT_CACHE_VERSION,
        help="TensorRT version in the cache header",
    )
    p.add_argument("--plots", help="folder for histogram plots of the tensors where methods disagree most")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_preprocess_args(p)
    add_placement_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.calibration import calibrate_model

    cal = calibrate_model(
        args.model,
        args.calib_data,
        args.out,
        methods=[m.strip() for m in args.calib.split(",") if m.strip()],
        tensors=args.tensors,
        placement=placement_from(args),
        preprocess=preprocess_from(args),
        limit=args.calib_samples or None,
        batch_size=args.batch_size,
        seed=args.seed,
        eval_data=args.eval_data,
        eval_limit=args.eval_samples or None,
        percentile=args.percentile,
        trt_cache=args.trt_cache,
        trt_version=args.trt_version,
        plots=args.plots,
        force=args.force,
    )
    lines = [f"calibrated {len(cal.tensors)} tensors with {', '.join(cal.methods)}; chosen: {cal.method}"]
    if cal.scores:
        for m, s in cal.scores.items():
            lines.append(f"  {m:10s} cosine {s['cosine']:.6f}  mse {s['mse']:.3g}")
    lines += [f"warning: {w}" for w in cal.warnings]
    lines.append(f"wrote {args.out}" + (f" and {args.trt_cache}" if args.trt_cache else ""))
    payload = {
        "out": args.out,
        "trt_cache": args.trt_cache,
        "method": cal.method,
        "methods": cal.methods,
        "tensors": len(cal.tensors),
        "scores": cal.scores,
        "warnings": cal.warnings,
    }
    emit(args, payload, "\n".join(lines))
    return 0
