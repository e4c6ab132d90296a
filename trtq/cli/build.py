"""`trtq build`: model + calibration data -> INT8 Q/DQ ONNX (+ typed graph, engine with TensorRT) + report."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import (
    add_data_args,
    add_model_args,
    add_placement_args,
    add_preprocess_args,
    names,
    placement_from,
    preprocess_from,
    preprocess_given,
)

NAME = "build"
HELP = "export, calibrate, quantize, validate (and build the engine where TensorRT is present)"
DESCRIPTION = (
    "Build a TensorRT-ready INT8 ONNX from a PyTorch model and calibration data, validated against FP32 in "
    "ONNX Runtime. Writes model.onnx, calibration.json, calibration.cache, model.int8.onnx, model.trt.onnx, "
    "report.json and report.md into --out; with TensorRT and a GPU also model.plan and engine.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, required=False)
    p.add_argument(
        "--from-qat",
        metavar="MODEL_QAT_ONNX",
        help="continue from `trtq qat`'s model.qat.onnx instead of calibrating (needs --eval-data)",
    )
    p.add_argument("--fp32-onnx", help="with --from-qat: the FP32 reference (default: model.onnx beside it)")
    p.add_argument(
        "--calib",
        default="entropy",
        choices=["entropy", "minmax", "max", "percentile", "mse", "all"],
        help="calibration method; 'all' computes the four from one pass and keeps the most faithful",
    )
    p.add_argument("--percentile", type=float, default=99.99, help="percentile for --calib percentile")
    p.add_argument(
        "--calib-cache", help="take scales from a TensorRT calibration cache instead of calibrating"
    )
    p.add_argument("--out", "-o", required=True, help="run folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    add_data_args(p)
    add_preprocess_args(p)
    add_placement_args(p)
    g = p.add_argument_group("sensitivity and FP16 fallback")
    g.add_argument(
        "--max-drop",
        type=float,
        help="keep the fewest layers FP16 so the metric drops at most this many points (percent) below FP32",
    )
    g.add_argument("--fallback", help="N (keep the N most sensitive layers FP16) or node names/regexes")
    g.add_argument("--metric", help="package.module:function(fp32_outputs, quant_outputs[, labels]) -> float")
    g = p.add_argument_group("engine (needs TensorRT and a GPU)")
    g.add_argument("--no-engine", action="store_true", help="stop after the ONNX stages")
    g.add_argument("--no-typed", action="store_true", help="do not write the FP16-typed model.trt.onnx")
    g.add_argument("--batch", default="1,8,32", help="optimisation profile batch sizes min,opt,max")
    g.add_argument("--workspace-gb", type=float, help="builder workspace limit in GiB")
    g.add_argument("--timing-cache", help="timing cache file to load and update")
    g.add_argument(
        "--opt-level", type=int, default=3, choices=range(6), help="builder optimisation level 0-5"
    )


def _fallback(text: str | None) -> int | list[str] | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else names([text])


def engine_options(args: argparse.Namespace) -> object:
    from trtq.engines import EngineOptions
    from trtq.errors import UsageError

    try:
        mn, opt, mx = (int(v) for v in args.batch.split(","))
    except ValueError:
        raise UsageError(f"--batch expects min,opt,max (e.g. 1,8,32), not {args.batch!r}") from None
    if not 1 <= mn <= opt <= mx:
        raise UsageError(f"--batch {args.batch}: need 1 <= min <= opt <= max")
    kw = {"batch": (mn, opt, mx), "opt_level": args.opt_level}
    if args.workspace_gb:
        kw["workspace_gb"] = args.workspace_gb
    if args.timing_cache:
        kw["timing_cache"] = args.timing_cache
    return EngineOptions(**kw)


def run(args: argparse.Namespace) -> int:
    from trtq.errors import UsageError
    from trtq.pipeline import build

    if args.from_qat:
        return _run_from_qat(args)
    if not args.model:
        raise UsageError("--model is required (or --from-qat MODEL_QAT_ONNX)")

    result = build(
        args.model,
        calib_data=args.calib_data,
        out=args.out,
        calib=args.calib,
        eval_data=args.eval_data,
        preprocess=preprocess_from(args),
        calib_samples=args.calib_samples or None,
        eval_samples=args.eval_samples or None,
        batch_size=args.batch_size,
        opset=args.opset,
        weights=args.weights,
        checkpoint=args.checkpoint,
        trust_pickle=args.trust_pickle,
        placement=placement_from(args),
        percentile=args.percentile,
        calib_cache=args.calib_cache,
        typed_graph=not args.no_typed,
        max_drop=args.max_drop,
        fallback=_fallback(args.fallback),
        metric=args.metric,
        engine=engine_options(args),
        build_engine=not args.no_engine,
        seed=args.seed,
        force=args.force,
    )
    emit(args, result.to_json(), summary_text(result))
    return 0


def _run_from_qat(args: argparse.Namespace) -> int:
    from trtq.errors import UsageError
    from trtq.qat import build_from_qat

    if not args.eval_data:
        raise UsageError("--from-qat needs --eval-data to validate the QAT graph against FP32")
    result = build_from_qat(
        args.from_qat,
        args.fp32_onnx,
        args.eval_data,
        args.out,
        preprocess=preprocess_from(args) if preprocess_given(args) else None,
        eval_samples=args.eval_samples or None,
        batch_size=args.batch_size,
        typed_graph=not args.no_typed,
        engine=engine_options(args),
        build_engine=not args.no_engine,
        seed=args.seed,
        force=args.force,
    )
    emit(args, result.to_json(), summary_text(result))
    return 0


def summary_text(result: object) -> str:
    from trtq.report import accuracy_rows

    lines = []
    for label, r in accuracy_rows(result.metrics):
        parts = [label.ljust(34)]
        if r.get("top1") is not None:
            parts.append(f"top-1 {100 * r['top1']:6.2f}%")
        if r.get("agreement") is not None:
            parts.append(f"agreement {100 * r['agreement']:6.2f}%")
        if r.get("cosine") is not None:
            parts.append(f"cosine {r['cosine']:.5f}")
        lines.append("  ".join(parts))
    lines.append(f"calibration: {result.calib_method}; total {result.timings.get('total', 0):.1f} s")
    lines.append(f"engine: {result.engine_status}")
    lines.append(f"run folder: {result.out_dir} (report.md)")
    return "\n".join(lines)
