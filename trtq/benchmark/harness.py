"""`bench()`: every artifact at every batch size, with random inputs; bench.json and bench.png.

Each artifact becomes a runner (`trtq.runners.make_runner`, or a runner given as is); the runner's
interface decides how it is timed (`trtq.benchmark.timing.time_runner`).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from trtq import __version__
from trtq.benchmark.present import plot_bench
from trtq.benchmark.settings import BenchSettings, latency_stats
from trtq.benchmark.timing import time_runner
from trtq.errors import UsageError
from trtq.files import check_writable, write_json
from trtq.runners import BaseRunner, make_runner

__all__ = ["bench", "default_out_dir", "random_feed", "host_info", "TIMING"]

#: How each backend is timed, as bench.json records it.
TIMING = {
    "onnxruntime": "wall clock around session.run on the CPU",
    "tensorrt": "CUDA events on a non-default stream",
}


def random_feed(
    runner: BaseRunner, batch: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray] | None, str]:
    """Random inputs at `batch` for an active runner, or (None, reason) when this batch size cannot run.

    Float inputs are standard normal, others zeros. Dynamic non-batch axes take the runner's profile opt
    shape (`BaseRunner.profile_range`).

    Raises:
        UsageError: a dynamic non-batch axis without a profile to size it.
    """
    feed = {}
    for name, (dtype, shape) in runner.input_metadata().items():
        dims: list[int] = []
        prof = runner.profile_range(name)
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


def host_info() -> dict[str, Any]:
    """The CPU, Python and ONNX Runtime a benchmark ran on."""
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def default_out_dir(artifacts: Sequence[str | os.PathLike | BaseRunner], now: Any = None) -> Path:
    """`trtq bench`'s folder when `--out` is not given: a new `bench-YYYYMMDD-HHMMSS` beside the first file.

    A second run gets a folder of its own, so nothing is overwritten and no `--force` is needed.
    """
    import datetime

    first = next((a for a in artifacts if not isinstance(a, BaseRunner)), None)
    parent = Path(first).parent if first is not None else Path(".")
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    out, n = parent / f"bench-{stamp}", 2
    while out.exists():
        out, n = parent / f"bench-{stamp}-{n}", n + 1
    return out


def _label(artifact: str | os.PathLike | BaseRunner) -> tuple[str, str]:
    """(artifact, name) as bench.json records them."""
    if isinstance(artifact, BaseRunner):
        return artifact.name, artifact.name
    return str(artifact), Path(artifact).name


def bench(
    artifacts: Sequence[str | os.PathLike | BaseRunner],
    settings: BenchSettings | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Benchmark artifacts at every batch size; optionally write bench.json and bench.png to `out_dir`.

    Args:
        artifacts: .onnx / .plan / .engine / .trt files, or runners (used as given, e.g. a
            `TensorRTRunner` with another profile).
        settings: batch sizes, iterations, CUDA graph... (default `BenchSettings()`).
        out_dir: folder for bench.json and bench.png (nothing written when None).
        force: overwrite existing bench.json / bench.png.

    Returns:
        The bench.json document: settings, host, `results` (one row per artifact and batch size, with
        latency statistics) and `skipped` (artifact, batch, reason).

    Raises:
        UsageError: no artifacts, a missing or unrunnable file, an output that exists without `force`.
        TensorRTUnavailable: an engine where TensorRT or a GPU is missing.
    """
    from trtq.progress import status

    settings = settings or BenchSettings()
    if not artifacts:
        raise UsageError("give at least one artifact to benchmark (.onnx, .plan or .engine)")
    if out_dir is not None:
        out_dir = Path(out_dir)
        for name in ("bench.json", "bench.png"):
            check_writable(out_dir / name, force)
    runners = [  # fail early on bad paths
        a if isinstance(a, BaseRunner) else make_runner(a, threads=settings.threads) for a in artifacts
    ]
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    devices: dict[str, Any] = {}
    for artifact, runner in zip(artifacts, runners):
        label, name = _label(artifact)
        rng = np.random.default_rng(settings.seed)
        with runner:
            if runner.device == "cuda" and "gpu" not in devices:
                from trtq.engines.metadata import gpu_info

                devices["gpu"] = gpu_info()
            for batch in settings.batches:
                feed, reason = random_feed(runner, batch, rng)
                if feed is None:
                    skipped.append({"artifact": label, "batch": batch, "reason": reason})
                    continue
                with status(f"timing {name} at batch {batch}"):
                    samples, notes = time_runner(runner, feed, settings)
                results.append(
                    {
                        "artifact": label,
                        "name": name,
                        "backend": runner.backend,
                        "device": "gpu" if runner.device == "cuda" else "cpu",
                        "batch": batch,
                        **latency_stats(samples, batch),
                        **notes,
                    }
                )
    doc = {
        "trtq_version": __version__,
        "settings": asdict(settings),
        "host": {**host_info(), **devices},
        "timing": dict(TIMING),
        "results": results,
        "skipped": skipped,
    }
    if out_dir is not None:
        write_json(out_dir / "bench.json", doc)
        if results:
            plot_bench(doc, out_dir / "bench.png")
        doc["files"] = [str(out_dir / "bench.json")] + ([str(out_dir / "bench.png")] if results else [])
    return doc
