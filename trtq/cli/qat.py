"""`trtq qat`: fine-tune with fake quantization where PTQ puts Q/DQ, export model.qat.onnx, build from it.

Every option has `default=argparse.SUPPRESS`; the defaults live in `trtq.finetune.QATConfig` (its sections),
and the help texts below read them from there.
"""

from __future__ import annotations

import argparse
from typing import Any

from trtq.cli._common import emit, info
from trtq.cli._options import (
    S,
    add_engine_args,
    add_model_args,
    add_output_args,
    add_placement_args,
    add_preprocess_args,
    add_typing_args,
)

__all__ = ["NAME", "HELP", "DESCRIPTION", "NEVER", "add_arguments", "run", "summary_text"]

NAME = "qat"
HELP = "quantization-aware training: calibrate, fine-tune with Q/DQ, export model.qat.onnx, build from it"
DESCRIPTION = (
    "Wrap the model with INT8 fake quantizers on the layers trtq's PTQ quantizes (per-channel weights, "
    "per-tensor activations, initial ranges from --calib), fine-tune on labelled --train-data, keep the best "
    "epoch on --val-data, export model.qat.onnx with the same Q/DQ placement as PTQ, and continue into the "
    "build path (OUT/run: typed graph, engine where TensorRT is present, report.md with FP32/PTQ/QAT). "
    "Writes model.onnx, model.ptq.onnx, model.qat.onnx, metrics.json, training_curves.png and "
    "checkpoints/ into --out."
)

#: --freeze-bn-epoch never: an epoch no run reaches.
NEVER = 1 << 30


def _epoch_or_never(text: str) -> int:
    if text.lower() == "never":
        return NEVER
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an epoch number or 'never', got {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser, data: Any, train: Any) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--train-data", required=True, default=S,
                   help="labelled training data (class sub-folders, or .npz with x, y)")  # fmt: skip
    g.add_argument("--val-data", required=True, default=S,
                   help="labelled validation data (best epoch, FP32/PTQ/QAT comparison)")  # fmt: skip
    g.add_argument(
        "--calib-data", default=S, help="calibration data for the initial ranges (default: --train-data)"
    )
    g.add_argument("--calib-samples", type=int, default=S,
                   help=f"calibration subset size (default {data.calib_samples}; 0 = all)")  # fmt: skip
    g.add_argument(
        "--train-samples", type=int, default=S, help="reproducible training subset (default all; 0 = all)"
    )
    g.add_argument(
        "--val-samples", type=int, default=S, help="reproducible validation subset (default all; 0 = all)"
    )
    g.add_argument("--batch-size", type=int, default=S,
                   help=f"batch size for training, calibration and evaluation (default {train.batch_size})")  # fmt: skip
    g.add_argument(
        "--workers", type=int, default=S, help=f"data loading worker processes (default {train.workers})"
    )
    g.add_argument("--seed", type=int, default=S,
                   help=f"seed: the same seed (and --threads) reproduces the run bit for bit (default {train.seed})")  # fmt: skip


def _add_calibration_args(p: argparse.ArgumentParser, method: str) -> None:
    from trtq.calibrators import CALIBRATORS

    g = p.add_argument_group("calibration")
    methods = ", ".join(CALIBRATORS.names())
    aliases = ", ".join(f"{a} = {n}" for a, n in CALIBRATORS.aliases().items())
    g.add_argument("--calib", default=S, metavar="METHOD",
                   help=f"method for the initial activation ranges: {methods} ({aliases}); default {method}")  # fmt: skip
    g.add_argument("--calib-param", action="append", metavar="NAME=VALUE", default=S,
                   help="a parameter of the method (repeatable), e.g. num_bins=4096")  # fmt: skip
    g.add_argument("--percentile", type=float, default=S,
                   help="percentile for --calib percentile (default 99.99)")  # fmt: skip


