"""`trtq validate --task detect`: a candidate scored by mAP against the labels (the reference's mAP beside it), and
the labels checked against the reference's classes."""

from __future__ import annotations

import json

import numpy as np

import trtq
from tests.zoo.detectors import fixed_boxes, make_detection_folder
from tests.zoo.models import export_model
from trtq.cli import main


def test_validate_reports_map_and_checks_the_labels(tmp_path, capsys):
    export_model(
        fixed_boxes(), np.zeros((1, 3, 32, 32), np.float32), tmp_path / "m.onnx", output_names=("output0",)
    )
    data = make_detection_folder(tmp_path / "d")
    run = tmp_path / "run"
    trtq.build(str(tmp_path / "m.onnx"), str(data), run, task="detect", preset="yolo", preprocess={"size": 32},
               calib="minmax", build_engine=False, typed_graph=False)  # fmt: skip
    base = ["validate", "-m", str(run / "model.int8.onnx"), "-r", str(run / "model.onnx"), "--task", "detect",
            "--size", "32"]  # fmt: skip
    assert main([*base, "-d", str(data), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["models"]["candidate"]["map50_95"] == 1.0 and doc["models"]["reference"]["map50"] == 1.0
    bad = make_detection_folder(tmp_path / "bad", fmt="yolo")
    (bad / "img_2.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    assert main([*base, "-d", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0
        and "--data" in err
        and "the labels hold class id 5 but the model scores 3" in err
    )
