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


def test_piped_table_keeps_long_names_whole():
    """Piped output (not a terminal, 80 columns by default) used to cut names to "mode…"; rows must stay distinct."""
    import io

    from trtq.benchmark import print_table

    doc = {"results": [_row("model.int8.onnx", 1, "onnxruntime"), _row("model.trt.onnx", 1, "onnxruntime")]}
    buf = io.StringIO()
    print_table(doc, file=buf)
    text = buf.getvalue()
    assert "model.int8.onnx" in text and "model.trt.onnx" in text and "…" not in text


def test_same_file_names_in_two_folders_are_told_apart():
    from trtq.benchmark import display_names

    rows = [_row("model.onnx", 1, "onnxruntime", artifact=f"run{i}/model.onnx") for i in (1, 2)]
    rows.append(_row("other.onnx", 1, "onnxruntime", artifact="run1/other.onnx"))
    assert display_names({"results": rows}) == {
        "run1/model.onnx": "run1/model.onnx",
        "run2/model.onnx": "run2/model.onnx",
        "run1/other.onnx": "other.onnx",
    }


def test_plot_axis_names_the_batch_sizes():
    """The x axis used to read 2^0, 2^1, ...; it must name the batch sizes measured."""
    import matplotlib.pyplot as plt

    from trtq.benchmark.present import bench_figure

    doc = {"results": [_row("a.onnx", b, "onnxruntime") for b in (1, 8, 32)]}
    fig = bench_figure(doc)
    fig.canvas.draw()
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "8", "32"]
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)
