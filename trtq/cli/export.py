"""`trtq export`: a model to the FP32 ONNX every later stage reads (model.onnx)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import S, add_model_args, add_preprocess_args, config_from_args

NAME = "export"
HELP = "export a PyTorch model to FP32 ONNX (dynamic batch, BatchNorm folded, checked against PyTorch)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, required=True)
    p.add_argument("--out", "-o", default="model.onnx", help="ONNX file to write (default model.onnx)")
    p.add_argument("--force", action="store_true", default=S, help="overwrite an existing --out file")
    p.add_argument("--shape", help="C,H,W of one sample for the export and parity check (default: from "
                   "--sample-data, else the model's channels at 224x224)")  # fmt: skip
    p.add_argument("--sample-data", dest="calib_data", default=S,
                   help="image folder or .npy/.npz to take the export sample from (real data)")  # fmt: skip
    p.add_argument("--seed", type=int, default=S, help="seed for random-init models and the random sample")
    add_preprocess_args(p)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from trtq.pipeline.commands import export_file

    cfg = config_from_args(args)
    cfg = replace(cfg, data=replace(cfg.data, calib_samples=None))  # the first two samples, as given
    exported = export_file(cfg, args.out, shape=args.shape).export
    err = exported.max_abs_error
    text = f"wrote {args.out}: {exported.nodes} nodes, opset {exported.opset}" + (
        "" if err is None else f", PyTorch vs ONNX Runtime max abs error {err:.3g}"
    )
    emit(args, {"out": args.out, **exported.summary()}, text)
    return 0
