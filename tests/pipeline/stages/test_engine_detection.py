"""The engine step of a `--task detect` build validates the engine by mAP against the same labels (TensorRT's parts
replaced by stand-ins, as in test_engine.py: no TensorRT here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.zoo.detectors import fixed_boxes, make_detection_folder
from tests.zoo.models import export_model
from trtq.pipeline import build


def test_engine_validated_by_map(tmp_path: Path, tensorrt_stand_ins: dict[str, object]) -> None:
    export_model(
        fixed_boxes(), np.zeros((1, 3, 32, 32), np.float32), tmp_path / "m.onnx", output_names=("output0",)
    )
    data = make_detection_folder(tmp_path / "d")
    res = build(str(tmp_path / "m.onnx"), str(data), tmp_path / "run", task="detect", eval_data=str(data),
                preset="yolo", preprocess={"size": 32}, calib="minmax")  # fmt: skip
    v = res.engine_info.validation
    assert v.value("candidate", "map50_95") == pytest.approx(1.0) and v.value(
        "reference", "map50"
    ) == pytest.approx(1.0)
    assert res.engine_status.startswith("built; engine mAP50-95 100.00%")
