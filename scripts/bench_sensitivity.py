"""Benchmark: full per-layer sensitivity ranking of a torchvision CNN, fast path vs the naive one.

    python scripts/bench_sensitivity.py [--model mobilenet_v2] [--samples 256] [--size 224]

What it does, all on the CPU with ONNX Runtime executing Q/DQ as written:

1. builds the torchvision model with random weights (no download), re-estimates its BatchNorm statistics
   on synthetic images so activations have realistic ranges, exports it to ONNX;
2. calibrates (entropy) on a separate set of synthetic images;
3. runs `trtq.sensitivity.analyze_sensitivity` on `--samples` images: every quantized layer (or `--layers N`
   of them, spread over the depth) alone FP16, and with `--alone-int8` also alone INT8 (2 variants per
   layer), with the cache `trtq build` uses (`--cache-mb`), and prints the time per layer and the total;
4. runs the naive approach in the same process: one ONNX Runtime session per variant, the whole model
   over every image. It runs on `--naive-layers` layers spread over the depth and is extrapolated to all
   layers (printed as such); the fast and naive metrics of those layers are compared (they must agree).

Synthetic images (smooth random fields) stand in for a dataset: nothing is downloaded, so the metric
values describe this random network, not ImageNet accuracy. The timings are what the benchmark is for.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def synthetic_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random images, normalised like ImageNet inputs: low-frequency fields plus a little noise."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 3, 7, 7, generator=g)
    img = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    img = img + 0.1 * torch.randn(n, 3, size, size, generator=g)
    return img.numpy().astype(np.float32)


def build_model(name: str, size: int, seed: int, classes: int = 10) -> object:
    """A torchvision model with random weights made well-conditioned: BatchNorm statistics re-estimated
    on synthetic images, and the last Linear layer replaced by a ridge-regression head fitted to k-means
    clusters of its input features (so top-1 decisions have margins, as a trained model's do)."""
    import torch
    import torchvision
    from sklearn.cluster import KMeans

    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None)
    for m in model.modules():  # cumulative average over the re-estimation batches
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for k in range(4):
            model(torch.from_numpy(synthetic_images(32, size, seed + 100 + k)))
    model.eval()
    name_last, last = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    feats: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    with torch.no_grad():
        for k in range(8):
            model(torch.from_numpy(synthetic_images(64, size, seed + 200 + k)))
    hook.remove()
    f = torch.cat(feats).double()
    labels = KMeans(n_clusters=classes, n_init=4, random_state=seed).fit_predict(f.numpy())
    x = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    y = torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), classes).double()
    gram = x.T @ x
    ridge = 0.1 * gram.diagonal().mean() * torch.eye(x.shape[1], dtype=f.dtype)
    w = torch.linalg.solve(gram + ridge, x.T @ y)
    head = torch.nn.Linear(last.in_features, classes)
    with torch.no_grad():
        head.weight.copy_(w[:-1].T.float())
        head.bias.copy_(w[-1].float())
    parent = model.get_submodule(name_last.rpartition(".")[0]) if "." in name_last else model
    setattr(parent, name_last.rpartition(".")[2], head)
    return model


def naive_variant(fp32, amax, placement, exclude, data, batch_size):
    """One variant the naive way: a fresh ONNX Runtime session of the whole model over all images."""
    from trtq.runners.onnxrt import OnnxRuntimeRunner
    from trtq.sensitivity.analysis import quantized_model, replan

    model, _ = quantized_model(fp32, replan(fp32, placement, exclude), amax)
    start = time.perf_counter()
    outs = []
    with OnnxRuntimeRunner(model) as runner:
        for i in range(0, len(data), batch_size):
            outs.append(next(iter(runner.infer({"input": data[i : i + batch_size]}).values())))
    return np.concatenate(outs), time.perf_counter() - start


