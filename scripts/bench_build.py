#!/usr/bin/env python
"""Benchmark `trtq build` end to end: wall time and peak memory per stage, beside ModelOpt's ONNX PTQ.

For each model (torchvision, random init: no download) and each number of images N, in the same run:

- `fp32`: one plain FP32 ONNX Runtime inference pass over the N images (decoded as trtq decodes them), the
  yardstick of the calibration pass;
- `build`: `trtq build --calib all` (calibration, method choice, typed graph, validation; no engine);
- `max-drop`: the same with `--max-drop` (sensitivity and FP16 fallback);
- `modelopt`: ModelOpt's ONNX PTQ (`modelopt.onnx.quantization.quantize`, entropy) on the ONNX trtq exports.

Every command runs in its own subprocess; its peak RSS is the child's own (`os.wait4`), its stages' wall time
and peak RSS come from report.json (`timings_s`, `memory_mb`). The images are SYNTHETIC (seeded smooth
random 256x256 JPEGs, written once into --workdir), centre-cropped to 224 by the imagenet preset. Numbers
depend on the machine and its load: compare rows of one run, not runs on different machines.

    python scripts/bench_build.py --models efficientnet_b0 --n 512            # a few minutes on 2 cores
    python scripts/bench_build.py --models efficientnet_b0 --n 512 1024 --runs fp32,build
    python scripts/bench_build.py --models resnet18 --n 256 --src /path/to/other/checkout   # another trtq
    python scripts/bench_build.py                                  # the full matrix: hours on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("resnet18", "mobilenet_v2", "efficientnet_b0")
RUNS = ("fp32", "build", "max-drop", "modelopt")
ROOT = Path(__file__).resolve().parents[1]
#: the `trtq` command, run by this interpreter (so --src and the venv decide which trtq it is)
TRTQ = ["-c", "import sys; from trtq.cli import main; sys.argv[0] = 'trtq'; sys.exit(main())"]


def make_images(folder: Path, n: int) -> Path:
    """N seeded synthetic 256x256 JPEGs (smooth random colour fields with noise), made once."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"img_{i:05d}.jpg"
        if path.exists():
            continue
        rng = np.random.default_rng([0, i])
        img = np.kron(rng.random((16, 16, 3)), np.ones((16, 16, 1)))
        img = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(path, quality=90)
    return folder


def run_child(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run a command; its wall time, exit status and own peak RSS (MiB)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        # run in the log's folder: `python -c` puts the working directory first on sys.path, so a child started
        # in a trtq checkout would import that trtq instead of the one --src names
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    out = {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0, "rc": code}
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        out["error"] = ("killed (out of memory?)" if code in (-9, 137) else f"exit {code}") + (
            f": {tail[0][:120]}" if tail else ""
        )
    return out


def worker(kind: str, onnx_path: str, images: str, batch_size: int, out: str) -> dict:
    """In a child: the FP32 pass or ModelOpt's PTQ; prints its own timing."""
    import numpy as np

    from trtq.data import load_data

    data = load_data(images, "imagenet")
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    name = next(i.name for i in model.graph.input if i.name not in inits)
    del model
    if kind == "fp32":
        import onnxruntime as ort

        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        for feed in data.feeds(name, batch_size):
            sess.run(None, feed)
        return {"wall_s": time.perf_counter() - t0}
    if kind == "modelopt":
        import logging

        from modelopt.onnx.quantization import quantize

        logging.disable(logging.WARNING)
        t0 = time.perf_counter()
        x = np.concatenate([f[name] for f in data.feeds(name, batch_size)])  # its API takes the whole array
        quantize(
            onnx_path, quantize_mode="int8", calibration_method="entropy", calibration_data={name: x},
            calibration_eps=["cpu"], output_path=out, log_level="ERROR",
        )  # fmt: skip
        return {"wall_s": time.perf_counter() - t0}
    raise SystemExit(f"unknown worker {kind}")


def bench(args: argparse.Namespace) -> list[dict]:
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(args.src).resolve()), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_build-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    runs = [r for r in args.runs.split(",") if r]
    results = []
    for model in args.models:
        onnx_path = work / f"{model}.onnx"
        if not onnx_path.exists():
            print(f"exporting {model} ...", file=sys.stderr, flush=True)
            r = run_child([py, *TRTQ, "export", "--model", model, "--out", str(onnx_path), "--quiet"],
                          env, work / f"{model}.export.log")  # fmt: skip
            if r["rc"] != 0:
                raise SystemExit(f"export of {model} failed: {r.get('error')}")
        for n in args.n:
            images = make_images(work / f"images_{n}", n)
            for run in runs:
                print(f"{model} N={n}: {run} ...", file=sys.stderr, flush=True)
                tag = f"{model}-{n}-{run}"
                row: dict = {"model": model, "n": n, "run": run}
                if run in ("build", "max-drop"):
                    out = work / f"run-{tag}"
                    cmd = [py, *TRTQ, "build", "--model", model, "--calib", "all", "--calib-data",
                           str(images), "--calib-samples", "0", "--out", str(out), "--force", "--no-engine",
                           "--quiet", "--batch-size", str(args.batch_size)]  # fmt: skip
                    if run == "max-drop":
                        cmd += ["--max-drop", str(args.max_drop)]
                    row.update(run_child(cmd, env, work / f"{tag}.log"))
                    report = out / "report.json"
                    if row["rc"] == 0 and report.is_file():
                        doc = json.loads(report.read_text())
                        row["stages_s"] = doc.get("timings_s", {})
                        row["stages_mb"] = doc.get("memory_mb", {})
                else:
                    cmd = [py, str(Path(__file__).resolve()), "--worker", run, "--onnx", str(onnx_path),
                           "--images", str(images), "--out", str(work / f"{tag}.onnx"),
                           "--batch-size", str(args.batch_size)]  # fmt: skip
                    row.update(run_child(cmd, env, work / f"{tag}.log"))
                    if row["rc"] == 0:
                        lines = (work / f"{tag}.log").read_text().strip().splitlines()
                        row["work_s"] = json.loads(lines[-1])["wall_s"]
                results.append(row)
                print("  " + _short(row), file=sys.stderr, flush=True)
    return results