def _add_training_args(p: argparse.ArgumentParser, t: Any, device: str) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs",
        type=int,
        default=S,
        help=f"QAT epochs (default {t.epochs}; 0 = export the calibrated model)",
    )
    g.add_argument("--lr", type=float, default=S, help="peak learning rate (default: --fp32-lr / 10)")
    g.add_argument("--fp32-lr", type=float, default=S,
                   help="the FP32 training rate (default 0.1 x batch/256 for SGD, 1e-3 for AdamW)")  # fmt: skip
    g.add_argument(
        "--optimizer", default=S, choices=["sgd", "adamw"], help=f"optimizer (default {t.optimizer})"
    )
    g.add_argument("--momentum", type=float, default=S, help=f"SGD momentum, Nesterov (default {t.momentum})")
    g.add_argument(
        "--weight-decay", type=float, default=S, help=f"weight decay, weights only (default {t.weight_decay})"
    )
    g.add_argument("--label-smoothing", type=float, default=S,
                   help=f"cross-entropy label smoothing (default {t.label_smoothing})")  # fmt: skip
    g.add_argument("--warmup-epochs", type=float, default=S,
                   help=f"linear warm-up before the cosine decay (default {t.warmup_epochs})")  # fmt: skip
    g.add_argument("--freeze-bn-epoch", type=_epoch_or_never, default=S,
                   help="freeze BatchNorm statistics from this epoch (default epochs // 2; 'never' keeps them moving)")  # fmt: skip
    g.add_argument("--quant-delay-epochs", type=int, default=S,
                   help=f"train this many epochs in FP32 before quantizing (default {t.quant_delay_epochs})")  # fmt: skip
    g.add_argument(
        "--grad-clip",
        type=float,
        default=S,
        help=f"max gradient norm (default {t.grad_clip}; 0 = no clipping)",
    )
    g.add_argument(
        "--device",
        default=S,
        help=f"auto (CUDA when present), cpu or cuda; mixed precision on CUDA (default {device})",
    )
    g.add_argument("--no-amp", action="store_true", default=S, help="no mixed precision on CUDA")
    g.add_argument("--threads", type=int, default=S, help="PyTorch CPU threads (default: PyTorch's choice)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from trtq.finetune.config import QATConfig

    base = QATConfig()
    add_model_args(p, required=True)
    add_output_args(p, what="QAT output folder to create")
    _add_data_args(p, base.data, base.train)
    _add_calibration_args(p, base.method)
    _add_training_args(p, base.train, base.device)
    add_preprocess_args(p)
    add_placement_args(p)
    g = p.add_argument_group("hand-off to the build path")
    g.add_argument(
        "--no-build", action="store_true", default=S, help="stop after model.qat.onnx (no OUT/run)"
    )
    add_typing_args(p)
    add_engine_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.finetune import QATConfig, qat

    config = QATConfig.from_args(args)
    result = qat(args.model, config.data.train_data, config.data.val_data, args.out, config=config,
                 progress=lambda line: info(args, line))  # fmt: skip
    emit(args, result.summary_json(), summary_text(result))
    return 0


def summary_text(result: Any) -> str:
    """The lines `trtq qat` prints: FP32/PTQ/QAT top-1, the export checks, where the results are."""
    lines = []
    acc = result.accuracy
    if acc is not None:
        for row, label in ((acc.fp32, "FP32"), (acc.ptq, "PTQ (calibrated, untrained)"), (acc.qat, "QAT")):
            agree = row.agreement_with_fp32
            extra = f"  agreement with FP32 {100 * agree:6.2f}%" if agree is not None else ""
            lines.append(f"{label.ljust(28)} top-1 {100 * row.top1:6.2f}%{extra}")
    ex = result.export_check
    if ex is not None:
        agree = ex.top1_agreement
        lines.append(
            "export check (torch fake-quant vs ONNX Runtime): "
            + (f"top-1 agreement {100 * agree:.2f}%, " if agree is not None else "")
            + f"max |logit error| {ex.max_abs_logit_error:.4g}"
        )
    if result.export is not None:
        lines.append(f"Q/DQ placement matches PTQ: {'yes' if result.export.placement.matches else 'NO'}")
    lines.append(f"QAT graph: {result.artifacts.get('model.qat.onnx')}")
    if result.build is not None:
        lines.append(f"engine: {result.build.engine_status}")
        lines.append(f"run folder: {result.build.out_dir} (report.md)")
    else:
        lines.append(f"next: trtq build --from-qat {result.artifacts.get('model.qat.onnx')} --eval-data ...")
    return "\n".join(lines)
