"""The table and plot of a bench.json document."""

from __future__ import annotations

from rich.console import Console

from trtq.benchmark import plot_bench, render_table


def _row(name: str, batch: int, backend: str, **extra: object) -> dict:
    stats = dict(min_ms=1.0, median_ms=1.5, mean_ms=1.6, p90_ms=2.0, p95_ms=2.5, p99_ms=3.0)
    return {"name": name, "batch": batch, "backend": backend, "throughput_per_s": 640.0, **stats, **extra}


DOC = {
    "results": [
        _row("model.onnx", 1, "onnxruntime"),
        _row("model.plan", 1, "tensorrt", cuda_graph=True),
        _row("model.plan", 8, "tensorrt", cuda_graph=False),
    ]
}


def test_table_marks_cuda_graph_rows():
    console = Console(record=True, width=200)
    console.print(render_table(DOC))
    lines = [ln for ln in console.export_text().splitlines() if "model." in ln]
    assert len(lines) == 3
    assert "+graph" not in lines[0] and "tensorrt +graph" in lines[1] and "+graph" not in lines[2]
    assert "1.500" in lines[0] and "640.0" in lines[0]


def test_plot_is_a_png(tmp_path):
    path = plot_bench(DOC, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
