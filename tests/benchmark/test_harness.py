"""`bench()`: ONNX Runtime on the CPU end to end, bench.json / PNG / table, how runners are timed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.runners.fakes import CudaRunner, HostRunner
from trtq.benchmark import BenchSettings, bench, random_feed, render_table, timing
from trtq.errors import TensorRTUnavailable, UsageError


def test_engine_without_tensorrt_stops_cleanly(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    (tmp_path / "m.plan").write_bytes(b"x")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        bench([tmp_path / "m.plan"], BenchSettings(batches=(1,), warmup=0, iterations=1))


def test_bench_onnxruntime_writes_json_png_and_table(tmp_path, graph_file):
    a = graph_file("conv_relu", tmp_path / "a.onnx")
    b = graph_file("conv_relu", tmp_path / "fixed.onnx", batch=1)
    settings = BenchSettings(batches=(1, 4), warmup=1, iterations=5, threads=1)
    doc = bench([a, b], settings, out_dir=tmp_path / "out")
    rows = [(r["name"], r["batch"]) for r in doc["results"]]
    assert rows == [("a.onnx", 1), ("a.onnx", 4), ("fixed.onnx", 1)]
    assert doc["skipped"] == [{"artifact": str(b), "batch": 4, "reason": "input 'x' has a fixed batch of 1"}]
    for r in doc["results"]:
        assert r["backend"] == "onnxruntime" and r["iterations"] == 5
        assert r["device"] == "cpu" and "includes_copies" not in r
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
    written = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert written["results"] == doc["results"]
    assert written["settings"]["batches"] == [1, 4]
    assert (tmp_path / "out" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(render_table(doc))
    text = console.export_text()
    assert "a.onnx" in text and "fixed.onnx" in text and "median" in text
    with pytest.raises(UsageError, match="already exists"):
        bench([a], settings, out_dir=tmp_path / "out")


def test_bench_refuses_nothing_and_bad_files(tmp_path):
    with pytest.raises(UsageError, match="at least one artifact"):
        bench([])
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(UsageError, match="cannot run a .txt file"):
        bench([tmp_path / "m.txt"])


def test_bench_times_each_runner_as_its_interface_says(monkeypatch):
    """A CUDA-step runner gets CUDA-event timing, its profile and the GPU recorded; a host runner does not."""
    cuda_calls = []

    def fake_time_cuda(step, stream, settings, *, before=None, after=None):
        cuda_calls.append(stream)
        step()
        return [2.0] * settings.iterations, {"cuda_graph": False}

    monkeypatch.setattr(timing, "time_cuda", fake_time_cuda)
    monkeypatch.setattr("trtq.engines.metadata.gpu_info", lambda: {"name": "stand-in GPU"})
    host, cuda = HostRunner(), CudaRunner()
    doc = bench([host, cuda], BenchSettings(batches=(1, 8), warmup=0, iterations=3))
    rows = {(r["name"], r["batch"]): r for r in doc["results"]}
    assert set(rows) == {("host", 1), ("host", 8), ("cuda", 1)}
    assert doc["skipped"] == [
        {"artifact": "cuda", "batch": 8, "reason": "batch 8 is outside the engine's profile (1..4)"}
    ]
    assert rows["host", 1]["backend"] == "fake-host" and rows["host", 1]["device"] == "cpu"
    assert "includes_copies" not in rows["host", 1] and host.infers == 6
    cuda_row = rows["cuda", 1]
    assert cuda_row["backend"] == "fake-cuda" and cuda_row["device"] == "gpu"
    assert cuda_row["includes_copies"] is True and cuda_row["median_ms"] == 2.0
    assert cuda_calls == [cuda.stream] and cuda.infers == 0
    assert doc["host"]["gpu"] == {"name": "stand-in GPU"}
    assert not cuda.is_active and not host.is_active  # deactivated after timing


def test_random_feed_follows_metadata_and_profile():
    rng = np.random.default_rng(0)
    with CudaRunner() as r:
        feed, reason = random_feed(r, 3, rng)
        assert reason == "" and feed["x"].shape == (3, 4) and feed["x"].dtype == np.float32
        assert random_feed(r, 5, rng) == (None, "batch 5 is outside the engine's profile (1..4)")


def test_default_out_dir_never_reuses_a_folder(tmp_path):
    import datetime

    from trtq.benchmark import default_out_dir

    now = datetime.datetime(2026, 12, 1, 9, 30, 5)
    first = default_out_dir([tmp_path / "m.onnx"], now)
    assert first == tmp_path / "bench-20261201-093005"
    first.mkdir()
    assert default_out_dir([tmp_path / "m.onnx"], now) == tmp_path / "bench-20261201-093005-2"
