"""`--task detect|segment` end to end: mAP (or mIoU) for FP32, INT8 and the typed graph, per-class AP in
report.json and the worst classes in report.md, FP32 as the reference without labels, the decoder's settings
applied, the FP16 fallback budget in mAP points, and the task recorded for `--config` to repeat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import trtq
from tests.zoo.detectors import (
    fixed_boxes,
    make_detection_folder,
    make_mask_folder,
    outlier_yolo,
    tiny_segmenter,
)
from tests.zoo.models import export_model
from trtq.config import BuildConfig
from trtq.pipeline.stages import TaskStage


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("task")
    x = np.zeros((1, 3, 32, 32), np.float32)
    out = {
        "coco": make_detection_folder(root / "coco"),
        "yolo": make_detection_folder(root / "yolo", fmt="yolo"),
        "masks": make_mask_folder(root / "masks"),
        "fixed": root / "fixed.onnx",
        "seg": root / "seg.onnx",
        "outlier": root / "outlier.onnx",
    }
    export_model(fixed_boxes(), x, out["fixed"], output_names=("output0",))
    export_model(tiny_segmenter(), x, out["seg"], output_names=("out",))
    export_model(outlier_yolo(), x, out["outlier"], output_names=("output0",))
    out["unlabelled"] = make_detection_folder(root / "unlabelled")
    (out["unlabelled"] / "instances.json").unlink()
    return out


@pytest.fixture(scope="module")
def coco_run(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtq.cli import main

    out = tmp_path_factory.mktemp("runs") / "coco"
    code = main(["build", "--model", str(files["fixed"]), "--calib-data", str(files["coco"]), "--eval-data",
                 str(files["coco"]), "--task", "detect", "--size", "32", "--out", str(out), "--no-engine",
                 "--calib", "minmax", "--quiet"])  # fmt: skip
    assert code == 0
    return out


def test_labelled_detection_reports_map_for_every_model(coco_run: Path):
    doc = json.loads((coco_run / "report.json").read_text())
    models = doc["validation"]["models"]
    assert set(models) == {"fp32", "int8", "typed"}
    for values in models.values():  # the fixed boxes are the labels, mapped back through the letterbox
        assert values["map50_95"] == pytest.approx(1.0) and values["map50"] == pytest.approx(1.0)
    det = doc["detection"]
    assert (
        det["labelled"]
        and det["reference"] == "labels"
        and det["decoder"] == "yolov8"
        and det["num_classes"] == 3
    )
    assert det["settings"] == {
        "conf_threshold": 0.001,
        "iou_threshold": 0.7,
        "max_det": 300,
        "num_classes": None,
        "reference_conf": 0.25,
    }
    per_class = det["models"]["int8"]["per_class"]
    assert [(c["name"], c["instances"]) for c in per_class] == [
        ("class_0", 4),
        ("class_1", 4),
        ("class_2", 4),
    ]
    md = (coco_run / "report.md").read_text()
    assert (
        "## Detection" in md and "Worst classes (INT8 mAP50-95, lowest 3)" in md and "| class_0 | 4 |" in md
    )
    assert doc["config"]["task"]["task"] == "detect" and doc["config"]["data"]["preprocess"]["letterbox"]


def test_the_recorded_configuration_repeats_the_task(coco_run: Path):
    cfg = BuildConfig.load(coco_run / "report.json")
    assert cfg.task.task == "detect" and cfg.data.preprocess["letterbox"] is True
    assert cfg.to_dict()["task"] == json.loads((coco_run / "report.json").read_text())["config"]["task"]


def test_python_api_with_yolo_labels_and_the_decoders_settings(files: dict[str, Path], tmp_path: Path):
    result = trtq.build(
        str(files["fixed"]), str(files["yolo"]), tmp_path / "r", task="detect", eval_data=str(files["yolo"]),
        decoder="yolov8", preset="yolo", preprocess={"size": 32}, conf_threshold=0.85, build_engine=False,
        calib="minmax",
    )  # fmt: skip
    # only the class-0 box scores above 0.85: that class is found, the other two are missed
    assert result.validation.value("fp32", "map50_95") == pytest.approx(1 / 3, abs=1e-3)
    assert result.validation.value("int8", "map50") == pytest.approx(1 / 3, abs=1e-3)


def test_without_labels_fp32_is_the_reference_and_max_drop_is_in_map_points(
    files: dict[str, Path], tmp_path: Path
):
    common = dict(task="detect", preset="yolo", preprocess={"size": 32}, calib="minmax", build_engine=False)
    plain = trtq.build(str(files["outlier"]), str(files["unlabelled"]), tmp_path / "a", **common)
    v = plain.validation
    assert v.value("fp32", "map50_95") == pytest.approx(1.0)  # FP32 against its own detections
    assert v.value("int8", "map50_95") < 0.9  # the outlier channel's scale zeroes the head's inputs
    det = next(s for s in plain.sections if s.key == "detection").data
    assert det["labelled"] is False and det["reference"] == "fp32 detections"
    mixed = trtq.build(str(files["outlier"]), str(files["unlabelled"]), tmp_path / "b", metric="map50_95",
                       max_drop=0.5, **common)  # fmt: skip
    fb = mixed.to_json()["sensitivity"]["fallback"]
    assert fb["metric"] == "map50_95" and fb["max_drop_points"] == 0.5 and fb["met"]
    assert fb["nodes"] == ["/box/Conv"]  # the box branch's input is what INT8 loses
    assert (
        fb["drop_points"] == pytest.approx(100 * (fb["fp32_metric"] - fb["mixed_metric"]))
        and fb["drop_points"] <= 0.5
    )
    assert mixed.validation.value("int8", "map50_95") >= 0.995


def test_segmentation_reports_miou(files: dict[str, Path], tmp_path: Path):
    result = trtq.build(
        str(files["seg"]), str(files["masks"]), tmp_path / "s", task="segment", eval_data=str(files["masks"]),
        preset="yolo", preprocess={"size": 32}, build_engine=False, calib="minmax",
    )  # fmt: skip
    v = result.validation
    assert v.metric("miou") is not None and 0.0 < v.value("fp32", "miou") < 1.0
    assert abs(v.value("int8", "miou") - v.value("fp32", "miou")) < 0.05


def test_the_stage_is_only_active_for_detection_and_segmentation():
    from trtq.pipeline import RunContext

    stage = TaskStage()
    ctx = RunContext.__new__(RunContext)
    ctx.config = BuildConfig()
    assert not stage.active(ctx)
    ctx.config = BuildConfig().with_overrides(task="segment")
    assert stage.active(ctx)
