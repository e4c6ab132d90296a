"""`trtq sensitivity`: rank the quantized layers of an FP32 ONNX model, and keep the fewest in FP16 for a budget."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import add_placement_args, add_preprocess_args, names, placement_from, preprocess_from

NAME = "sensitivity"
HELP = "per-layer sensitivity ranking and FP16 fallback within an accuracy budget (--max-drop)"
DESCRIPTION = (
    "For every layer the Q/DQ plan quantizes, measure the metric with that layer alone INT8 and with that "
    "layer alone kept FP16 (the rest INT8), on the evaluation data, in ONNX Runtime with Q/DQ executed as "
    "written; rank the layers. With --max-drop, keep the fewest layers (cheapest in MACs first) out of INT8 so "
    "the assembled mixed model, evaluated in full, is within that many percentage points of FP32; "
    "--fallback N or --fallback names/regexes chooses them directly. Writes sensitivity.json, sensitivity.png "
    "and sensitivity.md, and with a fallback set model.mixed.onnx and the FP16-typed model.trt.onnx."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="the FP32 .onnx model")
    p.add_argument(
        "--calibration",
        "-c",
        required=True,
        help="calibration.json from trtq calibrate (or a TensorRT cache)",
    )
    p.add_argument("--method", help="calibration method to use (default: the one chosen in the file)")
    p.add_argument(
        "--eval-data", "-d", required=True, help="image folder (class sub-folders give labels) or .npy/.npz"
    )
    p.add_argument("--eval-samples", type=int, default=0, help="reproducible subset (default 0 = all)")
    p.add_argument("--batch-size", type=int, default=32, help="evaluation batch size (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset")
    p.add_argument("--out", "-o", required=True, help="folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    g = p.add_argument_group("fallback")
    g.add_argument(
        "--max-drop",
        type=float,
        help="keep the fewest layers FP16 so the metric drops at most this many points (percent) below FP32",
    )
    g.add_argument(
        "--fallback", help="N (the N most sensitive layers) or node names/regexes, comma-separated"
    )
    g.add_argument(
        "--metric",
        help="top1_agreement (default without labels), top1_accuracy (default with labels), or "
        "package.module:function(fp32_outputs, outputs[, labels]) -> float, higher is better",
    )
    g.add_argument("--workers", type=int, help="parallel evaluations (default: the CPUs available)")
    g.add_argument("--no-typed", action="store_true", help="do not write the FP16-typed model.trt.onnx")
    add_preprocess_args(p)
    add_placement_args(p)


def _fallback(text: str | None) -> int | list[str] | None:
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else names([text])


def run(args: argparse.Namespace) -> int:
    from trtq.sensitivity import run_sensitivity

    result = run_sensitivity(
        args.model,
        args.calibration,
        args.eval_data,
        args.out,
        preprocess=preprocess_from(args),
        eval_samples=args.eval_samples or None,
        batch_size=args.batch_size,
        seed=args.seed,
        method=args.method,
        placement=placement_from(args),
        max_drop=args.max_drop,
        fallback=_fallback(args.fallback),
        metric=args.metric,
        workers=args.workers,
        typed=not args.no_typed,
        force=args.force,
    )
    emit(args, result.to_json(), summary_text(result))
    return 0


def summary_text(result: object) -> str:
    from trtq.sensitivity.report import format_metric

    sens, choice = result.sensitivity, result.fallback
    lines = []
    if sens is not None:
        lines.append(
            f"{len(sens.layers)} layers ranked on {sens.samples} samples in {sens.timings.get('total', 0):.1f} s; "
            f"{sens.metric}: FP32 {format_metric(sens.metric, sens.fp32_metric)}, all INT8 {format_metric(sens.metric, sens.int8_metric)}"
        )
        for layer in sens.layers[:5]:
            lines.append(
                f"  {layer.rank:>3}. {layer.node}  alone FP16 {format_metric(sens.metric, layer.metric_fp16_alone)}  "
                f"alone INT8 {format_metric(sens.metric, layer.metric_quantized_alone)}"
            )
    if choice is not None:
        verdict = "" if choice.met is None else ("  (budget met)" if choice.met else "  (budget NOT met)")
        lines.append(
            f"FP16 fallback: {len(choice.nodes)} layer(s); mixed model {format_metric(choice.metric_name, choice.metric)}, "
            f"drop {choice.drop:.2f} points, INT8 share of MACs {100 * choice.int8_mac_share:.1f}%{verdict}"
        )
    lines.append(f"wrote {', '.join(sorted(result.files))} in {result.out_dir}")
    return "\n".join(lines)
