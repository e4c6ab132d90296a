"""`trtq qat`: fine-tune with fake quantization where PTQ puts Q/DQ, export model.qat.onnx, build from it."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit, info
from trtq.cli._options import add_model_args, add_placement_args, add_preprocess_args, config_from_args

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, required=True)
    p.add_argument("--out", "-o", required=True, help="output folder to create")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    g = p.add_argument_group("data")
    g.add_argument(
        "--train-data", required=True, help="labelled training data (class sub-folders, or .npz with x, y)"
    )
    g.add_argument(
        "--val-data", required=True, help="labelled validation data (best epoch, FP32/PTQ/QAT comparison)"
    )
    g.add_argument("--calib-data", help="calibration data for the initial ranges (default: --train-data)")
    g.add_argument(
        "--calib-samples", type=int, default=512, help="calibration subset size (default 512; 0 = all)"
    )
    g.add_argument("--train-samples", type=int, default=0, help="reproducible training subset (0 = all)")
    g.add_argument("--val-samples", type=int, default=0, help="reproducible validation subset (0 = all)")
    g.add_argument("--batch-size", type=int, default=32, help="batch size for training and evaluation")
    g.add_argument("--workers", type=int, default=0, help="data loading worker processes")
    g.add_argument("--seed", type=int, default=0, help="seed: the same seed reproduces the metrics")
    g = p.add_argument_group("calibration")
    g.add_argument(
        "--calib",
        default="entropy",
        choices=["entropy", "minmax", "max", "percentile", "mse"],
        help="method for the initial activation ranges (default entropy)",
    )
    g.add_argument("--percentile", type=float, default=99.99, help="percentile for --calib percentile")
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs", type=int, default=2, help="QAT epochs (default 2; 0 = export the calibrated model)"
    )
    g.add_argument("--lr", type=float, help="peak learning rate (default: --fp32-lr / 10)")
    g.add_argument(
        "--fp32-lr",
        type=float,
        help="the FP32 training rate (default 0.1 x batch/256 for SGD, 1e-3 for AdamW)",
    )
    g.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"], help="optimizer (default sgd)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Nesterov)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (weights only)")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="cross-entropy label smoothing")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine decay")
    g.add_argument(
        "--freeze-bn-epoch",
        type=_epoch_or_never,
        help="freeze BatchNorm statistics from this epoch (default epochs // 2; 'never' keeps them moving)",
    )
    g.add_argument(
        "--quant-delay-epochs", type=int, default=0, help="train this many epochs in FP32 before quantizing"
    )
    g.add_argument("--grad-clip", type=float, default=5.0, help="max gradient norm (0 = no clipping)")
    g.add_argument(
        "--device", default="auto", help="auto (CUDA when present), cpu or cuda; mixed precision on CUDA"
    )
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    g.add_argument("--threads", type=int, help="PyTorch CPU threads (default: PyTorch's choice)")
    add_preprocess_args(p)
    add_placement_args(p)
    g = p.add_argument_group("hand-off to the build path")
    g.add_argument("--no-build", action="store_true", help="stop after model.qat.onnx (no OUT/run)")
    g.add_argument("--no-engine", action="store_true", help="no engine step in OUT/run")
    g.add_argument("--no-typed", action="store_true", help="no FP16-typed model.trt.onnx in OUT/run")


def run(args: argparse.Namespace) -> int:
    from trtq.finetune import qat

    cfg = config_from_args(args)
    result = qat(
        args.model,
        args.train_data,
        args.val_data,
        args.out,
        calib=args.calib,
        calib_data=args.calib_data,
        calib_samples=args.calib_samples or None,
        percentile=args.percentile,
        epochs=args.epochs,
        lr=args.lr,
        fp32_lr=args.fp32_lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        warmup_epochs=args.warmup_epochs,
        freeze_bn_epoch=args.freeze_bn_epoch,
        quant_delay_epochs=args.quant_delay_epochs,
        grad_clip=args.grad_clip or None,
        batch_size=args.batch_size,
        amp=False if args.no_amp else None,
        workers=args.workers,
        train_samples=args.train_samples or None,
        val_samples=args.val_samples or None,
        preprocess=cfg.data.preprocess,
        placement=cfg.placement,
        device=args.device,
        opset=cfg.export.opset,
        weights=cfg.export.weights,
        checkpoint=cfg.export.checkpoint,
        trust_pickle=cfg.export.trust_pickle,
        handoff=not args.no_build,
        typed_graph=not args.no_typed,
        build_engine=not args.no_engine,
        seed=args.seed,
        force=args.force,
        progress=lambda line: info(args, line),
        threads=args.threads,
    )
    emit(args, result.to_json(), summary_text(result))
    return 0


def summary_text(result: object) -> str:
    m = result.metrics
    lines = []
    acc = m.get("accuracy", {})
    for key, label in (("fp32", "FP32"), ("ptq", "PTQ (calibrated, untrained)"), ("qat", "QAT")):
        row = acc.get(key)
        if row and row.get("top1") is not None:
            agree = row.get("agreement_with_fp32")
            extra = f"  agreement with FP32 {100 * agree:6.2f}%" if agree is not None else ""
            lines.append(f"{label.ljust(28)} top-1 {100 * row['top1']:6.2f}%{extra}")
    ex = m.get("export_check", {})
    if ex:
        agree = ex.get("top1_agreement")
        lines.append(
            "export check (torch fake-quant vs ONNX Runtime): "
            + (f"top-1 agreement {100 * agree:.2f}%, " if agree is not None else "")
            + f"max |logit error| {ex['max_abs_logit_error']:.4g}"
        )
    check = m.get("export", {}).get("placement", {})
    if check:
        lines.append(f"Q/DQ placement matches PTQ: {'yes' if check.get('matches') else 'NO'}")
    lines.append(f"QAT graph: {result.artifacts.get('model.qat.onnx')}")
    if result.build is not None:
        lines.append(f"engine: {result.build.engine_status}")
        lines.append(f"run folder: {result.build.out_dir} (report.md)")
    else:
        lines.append(f"next: trtq build --from-qat {result.artifacts.get('model.qat.onnx')} --eval-data ...")
    return "\n".join(lines)
