"""`trtq bench`: the table, bench.json and bench.png for ONNX files (ONNX Runtime, CPU); refuses to overwrite."""

from __future__ import annotations

import json

from trtq.cli import main


def test_bench_cli(tmp_path, capsys, graph_file):
    a = graph_file("conv_relu", tmp_path / "a.onnx")
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


def test_table_and_skipped_batches_are_printed(tmp_path, capsys, graph_file):
    fixed = graph_file("conv_relu", tmp_path / "fixed.onnx", batch=1)
    argv = [
        "bench",
        str(fixed),
        "--batch",
        "1,4",
        "--warmup",
        "0",
        "--iterations",
        "2",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "latency (ms) and throughput" in out  # the table (its columns depend on the terminal width)
    assert "skipped " + str(fixed) + " at batch 4: input 'x' has a fixed batch of 1" in out
    assert out.rstrip().endswith("bench.png") and "written: " in out
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["settings"]["iterations"] == 2


def test_bench_cli_default_folder_is_new_each_run(tmp_path, capsys, graph_file):
    """Without --out, each run gets its own bench-<time> folder beside the artifact: the second run needs no --force."""
    a = graph_file("conv_relu", tmp_path / "a.onnx")
    argv = ["bench", str(a), "--batch", "1", "--warmup", "0", "--iterations", "2", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)["files"]
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)["files"]
    folders = sorted(p.parent for p in tmp_path.glob("bench-*/bench.json"))
    assert len(folders) == 2 and first != second
    assert all(f.parent == tmp_path and f.name.startswith("bench-2") for f in folders)