def _short(row: dict) -> str:
    if "error" in row:
        return f"failed: {row['error']}"
    return f"{row['wall_s']:.1f} s, peak {row['peak_rss_mb']:.0f} MiB"


def print_tables(results: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nsynthetic 224x224 images, batch {args.batch_size}, {os.cpu_count()} CPU cores, models random init"
    )
    print(
        "\n| model | N | command | wall s | peak RSS MiB | wall / ModelOpt | RSS / ModelOpt | calibrate pass / FP32 pass |"
    )
    print("|---|---|---|---|---|---|---|---|")
    labels = {"fp32": "ONNX Runtime FP32 pass", "build": "trtq build --calib all",
              "max-drop": f"trtq build --calib all --max-drop {args.max_drop:g}",
              "modelopt": "ModelOpt ONNX PTQ (entropy)"}  # fmt: skip
    for key in sorted(
        {(r["model"], r["n"]) for r in results},
        key=lambda k: (MODELS.index(k[0]) if k[0] in MODELS else 9, k[1]),
    ):
        rows = {r["run"]: r for r in results if (r["model"], r["n"]) == key}
        mo, fp = rows.get("modelopt", {}), rows.get("fp32", {})
        for run in RUNS:
            r = rows.get(run)
            if r is None:
                continue
            if "error" in r:
                print(f"| {key[0]} | {key[1]} | {labels[run]} | failed: {r['error']} | | | | |")
                continue
            wall = r["wall_s"]
            vs_w = (
                f"{wall / mo['wall_s']:.2f}"
                if "wall_s" in mo and "error" not in mo and run != "modelopt"
                else ""
            )
            vs_m = (
                f"{r['peak_rss_mb'] / mo['peak_rss_mb']:.2f}"
                if "peak_rss_mb" in mo and "error" not in mo and run != "modelopt"
                else ""
            )
            cal = r.get("stages_s", {}).get("calibration_pass")
            vs_fp = f"{cal / fp['work_s']:.2f}" if cal is not None and fp.get("work_s") else ""
            print(
                f"| {key[0]} | {key[1]} | {labels[run]} | {wall:.1f} | {r['peak_rss_mb']:.0f} | {vs_w} | {vs_m} | {vs_fp} |"
            )
    staged = [r for r in results if r.get("stages_s")]
    if not staged:
        return
    print(
        "\nper stage: wall s / peak RSS MiB (from report.json; calibration_pass, fp16_ranges and choose_method are "
        "parts of calibrate)\n"
    )
    stages: list[str] = []
    for r in staged:
        stages += [s for s in r["stages_s"] if s not in stages and s != "total"]
    print("| model | N | command | " + " | ".join(stages) + " |")
    print("|---|---|---|" + "---|" * len(stages))
    for r in staged:
        cells = []
        for s in stages:
            t, m = r["stages_s"].get(s), r.get("stages_mb", {}).get(s)
            cells.append("" if t is None else f"{t:.1f}" + ("" if m is None else f" / {m:.0f}"))
        print(f"| {r['model']} | {r['n']} | {labels[r['run']]} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="torchvision model names (random init)")
    ap.add_argument("--n", type=int, nargs="+", default=[256, 1024], help="numbers of images (one run each)")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    ap.add_argument("--max-drop", type=float, default=1.0, help="--max-drop of the max-drop run (default 1)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--src", help="run the trtq in this source folder (PYTHONPATH), e.g. a checkout of main")
    ap.add_argument(
        "--workdir", help="folder for images, models and runs (kept; default a new temporary one)"
    )
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--images", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        from trtq.progress import set_quiet

        set_quiet(True)
        print(json.dumps(worker(args.worker, args.onnx, args.images, args.batch_size, args.out)))
        return 0
    unknown = [r for r in args.runs.split(",") if r and r not in RUNS]
    if unknown:
        ap.error(f"--runs: unknown {unknown[0]!r} (choose from {', '.join(RUNS)})")
    results = bench(args)
    print_tables(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
