"""`trtq sensitivity --task detect`: layers ranked by mAP (against FP32's detections without labels), with the
budget in mAP points."""

from __future__ import annotations

import json

import numpy as np

import trtq
from tests.zoo.detectors import make_detection_folder, tiny_yolo
from tests.zoo.models import export_model
from trtq.cli import main


def test_sensitivity_ranks_layers_by_map(tmp_path, capsys):
    export_model(
        tiny_yolo(), np.zeros((1, 3, 32, 32), np.float32), tmp_path / "m.onnx", output_names=("output0",)
    )
    data = make_detection_folder(tmp_path / "d")
    (data / "instances.json").unlink()  # unlabelled: FP32's detections are the reference
    run = tmp_path / "run"
    trtq.build(str(tmp_path / "m.onnx"), str(data), run, task="detect", preset="yolo", preprocess={"size": 32},
               calib="minmax", build_engine=False, typed_graph=False)  # fmt: skip
    args = ["sensitivity", "-m", str(run / "model.onnx"), "-c", str(run / "calibration.json"), "-d", str(data),
            "--task", "detect", "--preset", "yolo", "--size", "32", "--max-drop", "0.5", "--out",
            str(tmp_path / "s"), "--json"]  # fmt: skip
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["metric"] == "map50_95" and payload["fp32_metric"] == 1.0
    assert len(payload["ranked"]) == 5 and payload["fallback"]["max_drop_points"] == 0.5
    assert json.loads((tmp_path / "s" / "sensitivity.json").read_text())["metric"] == "map50_95"
