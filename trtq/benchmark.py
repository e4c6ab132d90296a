"""Latency benchmarks: one harness for ONNX files on ONNX Runtime (CPU) and TensorRT engines (GPU).

For every artifact and batch size: warm-up runs, then timed runs; min / median / mean / p90 / p95 / p99
latency and throughput; a table, a PNG plot and bench.json.

* ONNX Runtime (`.onnx`): wall clock (`time.perf_counter`) around each `session.run`, on the CPU, Q/DQ
  executed as written (like TensorRT), so a user without a GPU can compare ONNX files. It says nothing
  about TensorRT speed.
* TensorRT (`.plan`, `.engine`): CUDA events recorded on the runner's non-default stream around each
  inference; host<->device copies (pinned memory) inside the timed region unless `include_copies=False`;
  optionally the inference is captured once in a CUDA graph and replayed (`cuda_graph=True`).

Percentiles use linear interpolation between closest ranks (numpy's default; the same as
`statistics.quantiles(..., method="inclusive")`). Throughput is batch x iterations / total timed time.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtq import __version__
from trtq.backends.base import BaseRunner
from trtq.errors import UsageError
from trtq.files import check_writable, write_bytes, write_json

__all__ = [
    "BenchSettings",
    "latency_stats",
    "bench",
    "make_runner",
    "time_host",
    "time_cuda",
    "render_table",
    "plot_bench",
    "parse_batches",
]

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


@dataclass
class BenchSettings:
    """How to benchmark.

    Attributes:
        batches: batch sizes to time.
        warmup: untimed runs before timing, per batch size.
        iterations: timed runs per batch size (fewer when `max_seconds` runs out first).
        max_seconds: stop timing a batch size after this much timed time (at least `min_iterations` runs).
        min_iterations: timed runs always made.
        cuda_graph: TensorRT only: capture one inference in a CUDA graph and replay it.
        include_copies: TensorRT only: time host->device and device->host copies too.
        threads: ONNX Runtime intra-op threads (None: its default).
        seed: seed of the random inputs.
    """

    batches: tuple[int, ...] = (1, 8)
    warmup: int = 10
    iterations: int = 100
    max_seconds: float | None = 10.0
    min_iterations: int = 5
    cuda_graph: bool = False
    include_copies: bool = True
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.batches = tuple(int(b) for b in self.batches)
        if not self.batches or any(b < 1 for b in self.batches):
            raise UsageError(
                f"--batch {','.join(map(str, self.batches))}: batch sizes must be positive integers"
            )
        if self.iterations < 1 or self.warmup < 0 or self.min_iterations < 1:
            raise UsageError("--iterations must be >= 1 and --warmup >= 0")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UsageError("--max-seconds must be positive")


def parse_batches(text: str) -> tuple[int, ...]:
    """`--batch 1,8,32` for the benchmark: the list of batch sizes to time."""
    try:
        values = tuple(int(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(f"--batch {text!r}: give batch sizes separated by commas, e.g. 1,8,32") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--batch {text!r}: batch sizes must be positive")
    return tuple(dict.fromkeys(values))


def latency_stats(samples_ms: Sequence[float], batch: int) -> dict[str, float]:
    """Statistics of per-inference latencies (milliseconds) at one batch size."""
    a = np.asarray(list(samples_ms), dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    total_s = float(a.sum()) / 1000.0
    return {
        "iterations": int(a.size),
        "min_ms": float(a.min()),
        "median_ms": float(p50),
        "mean_ms": float(a.mean()),
        "p90_ms": float(p90),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(a.max()),
        "std_ms": float(a.std()),
        "throughput_per_s": float(batch * a.size / total_s) if total_s > 0 else float("inf"),
    }


# --- timing loops -----------------------------------------------------------------------------------
def _loop(run_once: Callable[[], float], settings: BenchSettings) -> list[float]:
    samples: list[float] = []
    spent = 0.0
    for i in range(settings.iterations):
        ms = run_once()
        samples.append(ms)
        spent += ms / 1000.0
        if (
            settings.max_seconds is not None
            and spent >= settings.max_seconds
            and i + 1 >= settings.min_iterations
        ):
            break
    return samples


def time_host(runner: BaseRunner, feed: Mapping[str, np.ndarray], settings: BenchSettings) -> list[float]:
    """Wall-clock latency (ms) of `runner.infer(feed)` after warm-up (CPU backends)."""
    for _ in range(settings.warmup):
        runner.infer(feed)

    def once() -> float:
        start = time.perf_counter()
        runner.infer(feed)
        return (time.perf_counter() - start) * 1000.0

    return _loop(once, settings)


def time_cuda(
    step: Callable[[], None],
    stream: Any,
    settings: BenchSettings,
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Latency (ms) of `step` enqueued on a non-default CUDA `stream`, timed with CUDA events.

    Args:
        step: enqueues one inference on `stream` (no synchronisation).
        stream: a `torch.cuda.Stream` (not the default stream).
        settings: warm-up, iterations, CUDA graph.
        before: enqueues host->device copies (timed when given).
        after: enqueues device->host copies (timed when given).

    Returns:
        (samples, notes): notes say whether a CUDA graph was used, or why not.
    """
    import torch

    notes: dict[str, Any] = {"cuda_graph": False}
    with torch.cuda.stream(stream):
        for _ in range(max(1, settings.warmup)):  # also the run before capture TensorRT needs
            if before:
                before()
            step()
            if after:
                after()
        stream.synchronize()
        replay: Callable[[], None] = step
        if settings.cuda_graph:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                    step()
                stream.synchronize()
                replay = graph.replay
                notes["cuda_graph"] = True
            except Exception as e:  # e.g. an engine with data-dependent shapes
                notes["cuda_graph_error"] = f"{type(e).__name__}: {e}"
                torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def once() -> float:
            start.record(stream)
            if before:
                before()
            replay()
            if after:
                after()
            end.record(stream)
            end.synchronize()
            return float(start.elapsed_time(end))

        return _loop(once, settings), notes


