"""`trtq validate`: compare a candidate artifact with a reference on the same data (Polygraphy Comparator)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import S, add_preprocess_args, add_task_args, config_from_args

NAME = "validate"
HELP = "compare an engine or ONNX with a reference (e.g. FP32 ONNX) on data: output error, top-1, pass/fail"
DESCRIPTION = (
    "Run --model and --reference on the same inputs through Polygraphy's Comparator. .onnx files run in ONNX "
    "Runtime on the CPU (Q/DQ executed as written); .plan/.engine files run in TensorRT on the GPU. Reports "
    "per-output error, cosine similarity, top-1 agreement (and top-1/top-5 accuracy when the data has "
    "labels) and exits 1 when the outputs differ beyond --rtol/--atol."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, dest="candidate", help="candidate: .plan/.engine or .onnx")
    p.add_argument("--reference", "-r", required=True, help="reference: usually the FP32 model.onnx")
    p.add_argument("--data", "-d", required=True, dest="eval_data", default=S,
                   help="image folder (class sub-folders give labels) or .npy/.npz")  # fmt: skip
    p.add_argument(
        "--samples", type=int, dest="eval_samples", default=S, help="reproducible subset (0 = all)"
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="batch size (within the engine's profile; default 8)"
    )
    p.add_argument("--rtol", type=float, default=S, help="relative tolerance (default 0.05)")
    p.add_argument("--atol", type=float, default=S, help="absolute tolerance (default 0.05)")
    p.add_argument("--check-error-stat", default=S, choices=["elemwise", "max", "mean", "median", "quantile"],
                   help="which error statistic must be within tolerance (Polygraphy; default median)")  # fmt: skip
    p.add_argument("--out", "-o", dest="result_out", help="write the result as JSON to this file")
    p.add_argument("--force", action="store_true", default=S, help="overwrite --out")
    p.add_argument("--seed", type=int, default=S)
    add_preprocess_args(p)
    add_task_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.pipeline.commands import validate_files

    doc = validate_files(config_from_args(args), args.candidate, args.reference, out=args.result_out)
    lines = [f"{doc['model']} vs {doc['reference_artifact']} on {doc['samples']} samples"]
    for name, m in doc["outputs"]["candidate"].items():
        lines.append(f"  {name}: max abs {m['max_abs_error']:.4g}, median abs {m['median_abs_error']:.4g}, "
                     f"cosine {m['cosine_similarity']:.5f}")  # fmt: skip
    lines += [f"  {k}: {v:.6g}" for k, v in doc["models"]["candidate"].items()]
    tol = doc["polygraphy"]
    lines.append(f"{'PASS' if doc['pass'] else 'FAIL'} at rtol {tol['rtol']}, atol {tol['atol']} "
                 f"({tol['check_error_stat']} error)")  # fmt: skip
    emit(args, doc, "\n".join(lines))
    return 0 if doc["pass"] else 1
