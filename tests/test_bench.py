"""The benchmark harness: statistics, the timing loop, ONNX Runtime on the CPU, bench.json / PNG / table.

The TensorRT timing path (CUDA events, CUDA graphs, copies) needs a GPU; `test_time_cuda_on_a_torch_workload`
runs only where torch sees one. No GPU was available where these tests were written.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtq.benchmark import (
    BenchSettings,
    _loop,
    bench,
    latency_stats,
    make_runner,
    parse_batches,
    render_table,
)
from trtq.cli import main
from trtq.errors import TensorRTUnavailable, UsageError


def _conv_onnx(path: Path, batch: str | int = "N") -> Path:
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["y"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, 8, 16, 16])],
        [w],
    )
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    return path


def test_latency_stats_match_an_independent_reference():
    rng = np.random.default_rng(1)
    samples = list(rng.gamma(4.0, 0.5, size=257))
    s = latency_stats(samples, batch=8)
    q = statistics.quantiles(samples, n=100, method="inclusive")  # q[k-1] is the k-th percentile
    assert s["median_ms"] == pytest.approx(statistics.median(samples))
    assert s["p90_ms"] == pytest.approx(q[89])
    assert s["p95_ms"] == pytest.approx(q[94])
    assert s["p99_ms"] == pytest.approx(q[98])
    assert s["mean_ms"] == pytest.approx(statistics.fmean(samples))
    assert s["min_ms"] == min(samples) and s["max_ms"] == max(samples)
    assert s["std_ms"] == pytest.approx(statistics.pstdev(samples))
    assert s["iterations"] == 257
    assert s["throughput_per_s"] == pytest.approx(8 * 257 / (sum(samples) / 1000))


def test_latency_stats_simple_numbers():
    s = latency_stats([1.0, 2.0, 3.0, 4.0], batch=2)
    assert (s["min_ms"], s["median_ms"], s["mean_ms"], s["max_ms"]) == (1.0, 2.5, 2.5, 4.0)
    assert s["throughput_per_s"] == pytest.approx(2 * 4 / 0.010)  # 8 items in 10 ms
    with pytest.raises(ValueError):
        latency_stats([], batch=1)


def test_loop_stops_at_max_seconds_but_not_before_min_iterations():
    calls = []

    def slow() -> float:
        calls.append(1)
        return 400.0  # ms

    assert len(_loop(slow, BenchSettings(iterations=100, max_seconds=1.0, min_iterations=2))) == 3
    calls.clear()
    assert len(_loop(slow, BenchSettings(iterations=100, max_seconds=0.1, min_iterations=5))) == 5
    assert len(_loop(lambda: 1.0, BenchSettings(iterations=7, max_seconds=None))) == 7


def test_parse_batches_and_settings():
    assert parse_batches("1,8,8,32") == (1, 8, 32)
    with pytest.raises(UsageError):
        parse_batches("0,1")
    with pytest.raises(UsageError):
        parse_batches("a")
    with pytest.raises(UsageError):
        BenchSettings(iterations=0)


def test_make_runner_by_suffix(tmp_path):
    onnx_path = _conv_onnx(tmp_path / "m.onnx")
    assert type(make_runner(onnx_path)).__name__ == "OnnxRuntimeRunner"
    (tmp_path / "m.plan").write_bytes(b"x")
    assert type(make_runner(tmp_path / "m.plan")).__name__ == "TensorRTRunner"
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(UsageError, match="give .onnx, .plan or .engine"):
        make_runner(tmp_path / "m.txt")
    with pytest.raises(UsageError, match="does not exist"):
        make_runner(tmp_path / "nope.onnx")


def test_engine_without_tensorrt_stops_cleanly(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    (tmp_path / "m.plan").write_bytes(b"x")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        bench([tmp_path / "m.plan"], BenchSettings(batches=(1,), warmup=0, iterations=1))


def test_bench_onnxruntime_writes_json_png_and_table(tmp_path):
    a = _conv_onnx(tmp_path / "a.onnx")
    b = _conv_onnx(tmp_path / "fixed.onnx", batch=1)
    settings = BenchSettings(batches=(1, 4), warmup=1, iterations=5, threads=1)
    doc = bench([a, b], settings, out_dir=tmp_path / "out")
    rows = [(r["name"], r["batch"]) for r in doc["results"]]
    assert rows == [("a.onnx", 1), ("a.onnx", 4), ("fixed.onnx", 1)]
    assert doc["skipped"] == [{"artifact": str(b), "batch": 4, "reason": "input 'x' has a fixed batch of 1"}]
    for r in doc["results"]:
        assert r["backend"] == "onnxruntime" and r["iterations"] == 5
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


def test_bench_cli(tmp_path, capsys):
    a = _conv_onnx(tmp_path / "a.onnx")
    out = tmp_path / "b"
    argv = [
        "bench",
        str(a),
        "--batch",
        "2",
        "--warmup",
        "0",
        "--iterations",
        "3",
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["batch"] for r in doc["results"]] == [2]
    assert main(argv) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_time_cuda_on_a_torch_workload():
    """CUDA events on a non-default stream and CUDA graph capture, on a torch matmul (GPU only)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    from trtq.benchmark import time_cuda

    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x = torch.randn(1024, 1024, device="cuda")
        y = torch.empty_like(x)

    def step() -> None:
        torch.matmul(x, x, out=y)

    for graph in (False, True):
        samples, notes = time_cuda(step, stream, BenchSettings(warmup=3, iterations=20, cuda_graph=graph))
        assert len(samples) == 20 and all(s > 0 for s in samples)
        assert notes["cuda_graph"] is graph
