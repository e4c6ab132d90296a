"""`trtq qat` from the command line repeats the API's run (`trtq/cli/qat.py` end to end).

These tests live with the QAT tests because they compare against the package's shared QAT run; the parser
and the printed summary are tested in tests/cli/test_qat.py.
"""

from __future__ import annotations

import json
from pathlib import Path


def test_cli_reproduces_the_api_run_with_the_same_seed(digits: dict, outlier_run, tmp_path: Path) -> None:
    from trtq.cli import main

    out = tmp_path / "cli"
    argv = [
        "qat", "--model", "trtq.demo:DigitsNet", "--checkpoint", str(digits["outlier_sd"]),
        "--train-data", str(digits["train"]), "--val-data", str(digits["val"]), "--out", str(out),
        "--calib", "minmax", "--epochs", "2", "--lr", "0.01", "--train-samples", "800", "--calib-samples", "256",
        "--threads", "1", "--no-build", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    mine = json.loads((out / "metrics.json").read_text())
    ref = json.loads((outlier_run.out_dir / "metrics.json").read_text())
    for m in (mine, ref):
        m.pop("timings_s")
    assert mine == ref  # bitwise: a run repeats exactly for a seed and a thread count
    assert (out / "model.qat.onnx").read_bytes() == (outlier_run.out_dir / "model.qat.onnx").read_bytes()
    assert not (out / "run").exists()


def test_cli_build_from_qat_hands_the_qat_graph_to_the_build_path(
    outlier_run, digits, tmp_path: Path
) -> None:
    from trtq.cli import main

    qat_path = outlier_run.artifacts["model.qat.onnx"]
    code = main(["build", "--from-qat", str(qat_path), "--eval-data", str(digits["val"]), "--out",
                 str(tmp_path / "run"), "--no-typed", "--quiet"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "run" / "model.int8.onnx").read_bytes() == Path(qat_path).read_bytes()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["qat"]["accuracy"] == outlier_run.metrics["accuracy"]
    assert main(["build", "--from-qat", str(qat_path), "--out", str(tmp_path / "r2"), "--quiet"]) == 2