# --- artifacts --------------------------------------------------------------------------------------
def make_runner(artifact: str | Path, *, threads: int | None = None) -> BaseRunner:
    """A runner for an artifact: .onnx -> ONNX Runtime (CPU), .plan/.engine -> TensorRT (GPU)."""
    path = Path(artifact)
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from trtq.backends.onnxrt import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, threads=threads, name=path.name)
    if suffix in ENGINE_SUFFIXES:
        from trtq.engines.runner import TensorRTRunner

        return TensorRTRunner(path, name=path.name)
    raise UsageError(f"{path}: cannot run a {suffix or 'suffix-less'} file; give .onnx, .plan or .engine")


def _feed(
    runner: BaseRunner, batch: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray] | None, str]:
    """Random inputs at `batch`, or (None, reason) when this batch size cannot run."""
    feed = {}
    for name, (dtype, shape) in runner.input_metadata().items():
        dims: list[int] = []
        rng_fn = getattr(runner, "profile_range", None)
        prof = rng_fn(name) if rng_fn else None
        for axis, d in enumerate(shape):
            dynamic = d is None or isinstance(d, str) or (isinstance(d, int) and d < 0)
            if axis == 0:
                if dynamic:
                    if prof and not prof[0][0] <= batch <= prof[2][0]:
                        return (
                            None,
                            f"batch {batch} is outside the engine's profile ({prof[0][0]}..{prof[2][0]})",
                        )
                    dims.append(batch)
                elif int(d) != batch:
                    return None, f"input {name!r} has a fixed batch of {d}"
                else:
                    dims.append(int(d))
            elif dynamic:
                if prof:
                    dims.append(int(prof[1][axis]))
                else:
                    raise UsageError(
                        f"input {name!r} has a dynamic axis {axis} besides the batch; benchmarks need a fixed shape"
                    )
            else:
                dims.append(int(d))
        dt = np.dtype(dtype)
        if np.issubdtype(dt, np.floating):
            feed[name] = rng.standard_normal(dims).astype(dt)
        else:
            feed[name] = np.zeros(dims, dtype=dt)
    return feed, ""


