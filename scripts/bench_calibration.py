#!/usr/bin/env python
"""Benchmark calibration: trtq (all four methods, one pass) against FP32 inference, ModelOpt and ONNX Runtime.

Every tool runs in its own subprocess on the same ONNX model and the same images, and reports its wall
time (the calibration call only, not imports or model export) and its peak resident memory (the whole
process, imports included). The images are SYNTHETIC (seeded, smooth random 224x224 RGB images,
ImageNet-normalised), generated batch by batch so no tool holds the data set unless it wants to; the
model is a torchvision CNN with random weights (no download). Timings depend on the machine: run it where
you want numbers.

    python scripts/bench_calibration.py --n 100                  # all tools, a few minutes on 2 cores
    python scripts/bench_calibration.py --n 500 --model mobilenet_v2
    python scripts/bench_calibration.py --n 500                  # the issue's setting
    python scripts/bench_calibration.py --n 250 1000 --tools trtq   # is trtq's memory flat in N?
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import numpy as np

TOOLS = ("fp32", "trtq", "modelopt", "ort")
LABELS = {
    "fp32": ("ONNX Runtime FP32 inference", "-"),
    "trtq": ("trtq calibrate", "entropy+minmax+percentile+mse"),
    "modelopt": ("ModelOpt ONNX PTQ", "entropy"),
    "ort": ("ONNX Runtime quantize_static", "Entropy"),
}
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def synthetic_batches(n: int, batch_size: int, size: int = 224, seed: int = 0) -> Iterator[np.ndarray]:
    """Seeded smooth random images (N, 3, size, size), ImageNet-normalised, one batch at a time."""
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        rng = np.random.default_rng([seed, start])
        coarse = rng.random((b, 3, size // 16, size // 16), dtype=np.float32)
        img = np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)
        img += rng.normal(0.0, 0.05, img.shape).astype(np.float32)
        yield np.ascontiguousarray((np.clip(img, 0, 1) - MEAN) / STD, dtype=np.float32)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _input_name(path: str) -> str:
    import onnx

    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    return next(i.name for i in m.graph.input if i.name not in inits)


def worker(tool: str, onnx_path: str, n: int, batch_size: int, tmp: str) -> dict:
    name = _input_name(onnx_path)
    base = _peak_rss_mb()
    extra: dict = {}
    if tool == "fp32":
        import onnxruntime as ort

        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        for x in synthetic_batches(n, batch_size):
            sess.run(None, {name: x})
        wall = time.perf_counter() - t0
    elif tool == "trtq":
        import onnx

        from trtq.calibration import calibrate
        from trtq.placement import normalize, plan_qdq
        from trtq.progress import set_quiet

        set_quiet(True)
        model = normalize(onnx.load(onnx_path))
        tensors = plan_qdq(model).activations
        t0 = time.perf_counter()
        cal = calibrate(
            model, ({name: x} for x in synthetic_batches(n, batch_size)), tensors, ["all"],
            num_batches=-(-n // batch_size),
        )  # fmt: skip
        wall = time.perf_counter() - t0
        extra = {"tensors": len(tensors), "methods": cal.methods}
    elif tool == "modelopt":
        import logging

        from modelopt.onnx.quantization import quantize

        logging.disable(logging.WARNING)
        data = np.concatenate(list(synthetic_batches(n, batch_size)))  # its API takes the whole array
        t0 = time.perf_counter()
        quantize(
            onnx_path, quantize_mode="int8", calibration_method="entropy", calibration_data={name: data},
            calibration_eps=["cpu"], output_path=os.path.join(tmp, "modelopt.onnx"), log_level="ERROR",
        )  # fmt: skip
        wall = time.perf_counter() - t0
    elif tool == "ort":
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        t0 = time.perf_counter()
        quantize_static(
            onnx_path, os.path.join(tmp, "ort.onnx"), _reader(name, n, batch_size), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"ActivationSymmetric": True},
        )  # fmt: skip
        wall = time.perf_counter() - t0
        # ORT's histogram calibrators keep every intermediate output of every batch until the end
        # (CalibMaxIntermediateOutputs only applies to MinMax), so memory grows with N
        extra = {"note": "keeps all intermediate outputs"}
    else:
        raise SystemExit(f"unknown tool {tool}")
    return {
        "tool": tool,
        "n": n,
        "wall_s": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": base,
        **extra,
    }


def _reader(name: str, n: int, batch_size: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {name: x}

        def rewind(self) -> None:
            self._it = synthetic_batches(n, batch_size)

    return Reader()


def export_model(model: str, path: str, seed: int) -> None:
    import torch
    import torchvision

    torch.manual_seed(seed)
    if model.endswith(".onnx"):
        import shutil

        shutil.copy(model, path)
        return
    net = torchvision.models.get_model(model, weights=None).eval()
    from trtq.export import export_onnx

    sample = next(synthetic_batches(2, 2))
    export_onnx(net, sample, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18", help="torchvision model name (random init) or .onnx file")
    ap.add_argument(
        "--n", type=int, nargs="+", default=[100], help="number of images (several: one run each)"
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=10,
        help="batch size (must divide N: ONNX Runtime stacks equal batches)",
    )
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the table keeps the fastest")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.onnx, args.n[0], args.batch_size, args.tmp)))
        return 0

    tools = [t for t in args.tools.split(",") if t]
    if "ort" in tools and any(n % args.batch_size for n in args.n):
        ap.error("--batch-size must divide every --n: ONNX Runtime's calibrator needs equal batches")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        export_model(args.model, onnx_path, args.seed)
        for n in args.n:
            for tool in tools:
                cmd = [sys.executable, __file__, "--worker", tool, "--onnx", onnx_path, "--tmp", tmp,
                       "--n", str(n), "--batch-size", str(args.batch_size)]  # fmt: skip
                runs = []
                for _ in range(max(1, args.repeat)):
                    print(f"running {tool} on {n} images ...", file=sys.stderr, flush=True)
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        tail = proc.stderr.strip().splitlines()[-1:]
                        why = (
                            "killed (out of memory?)"
                            if proc.returncode in (-9, 137)
                            else f"exit {proc.returncode}"
                        )
                        runs = [{"tool": tool, "n": n, "error": f"{why}: {' | '.join(tail)[:120]}"}]
                        break
                    runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                best = min(runs, key=lambda r: r.get("wall_s", 0.0))
                if len(runs) > 1:
                    best = {**best, "walls_s": [r["wall_s"] for r in runs]}
                    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
                results.append(best)
    print_table(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nmodel {args.model} (random init), synthetic 224x224 images, batch {args.batch_size}, "
        f"{os.cpu_count()} CPU cores\n"
    )
    print("| N | tool | method | wall s | x FP32 inference | trtq speed-up | peak memory MB |")
    print("|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in results}):
        rows = {r["tool"]: r for r in results if r["n"] == n}
        fp32 = rows.get("fp32", {}).get("wall_s")
        ours = rows.get("trtq", {}).get("wall_s")
        for tool in TOOLS:
            r = rows.get(tool)
            if r is None:
                continue
            label, method = LABELS[tool]
            if "error" in r:
                print(f"| {n} | {label} | {method} | failed: {r['error']} | | | |")
                continue
            w = r["wall_s"]
            vs_fp32 = f"{w / fp32:.2f}" if fp32 else "-"
            speedup = f"{w / ours:.1f}x" if ours and tool not in ("trtq", "fp32") else "-"
            print(f"| {n} | {label} | {method} | {w:.1f} | {vs_fp32} | {speedup} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
