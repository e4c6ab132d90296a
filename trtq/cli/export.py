"""`trtq export`: a model to the FP32 ONNX every later stage reads (model.onnx)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import add_model_args, add_preprocess_args, preprocess_from

NAME = "export"
HELP = "export a PyTorch model to FP32 ONNX (dynamic batch, BatchNorm folded, checked against PyTorch)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--out", "-o", default="model.onnx", help="ONNX file to write (default model.onnx)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--shape", help="C,H,W of one sample for the export and parity check (default: from "
                   "--sample-data, else the model's channels at 224x224)")  # fmt: skip
    p.add_argument(
        "--sample-data", help="image folder or .npy/.npz to take the export sample from (real data)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for random-init models and the random sample")
    add_preprocess_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.export import export_sample

    result = export_sample(
        args.model,
        args.out,
        shape=args.shape,
        sample_data=args.sample_data,
        preprocess=preprocess_from(args),
        opset=args.opset,
        weights=args.weights,
        checkpoint=args.checkpoint,
        trust_pickle=args.trust_pickle,
        seed=args.seed,
        force=args.force,
    )
    err = result.max_abs_error
    text = f"wrote {args.out}: {result.nodes} nodes, opset {result.opset}" + (
        "" if err is None else f", PyTorch vs ONNX Runtime max abs error {err:.3g}"
    )
    emit(args, {"out": args.out, **result.summary()}, text)
    return 0
