"""FP16 fallback benchmark on real data: `--max-drop` with the static metric order against the greedy cosine search.

Not part of CI (it needs the image folder, `pip install .[bench]` and CPU-minutes). Usage:

    python scripts/bench_fallback.py /work/data/imagenet-sample [--calib 100] [--held 200] [--max-drop 1]

EfficientNet-Lite1 (published ImageNet weights), images split as in `bench_accuracy.py` (even positions calibrate,
odd positions are held out), entropy calibration, top-1 agreement with FP32 as the budget metric. One sensitivity
analysis serves every search; each search's chosen set is re-evaluated in full. Prints, per `--rank-by`, the
layers kept FP16, the FP16 share of MACs, the mixed model's agreement and cosine, the evaluations and the time;
writes each search's tradeoff.png into `--out`, with the analysis (sensitivity.json, reused by the next run with
the same split). The all-INT8 row with `--weight-ptq bias-correction` is measured on the same split (weight methods
change the INT8 graph, not the fallback search).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--held", type=int, default=200)
    ap.add_argument("--max-drop", type=float, default=1.0)
    ap.add_argument("--rank-by", default="metric,cosine", help="comma list of --rank-by values to compare")
    ap.add_argument("--out", type=Path, default=Path("bench_fallback"))
    ap.add_argument("--no-bias-correction", action="store_true", help="skip the bias-corrected all-INT8 row")
    args = ap.parse_args()

    from bench_accuracy import lite_model, load_images

    from trtq.calibration import calibrate
    from trtq.export import export_onnx
    from trtq.metrics.fidelity import cosine
    from trtq.placement import normalize, plan_qdq
    from trtq.qdq import insert_qdq
    from trtq.sensitivity import SensitivityResult, analyze_sensitivity, choose_fallback
    from trtq.sensitivity.evaluate import run_model
    from trtq.sensitivity.tradeoff import plot_tradeoff
    from trtq.weights import weight_ptq

    x, _ = load_images(args.folder, 240, 274)
    cal_x, held_x = x[0::2][: args.calib], x[1::2][: args.held]
    tmp = Path(tempfile.mkdtemp(prefix="trtq-bench-fb-"))
    fp32 = normalize(export_onnx(lite_model("lite1"), x[:2], tmp / "model.onnx").model)
    del x
    plan = plan_qdq(fp32)
    name = fp32.graph.input[0].name
    feeds = lambda data, bs=25: ({name: data[s : s + bs]} for s in range(0, len(data), bs))  # noqa: E731
    t0 = time.perf_counter()
    amax = calibrate(fp32, feeds(cal_x), plan.activations, ["entropy"]).amax["entropy"]
    print(f"calibration {time.perf_counter() - t0:.0f} s", flush=True)
    ref = run_model(fp32, feeds(held_x))

    def agreement(outputs: dict) -> float:
        key = next(iter(ref))
        return float((outputs[key].argmax(1) == ref[key].argmax(1)).mean())

    if not args.no_bias_correction:
        res = weight_ptq(fp32, plan, feeds(cal_x), ["bias-correction"], act_amax=amax, batches=4)
        bc = run_model(insert_qdq(fp32, plan, amax, weights=res), feeds(held_x))
        print(f"all-INT8 + bias-correction: agreement {agreement(bc):.3f} cosine {cosine(ref, bc):.4f}",
              flush=True)  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "sensitivity.json"  # the analysis, reused by a later run with the same split
    t0 = time.perf_counter()
    if saved.exists():
        sens = SensitivityResult.from_json(json.loads(saved.read_text()))
    else:
        sens = analyze_sensitivity(fp32, amax, held_x, plan=plan, batch_size=25, rank_by="cosine")
        saved.write_text(json.dumps(sens.to_json()))
    print(f"analysis {len(sens.layers)} layers: {time.perf_counter() - t0:.0f} s; all-INT8 agreement "
          f"{sens.int8_metric:.3f} cosine {sens.int8_cosine:.4f}", flush=True)  # fmt: skip
    rows = []
    for rank_by in args.rank_by.split(","):
        t0 = time.perf_counter()
        choice = choose_fallback(fp32, amax, held_x, sensitivity=sens, max_drop=args.max_drop, batch_size=25,
                                 rank_by=rank_by)  # fmt: skip
        secs = time.perf_counter() - t0
        plot_tradeoff(choice, args.out / f"tradeoff_{rank_by}.png")
        rows.append((rank_by, len(choice.nodes), 1 - choice.int8_mac_share, choice.metric, choice.measure,
                     choice.searched, secs, choice.met))  # fmt: skip
        print(rows[-1], choice.nodes, flush=True)
    print(
        f"\n--max-drop {args.max_drop:g} on {args.held} held-out images ({args.calib} calibration), entropy:\n"
    )
    print(
        "| --rank-by | layers FP16 | FP16 share of MACs | agreement | cosine | evaluations | seconds | met |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r[0]} | {r[1]} | {100 * r[2]:.1f}% | {r[3]:.3f} | {r[4]:.4f} | {r[5]} | {r[6]:.0f} | {r[7]} |"
        )


if __name__ == "__main__":
    main()
