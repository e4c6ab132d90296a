"""`trtq engine`: build a TensorRT engine from an ONNX graph, prove its precision, write engine.json."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit, info

NAME = "engine"
HELP = "build a TensorRT engine (.plan) from an ONNX graph and prove it runs in the precision asked"
DESCRIPTION = (
    "Build a TensorRT engine from a Q/DQ ONNX graph (needs TensorRT and a GPU). TensorRT 11 and 10.12+ build "
    "strongly typed (give model.trt.onnx); TensorRT 10 before 10.12 builds weakly typed with INT8+FP16 flags "
    "(give model.int8.onnx). After the build, the engine inspector's layer precisions are counted and the "
    "command fails if far fewer layers run in INT8 than the graph quantized. Writes the plan, "
    "<stem>.engine.json and <stem>.layers.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", required=True, help="graph to build (model.trt.onnx, model.int8.onnx, any ONNX)")
    p.add_argument("--out", "-o", default="model.plan", help="engine file to write (default model.plan)")
    p.add_argument("--force", action="store_true", help="overwrite an existing engine file")
    g = p.add_argument_group("shapes")
    g.add_argument("--batch", default="1,8,32", help="profile batch sizes min,opt,max (or one fixed size)")
    g.add_argument(
        "--shapes",
        action="append",
        metavar="NAME:MIN,OPT,MAX",
        help="explicit input shapes, e.g. images:1x3x224x224,8x3x224x224,32x3x224x224 (repeatable)",
    )
    g = p.add_argument_group("builder")
    g.add_argument("--workspace-gb", type=float, help="workspace memory limit in GiB")
    g.add_argument("--timing-cache", help="timing cache file to load and update")
    g.add_argument(
        "--opt-level", type=int, default=3, choices=range(6), help="builder optimisation level 0-5"
    )
    g.add_argument(
        "--hardware-compat",
        choices=["none", "ampere_plus", "same_compute_capability"],
        help="build an engine that also runs on other GPUs (slower)",
    )
    g.add_argument(
        "--version-compat", action="store_true", help="engine loadable by later TensorRT of this major"
    )
    g.add_argument(
        "--typed",
        choices=["auto", "strong", "weak"],
        default="auto",
        help="strongly or weakly typed network (auto: by TensorRT version)",
    )
    g.add_argument(
        "--precision",
        choices=["int8", "fp16", "fp32"],
        default="int8",
        help="weakly typed builds only: builder flags (int8 = INT8+FP16)",
    )
    g.add_argument(
        "--calib-cache", help="TensorRT 10 only: implicit INT8 from this calibration cache (no Q/DQ)"
    )
    g.add_argument(
        "--min-int8-fraction",
        type=float,
        default=0.5,
        help="fail when fewer than this share of the quantized layers run in INT8 (default 0.5)",
    )
    g.add_argument("--verbose", action="store_true", help="TensorRT log at INFO")


def run(args: argparse.Namespace) -> int:
    from trtq.engines import EngineOptions, build_engine_file, parse_batch, parse_shapes

    options = EngineOptions(
        batch=parse_batch(args.batch),
        shapes=parse_shapes(args.shapes),
        workspace_gb=args.workspace_gb,
        timing_cache=args.timing_cache,
        opt_level=args.opt_level,
        hardware_compat=args.hardware_compat,
        version_compat=args.version_compat,
        precision=args.precision,
        calib_cache=args.calib_cache,
        min_int8_fraction=args.min_int8_fraction,
        verbose=args.verbose,
    )
    typed = {"auto": None, "strong": True, "weak": False}[args.typed]
    summary = build_engine_file(args.onnx, args.out, options, typed=typed, force=args.force)
    prec = summary["precision"]
    counts = ", ".join(f"{k} {v}" for k, v in prec["by_precision"].items())
    for w in prec.get("warnings", []):
        info(args, f"warning: {w}")
    text = (
        f"engine: {summary['plan']} ({summary['plan_bytes'] / 1e6:.1f} MB, TensorRT {summary['tensorrt_version']}, "
        f"{summary['typing']}ly typed, built in {summary['build_seconds']:.1f} s)\n"
        f"layers by precision: {counts}; INT8 weighted layers {prec['int8_weighted_layers']} of "
        f"{prec['expected_int8_layers']} quantized in the graph\n"
        f"details: {summary['engine_json']}"
    )
    emit(args, summary, text)
    return 0