def _host_info() -> dict[str, Any]:
    import os

    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def bench(
    artifacts: Sequence[str | Path],
    settings: BenchSettings | None = None,
    *,
    out_dir: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Benchmark artifacts at every batch size; optionally write bench.json and bench.png to `out_dir`.

    Returns:
        The bench.json document: settings, host, `results` (one row per artifact and batch size, with
        latency statistics) and `skipped` (artifact, batch, reason).
    """
    from trtq.progress import status

    settings = settings or BenchSettings()
    if not artifacts:
        raise UsageError("give at least one artifact to benchmark (.onnx, .plan or .engine)")
    if out_dir is not None:
        out_dir = Path(out_dir)
        for name in ("bench.json", "bench.png"):
            check_writable(out_dir / name, force)
    runners = [make_runner(a, threads=settings.threads) for a in artifacts]  # fail early on bad paths
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    devices: dict[str, Any] = {}
    for artifact, runner in zip(artifacts, runners):
        rng = np.random.default_rng(settings.seed)
        with runner:
            cuda = hasattr(runner, "enqueue")
            backend = "tensorrt" if cuda else "onnxruntime"
            if cuda and "gpu" not in devices:
                from trtq.engines.metadata import gpu_info

                devices["gpu"] = gpu_info()
            for batch in settings.batches:
                feed, reason = _feed(runner, batch, rng)
                if feed is None:
                    skipped.append({"artifact": str(artifact), "batch": batch, "reason": reason})
                    continue
                with status(f"timing {Path(artifact).name} at batch {batch}"):
                    notes: dict[str, Any] = {}
                    if cuda:
                        runner.bind(feed)  # type: ignore[attr-defined]
                        copies = settings.include_copies
                        samples, notes = time_cuda(
                            runner.enqueue,  # type: ignore[attr-defined]
                            runner.stream,  # type: ignore[attr-defined]
                            settings,
                            before=runner.copy_inputs if copies else None,  # type: ignore[attr-defined]
                            after=runner.copy_outputs if copies else None,  # type: ignore[attr-defined]
                        )
                        notes["includes_copies"] = copies
                    else:
                        samples = time_host(runner, feed, settings)
                results.append(
                    {
                        "artifact": str(artifact),
                        "name": Path(artifact).name,
                        "backend": backend,
                        "device": "gpu" if cuda else "cpu",
                        "batch": batch,
                        **latency_stats(samples, batch),
                        **notes,
                    }
                )
    doc = {
        "trtq_version": __version__,
        "settings": asdict(settings),
        "host": {**_host_info(), **devices},
        "timing": {
            "onnxruntime": "wall clock around session.run on the CPU",
            "tensorrt": "CUDA events on a non-default stream",
        },
        "results": results,
        "skipped": skipped,
    }
    if out_dir is not None:
        write_json(out_dir / "bench.json", doc)
        if results:
            plot_bench(doc, out_dir / "bench.png")
        doc["files"] = [str(out_dir / "bench.json")] + ([str(out_dir / "bench.png")] if results else [])
    return doc


# --- presenting -------------------------------------------------------------------------------------
def render_table(doc: Mapping[str, Any]) -> Any:
    """A rich Table of the results."""
    from rich.table import Table

    table = Table(title="latency (ms) and throughput")
    for col in ("artifact", "backend", "batch", "min", "median", "mean", "p90", "p95", "p99", "items/s"):
        table.add_column(col, justify="left" if col in ("artifact", "backend") else "right")
    for r in doc["results"]:
        backend = r["backend"] + (" +graph" if r.get("cuda_graph") else "")
        table.add_row(
            r["name"],
            backend,
            str(r["batch"]),
            *(f"{r[k]:.3f}" for k in ("min_ms", "median_ms", "mean_ms", "p90_ms", "p95_ms", "p99_ms")),
            f"{r['throughput_per_s']:.1f}",
        )
    return table


def plot_bench(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Median latency (p90-p99 whiskers) and throughput per batch size, one line per artifact (PNG)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_thr) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(dict.fromkeys(r["name"] for r in doc["results"]))
    for name in names:
        rows = sorted((r for r in doc["results"] if r["name"] == name), key=lambda r: r["batch"])
        b = [r["batch"] for r in rows]
        med = np.array([r["median_ms"] for r in rows])
        up = np.array([r["p99_ms"] for r in rows]) - med
        ax_lat.errorbar(b, med, yerr=[np.zeros_like(med), up], marker="o", capsize=3, label=name)
        ax_thr.plot(b, [r["throughput_per_s"] for r in rows], marker="o", label=name)
    for ax, title, ylabel in (
        (ax_lat, "latency: median, whisker to p99", "ms"),
        (ax_thr, "throughput", "items / s"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
