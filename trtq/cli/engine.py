"""`trtq engine`: build a TensorRT engine from an ONNX graph, prove its precision, write engine.json."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit, info
from trtq.cli._options import S, add_engine_args

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
    p.add_argument(
        "--out", "-o", default="model.plan", dest="plan_out", help="engine file to write (default model.plan)"
    )
    p.add_argument("--force", action="store_true", default=S, help="overwrite an existing engine file")
    add_engine_args(p, switch=False)
    g = p.add_argument_group("shapes and compatibility")
    g.add_argument("--shapes", action="append", metavar="NAME:MIN,OPT,MAX", default=S,
                   help="explicit input shapes, e.g. images:1x3x224x224,8x3x224x224,32x3x224x224 (repeatable)")  # fmt: skip
    g.add_argument("--hardware-compat", choices=["none", "ampere_plus", "same_compute_capability"], default=S,
                   help="build an engine that also runs on other GPUs (slower)")  # fmt: skip
    g.add_argument("--version-compat", action="store_true", default=S,
                   help="engine loadable by later TensorRT of this major")  # fmt: skip
    g.add_argument("--typed", choices=["auto", "strong", "weak"], default="auto",
                   help="strongly or weakly typed network (auto: by TensorRT version)")  # fmt: skip
    g.add_argument("--precision", choices=["int8", "fp16", "fp32"], default=S,
                   help="weakly typed builds only: builder flags (int8 = INT8+FP16; default int8)")  # fmt: skip
    g.add_argument("--calib-cache", dest="engine_calib_cache", default=S,
                   help="TensorRT 10 only: implicit INT8 from this calibration cache (no Q/DQ)")  # fmt: skip
    g.add_argument("--min-int8-fraction", type=float, default=S,
                   help="fail when fewer than this share of the quantized layers run in INT8 (default 0.5)")  # fmt: skip
    g.add_argument("--verbose", action="store_true", default=S, help="TensorRT log at INFO")


def run(args: argparse.Namespace) -> int:
    from trtq.config import engine_from_args
    from trtq.engines import build_engine_file

    typed = {"auto": None, "strong": True, "weak": False}[args.typed]
    summary = build_engine_file(args.onnx, args.plan_out, engine_from_args(args), typed=typed,
                                force=getattr(args, "force", False))  # fmt: skip
    for w in summary["precision"].get("warnings", []):
        info(args, f"warning: {w}")
    emit(args, summary, engine_text(summary))
    return 0


def engine_text(summary: dict) -> str:
    prec = summary["precision"]
    counts = ", ".join(f"{k} {v}" for k, v in prec["by_precision"].items())
    return (
        f"engine: {summary['plan']} ({summary['plan_bytes'] / 1e6:.1f} MB, TensorRT {summary['tensorrt_version']}, "
        f"{summary['typing']}ly typed, built in {summary['build_seconds']:.1f} s)\n"
        f"layers by precision: {counts}; INT8 weighted layers {prec['int8_weighted_layers']} of "
        f"{prec['expected_int8_layers']} quantized in the graph\n"
        f"details: {summary['engine_json']}"
    )
