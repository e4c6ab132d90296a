"""`trtq validate`: two artifacts on the same data through Polygraphy's Comparator; exit 1 on FAIL."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trtq.cli import main


@pytest.fixture
def classifiers(tmp_path, graph_file):
    """(reference, the same with Q/DQ, one with negated weights, 12 random samples)."""
    ref = graph_file("linear_classifier", tmp_path / "ref.onnx")
    same = graph_file("linear_classifier", tmp_path / "same.onnx", qdq=True)
    far = graph_file("linear_classifier", tmp_path / "far.onnx", weight_scale=-1.0)
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(1).standard_normal((12, 3, 4, 4)).astype(np.float32))
    return ref, same, far, data


def test_validate_cli_two_onnx_files(tmp_path, capsys, classifiers):
    ref, same, far, data = classifiers
    out = tmp_path / "validation.json"
    argv = [
        "validate",
        "--model",
        str(same),
        "--reference",
        str(ref),
        "--data",
        str(data),
        "--batch-size",
        "4",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["samples"] == 12 and doc["pass"] is True and doc["polygraphy"]["candidate"] is True
    assert doc["models"]["candidate"]["top1_agreement"] > 0.8
    assert "PASS" in capsys.readouterr().out
    # negated weights: the logits disagree -> exit 1
    argv[2] = str(far)
    assert main(argv) == 1
    assert "FAIL" in capsys.readouterr().out


def test_tolerances_and_subset_are_passed_to_the_comparison(tmp_path, capsys, classifiers):
    ref, _, far, data = classifiers
    argv = ["validate", "-m", str(far), "-r", str(ref), "-d", str(data), "--samples", "5", "--rtol", "1e9",
            "--atol", "1e9", "--check-error-stat", "max", "--json"]  # fmt: skip
    assert main(argv) == 0  # huge tolerances: even the negated model passes
    doc = json.loads(capsys.readouterr().out)
    assert doc["samples"] == 5
    assert doc["polygraphy"] == {"candidate": True, "rtol": 1e9, "atol": 1e9, "check_error_stat": "max"}


def test_existing_out_needs_force(tmp_path, capsys, classifiers):
    ref, same, _, data = classifiers
    out = tmp_path / "v.json"
    out.write_text("mine")
    argv = ["validate", "-m", str(same), "-r", str(ref), "-d", str(data), "--out", str(out)]
    assert main(argv) == 2 and out.read_text() == "mine"
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0 and json.loads(out.read_text())["pass"] is True
