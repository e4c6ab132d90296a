"""The QAT section of report.md: FP32 / PTQ / QAT accuracy, training, export checks."""

from __future__ import annotations

from typing import Any

__all__ = ["qat_section"]


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.2f}%"


def qat_section(qat_metrics: dict[str, Any], check: Any) -> str:
    """The markdown of report.md's QAT section: FP32 / PTQ / QAT accuracy, training, export checks."""
    lines = []
    acc = qat_metrics.get("accuracy", {})
    if acc:
        lines += [
            f"Validation data: {acc.get('samples', '?')} samples, ONNX Runtime executing Q/DQ as written.",
            "",
            "| model | top-1 | top-1 agreement with FP32 |",
            "|---|---|---|",
        ]
        for key, label in (
            ("fp32", "FP32 (model.onnx)"),
            ("ptq", "PTQ (same scales, untrained)"),
            ("qat", "QAT"),
        ):
            row = acc.get(key, {})
            agree = 1.0 if key == "fp32" else row.get("agreement_with_fp32")
            lines.append(f"| {label} | {_pct(row.get('top1'))} | {_pct(agree)} |")
        lines.append("")
    train = qat_metrics.get("training", {})
    cfg = qat_metrics.get("config", {})
    if train.get("epochs"):
        lines.append(
            f"Training: {cfg.get('epochs')} epoch(s), {cfg.get('optimizer')} at lr {cfg.get('resolved_lr'):.3g}, "
            f"BatchNorm statistics frozen from epoch {cfg.get('resolved_freeze_bn_epoch')}, quantization delay "
            f"{cfg.get('quant_delay_epochs')} epoch(s); best epoch {train.get('best_epoch')} "
            "(epoch 0 = calibrated, untrained)."
        )
        lines.append("")
    elif train.get("train_fn"):
        lines += [f"Training: user function `{train['train_fn']}`.", ""]
    cal = qat_metrics.get("calibration", {})
    if cal:
        lines += [
            f"Initial scales: trtq calibrator **{cal.get('method')}** over {cal.get('samples')} samples.",
            "",
        ]
    ex = qat_metrics.get("export_check", {})
    if ex:
        lines.append(
            f"Export check (fake-quant PyTorch vs model.qat.onnx in ONNX Runtime, {ex.get('samples')} samples): "
            f"top-1 agreement {_pct(ex.get('top1_agreement'))}, max |logit error| {ex.get('max_abs_logit_error', 0):.4g} "
            f"(mean {ex.get('mean_abs_logit_error', 0):.3g}, max |logit| {ex.get('max_abs_logit', 0):.3g})."
        )
        lines.append("")
    lines += [check.summary() + ".", ""]
    if qat_metrics.get("curves"):
        lines += ["![QAT training curves](qat_curves.png)", ""]
    return "\n".join(lines)
