"""`trtq sensitivity`: an FP32 ONNX + calibration.json + eval data -> ranking, fallback, mixed and typed graphs."""

from __future__ import annotations

import json

import numpy as np
import onnx

from tests.sensitivity.fixtures import OUTLIER_LAYER


def _inputs(tmp_path, outlier, samples: int) -> list[str]:
    """model.onnx, eval.npy (the first `samples`) and calibration.json in tmp_path; the `trtq sensitivity` argv
    that reads them."""
    from trtq.calibration import Calibration

    fp32, amax, x = outlier
    onnx.save(fp32, str(tmp_path / "model.onnx"))
    np.save(tmp_path / "eval.npy", x[:samples])
    Calibration.from_amax(amax, method="minmax").save(tmp_path / "calibration.json")
    return ["sensitivity", "-m", str(tmp_path / "model.onnx"), "-c", str(tmp_path / "calibration.json"),
            "-d", str(tmp_path / "eval.npy")]  # fmt: skip


def test_cli_sensitivity(tmp_path, outlier, capsys):
    from trtq.cli import main

    args = [*_inputs(tmp_path, outlier, 128), "--max-drop", "1", "--out", str(tmp_path / "out"), "--json"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["fallback"]["nodes"] == [OUTLIER_LAYER] and payload["ranked"][0] == OUTLIER_LAYER
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "sensitivity.json",
        "sensitivity.png",
        "sensitivity.md",
        "model.mixed.onnx",
        "model.trt.onnx",
    } <= names
    assert main(args) == 2  # the folder exists: refused without --force
    missing = ["sensitivity", "-m", str(tmp_path / "model.onnx"), "-c", str(tmp_path / "nope.json"),
               "-d", str(tmp_path / "eval.npy"), "--out", str(tmp_path / "o2")]  # fmt: skip
    assert main(missing) == 2
    assert "nope.json" in capsys.readouterr().err


def test_summary_text_ranks_layers_and_states_the_verdict(tmp_path, outlier, capsys):
    from trtq.cli import main

    args = [
        *_inputs(tmp_path, outlier, 64),
        "--fallback",
        OUTLIER_LAYER,
        "--out",
        str(tmp_path / "out"),
        "--no-typed",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert (
        "FP16 fallback: 1 layer(s); mixed model" in text and "(budget" not in text
    )  # a named set: no budget
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert "model.mixed.onnx" in names and "model.trt.onnx" not in names
    assert f"in {tmp_path / 'out'}" in text.splitlines()[-1]


def test_alone_int8_is_measured_only_when_asked(tmp_path, outlier, capsys):
    from trtq.cli import main

    base = [*_inputs(tmp_path, outlier, 64), "--no-typed"]
    docs, texts = {}, {}
    for flag in ([], ["--alone-int8"]):
        out = tmp_path / f"out{len(flag)}"
        assert main([*base, *flag, "--out", str(out)]) == 0
        texts[bool(flag)] = capsys.readouterr().out
        docs[bool(flag)] = json.loads((out / "sensitivity.json").read_text())
    assert all(layer["metric_quantized_alone"] is None for layer in docs[False]["layers"])
    assert all(isinstance(layer["metric_quantized_alone"], float) for layer in docs[True]["layers"])
    assert [e["node"] for e in docs[False]["layers"]] == [e["node"] for e in docs[True]["layers"]]
    assert "alone INT8" not in texts[False] and "alone INT8" in texts[True]
