"""`trtq bench`: latency percentiles and throughput of ONNX files (ONNX Runtime, CPU) and engines (GPU)."""

from __future__ import annotations

import argparse

from trtq.cli._common import emit
from trtq.cli._options import S

NAME = "bench"
HELP = "latency (min/median/p90/p95/p99) and throughput of .onnx (ONNX Runtime, CPU) and .plan (TensorRT)"
DESCRIPTION = (
    "Benchmark one or more artifacts at several batch sizes: warm-up, then timed runs. ONNX files run in ONNX "
    "Runtime on the CPU (wall clock; Q/DQ executed as written, so INT8 graphs are not faster there); TensorRT "
    "engines run on the GPU, timed with CUDA events on a non-default stream. Prints a table and writes "
    "bench.json and bench.png to --out."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help=".onnx, .plan or .engine files")
    p.add_argument(
        "--batch", dest="bench_batch", default=S, help="batch sizes to time, e.g. 1,8,32 (default 1,8)"
    )
    p.add_argument("--warmup", type=int, default=S, help="untimed runs per batch size (default 10)")
    p.add_argument("--iterations", type=int, default=S, help="timed runs per batch size (default 100)")
    p.add_argument(
        "--max-seconds", type=float, default=S, help="stop timing a batch size after this long (default 10)"
    )
    p.add_argument(
        "--cuda-graph", action="store_true", default=S, help="TensorRT: capture and replay a CUDA graph"
    )
    p.add_argument("--no-copies", action="store_true", default=S,
                   help="TensorRT: leave host<->device copies out of the timing")  # fmt: skip
    p.add_argument("--threads", type=int, default=S, help="ONNX Runtime intra-op threads")
    p.add_argument("--seed", type=int, default=S, help="seed of the random inputs (default 0)")
    p.add_argument("--out", "-o", default=S, help="folder for bench.json and bench.png (default: a new "
                   "bench-YYYYMMDD-HHMMSS folder beside the first artifact)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite bench.json / bench.png")


def run(args: argparse.Namespace) -> int:
    from trtq.benchmark import bench, default_out_dir, print_table
    from trtq.config import bench_from_args

    out = args.out if hasattr(args, "out") else default_out_dir(args.artifacts)
    doc = bench(args.artifacts, bench_from_args(args), out_dir=out, force=args.force)
    if not (args.json or args.quiet):
        print_table(doc)
        for s in doc["skipped"]:
            print(f"skipped {s['artifact']} at batch {s['batch']}: {s['reason']}")
    emit(args, doc, "written: " + ", ".join(doc.get("files", [])))
    return 0
