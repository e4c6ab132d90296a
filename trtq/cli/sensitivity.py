"""`trtq sensitivity`: rank the quantized layers of an FP32 ONNX model, and keep the fewest in FP16 for a budget."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import (
    S,
    add_data_args,
    add_fallback_args,
    add_model_args,
    add_output_args,
    add_placement_args,
    add_preprocess_args,
    add_task_args,
    add_typing_args,
    config_from_args,
)

NAME = "sensitivity"
HELP = "per-layer sensitivity ranking and FP16 fallback within an accuracy budget (--max-drop)"
DESCRIPTION = (
    "For every layer the Q/DQ plan quantizes, measure the metric with that layer alone kept FP16 (the rest "
    "INT8) and, with --alone-int8, with that layer alone INT8 (the rest FP32), on the evaluation data, in "
    "ONNX Runtime with Q/DQ executed as written; rank the layers. With --max-drop, keep the fewest layers (cheapest in MACs first) out of INT8 so "
    "the assembled mixed model, evaluated in full, is within that much of FP32; --fallback N or --fallback "
    "names/regexes chooses them directly. Writes sensitivity.json, sensitivity.png and sensitivity.md, and with "
    "a fallback set model.mixed.onnx and the FP16-typed model.trt.onnx."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, onnx_only=True)
    p.add_argument(
        "--calibration",
        "-c",
        required=True,
        help="calibration.json from trtq calibrate (or a TensorRT cache)",
    )
    p.add_argument("--method", help="calibration method to use (default: the one chosen in the file)")
    p.add_argument("--eval-data", "-d", required=True, default=S,
                   help="image folder (class sub-folders give labels) or .npy/.npz")  # fmt: skip
    add_data_args(p, calib=False, eval_=False)
    p.add_argument("--eval-samples", type=int, default=S, help="reproducible subset (default 0 = all)")
    add_output_args(p, what="folder to create")
    add_fallback_args(p)
    add_typing_args(p)
    add_preprocess_args(p)
    add_task_args(p)
    add_placement_args(p)


def run(args: argparse.Namespace) -> int:
    from trtq.pipeline.commands import sensitivity_folder

    ctx = sensitivity_folder(config_from_args(args), args.calibration, method=args.method)
    emit(args, {"out_dir": str(ctx.config.out), "files": {k: str(v) for k, v in ctx.result.artifacts.items()},
                **ctx.result.sensitivity.to_json()}, summary_text(ctx))  # fmt: skip
    return 0


def summary_text(ctx: object) -> str:
    from trtq.sensitivity.report import format_metric

    sens, choice = ctx.result.sensitivity.sensitivity, ctx.result.sensitivity.fallback
    lines = []
    if sens is not None:
        m = sens.metric
        lines.append(
            f"{len(sens.layers)} layers ranked on {sens.samples} samples in {sens.timings.get('total', 0):.1f} s; "
            f"{m}: FP32 {format_metric(m, sens.fp32_metric)}, all INT8 {format_metric(m, sens.int8_metric)}"
        )
        for layer in sens.layers[:5]:
            line = f"  {layer.rank:>3}. {layer.node}  alone FP16 {format_metric(m, layer.metric_fp16_alone)}"
            if layer.metric_quantized_alone is not None:
                line += f"  alone INT8 {format_metric(m, layer.metric_quantized_alone)}"
            lines.append(line)
    if choice is not None:
        verdict = "" if choice.met is None else ("  (budget met)" if choice.met else "  (budget NOT met)")
        lines.append(
            f"FP16 fallback: {len(choice.nodes)} layer(s); mixed model {format_metric(choice.metric_name, choice.metric)}, "
            f"drop {choice.drop:.2f}, INT8 share of MACs {100 * choice.int8_mac_share:.1f}%{verdict}"
        )
    lines.append(f"wrote {', '.join(sorted(ctx.result.artifacts))} in {ctx.config.out}")
    return "\n".join(lines)