def naive_layers(fp32, amax, nodes, all_nodes, data, batch_size, ref, alone_int8):
    """The variants of each node the naive way; (seconds per variant, {node: (q outputs or None, fp16 outputs)})."""
    seconds, outs = [], {}
    for node in nodes:
        q_out = None
        if alone_int8:
            q_out, tq = naive_variant(fp32, amax, None, [n for n in all_nodes if n != node], data, batch_size)
            seconds.append(tq)
        f_out, tf = naive_variant(fp32, amax, None, [node], data, batch_size)
        seconds.append(tf)
        outs[node] = (q_out, f_out)
    return seconds, outs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mobilenet_v2")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--naive-layers", type=int, default=4, help="layers the naive approach runs (0: skip it)")
    p.add_argument("--max-drop", type=float, help="also choose the FP16 fallback set for this budget")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument(
        "--layers", type=int, default=0, help="analyse this many layers spread over the depth (0: all)"
    )
    p.add_argument(
        "--alone-int8", action="store_true", help="also measure each layer alone INT8 (2 variants)"
    )
    p.add_argument("--cache-mb", type=int, default=None, help="cached activations (default: trtq build's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args()

    from trtq.calibration import calibrate
    from trtq.export import export_onnx
    from trtq.metrics.classification import top1_agreement
    from trtq.metrics.fidelity import output_noise
    from trtq.pipeline.stages.fallback import CACHE_BYTES
    from trtq.placement import normalize, plan_qdq
    from trtq.progress import set_quiet
    from trtq.sensitivity import analyze_sensitivity, choose_fallback

    set_quiet(True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# {args.model}, {args.samples} images {args.size}x{args.size}, {os.cpu_count()} CPUs, load {load:.1f}"
    )
    t = time.perf_counter()
    module = build_model(args.model, args.size, args.seed)
    data = synthetic_images(args.samples, args.size, args.seed)
    calib = synthetic_images(args.calib_samples, args.size, args.seed + 1)
    fp32 = normalize(export_onnx(module, data[:2]).model)
    plan = plan_qdq(fp32)
    all_nodes = list(plan.quantized_nodes)
    analysed = all_nodes
    if args.layers and args.layers < len(all_nodes):
        spread = np.linspace(0, len(all_nodes) - 1, args.layers).round().astype(int)
        analysed = [all_nodes[i] for i in sorted(set(spread))]
    cache = CACHE_BYTES if args.cache_mb is None else args.cache_mb << 20
    variants = 2 if args.alone_int8 else 1
    feeds = [{"input": calib[i : i + args.batch_size]} for i in range(0, len(calib), args.batch_size)]
    amax = calibrate(fp32, feeds, plan.activations, ["entropy"]).amax_for()
    print(
        f"setup (model, export, calibration): {time.perf_counter() - t:.1f} s; {len(all_nodes)} quantized layers"
    )

    # The naive runs are split around the fast run, so both see similar machine load.
    pick = (
        sorted(set(np.linspace(0, len(analysed) - 1, args.naive_layers).round().astype(int)))
        if args.naive_layers
        else []
    )
    nodes = [analysed[i] for i in pick]
    seconds: list[float] = []
    naive_outs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ref = None
    if nodes:
        ref, _ = naive_variant(fp32, amax, None, all_nodes, data, args.batch_size)
        sec, outs = naive_layers(
            fp32, amax, nodes[::2], all_nodes, data, args.batch_size, ref, args.alone_int8
        )
        seconds += sec
        naive_outs.update(outs)

    t = time.perf_counter()
    sens = analyze_sensitivity(
        fp32, amax, data, plan=plan, batch_size=args.batch_size, workers=args.workers, layers=analysed,
        alone_int8=args.alone_int8, cache_bytes=cache,
    )  # fmt: skip
    fast_total = time.perf_counter() - t
    layers = len(sens.layers)
    print(
        f"\n## fast: {layers} of {len(all_nodes)} layers, {fast_total:.1f} s total, {fast_total / layers:.2f} s per "
        f"layer ({variants} variant(s) each), cache {cache >> 20} MiB, CPU {time.process_time():.0f} s in the process"
    )
    print(" ".join(f"{k}={v:.1f}s" for k, v in sens.timings.items()))
    print(f"metric {sens.metric}: FP32 {sens.fp32_metric:.4f}, all-INT8 {sens.int8_metric:.4f}")
    print(f"\n{'rank':>4} {'node':<52} {'op':<6} {'MACs %':>7} {'q-alone':>8} {'fp16-alone':>10} {'s':>6}")
    by_order = {n: i for i, n in enumerate(all_nodes)}
    for layer in sorted(sens.layers, key=lambda x: by_order[x.node]):
        print(
            f"{layer.rank:>4} {layer.node[-52:]:<52} {layer.op_type:<6} {100 * layer.macs / sens.total_macs:>7.2f} "
            f"{float('nan') if layer.metric_quantized_alone is None else layer.metric_quantized_alone:>8.4f} "
            f"{layer.metric_fp16_alone:>10.4f} "
            f"{layer.seconds:>6.2f}"
        )
    result = {
        "model": args.model,
        "samples": args.samples,
        "size": args.size,
        "layers": layers,
        "variants_per_layer": variants,
        "cache_mb": cache >> 20,
        "fast_total_s": fast_total,
        "fast_per_layer_s": fast_total / layers,
        "timings": sens.timings,
        "load_average_start": load,
    }

    if nodes:
        sec, outs = naive_layers(
            fp32, amax, nodes[1::2], all_nodes, data, args.batch_size, ref, args.alone_int8
        )
        seconds += sec
        naive_outs.update(outs)
        metric_diffs, noise_diffs = [], []
        for node, (q_out, f_out) in naive_outs.items():
            layer = sens.layer(node)
            r, q, f = {"o": ref}, {"o": q_out}, {"o": f_out}
            metric_diffs.append(abs(top1_agreement(r, f) - layer.metric_fp16_alone))
            noise_diffs.append(
                abs(output_noise(r, f) - layer.noise_fp16_alone) / max(layer.noise_fp16_alone, 1e-30)
            )
            if q_out is not None:
                metric_diffs.append(abs(top1_agreement(r, q) - layer.metric_quantized_alone))
                noise_diffs.append(
                    abs(output_noise(r, q) - layer.noise_quantized_alone)
                    / max(layer.noise_quantized_alone, 1e-30)
                )
        per_variant = float(np.mean(seconds))
        naive_total = per_variant * variants * layers
        print(
            f"\n## naive (one ONNX Runtime session per variant, whole model, all {args.samples} images): "
            f"measured on {len(nodes)} layers ({len(seconds)} variants, half before and half after the fast "
            f"run), {per_variant:.2f} s per variant"
        )
        print(
            f"extrapolated to {layers} layers x {variants} variant(s): {naive_total:.1f} s "
            f"({naive_total / layers:.2f} s per layer); the fast path took {fast_total / naive_total:.0%} of that "
            f"({naive_total / fast_total:.1f}x faster)"
        )
        print(
            f"fast vs naive on those layers: max |metric diff| {max(metric_diffs):.2e}, "
            f"max relative noise diff {max(noise_diffs):.2e}"
        )
        result.update(
            naive_layers_measured=len(nodes),
            naive_per_variant_s=per_variant,
            naive_extrapolated_total_s=naive_total,
            speedup=naive_total / fast_total,
            max_metric_diff=max(metric_diffs),
            max_relative_noise_diff=max(noise_diffs),
        )

    if args.max_drop is not None:
        t = time.perf_counter()
        choice = choose_fallback(
            fp32, amax, data, sensitivity=sens, max_drop=args.max_drop, batch_size=args.batch_size
        )
        took = time.perf_counter() - t
        print(
            f"\n## fallback for --max-drop {args.max_drop}: {len(choice.nodes)} layers FP16, mixed model "
            f"{choice.metric:.4f} (FP32 {choice.fp32_metric:.4f}, all INT8 {choice.int8_metric:.4f}), "
            f"budget {'met' if choice.met else 'NOT met'}, INT8 share of MACs {100 * choice.int8_mac_share:.1f}%; "
            f"{len(choice.evaluations)} full evaluations in {took:.1f} s"
        )
        result["fallback"] = {**choice.to_json(), "total_s": took}
    result["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
