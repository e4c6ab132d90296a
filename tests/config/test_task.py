"""The task section: defaults (classification as before), every option checked up front, recorded and read back."""

from __future__ import annotations

from argparse import Namespace

import pytest

from trtq.config import BuildConfig, TaskConfig
from trtq.errors import UsageError


def test_defaults_are_todays_classification():
    cfg = BuildConfig().task
    assert cfg == TaskConfig() and cfg.task == "classify" and cfg.decoder is None
    assert (cfg.conf_threshold, cfg.iou_threshold, cfg.max_det) == (0.001, 0.7, 300)
    assert TaskConfig(task="detect").decoder_name == "yolov8"
    TaskConfig().validate()
    TaskConfig(task="detect", decoder="yolo11").validate()  # an alias
    TaskConfig(task="detect", decoder="some.module:decode").validate()  # imported when the run starts


@pytest.mark.parametrize(
    "cfg, message",
    [
        (TaskConfig(task="track"), r"--task 'track': choose from classify, detect, segment"),
        (
            TaskConfig(task="detect", decoder="yolox"),
            r"--decoder 'yolox' is not a registered decoder; choose from .*yolov8",
        ),
        (TaskConfig(decoder="yolov8"), "--decoder yolov8 applies to --task detect"),
        (TaskConfig(task="detect", conf_threshold=-0.1), r"--conf-threshold -0.1: give a number in \[0, 1\]"),
        (TaskConfig(task="detect", iou_threshold=1.5), r"--iou-threshold 1.5: give a number in \[0, 1\]"),
        (TaskConfig(task="detect", iou_threshold=float("nan")), "--iou-threshold nan"),
        (TaskConfig(task="detect", max_det=0), "--max-det 0: keep at least 1 detection per image"),
        (TaskConfig(task="detect", reference_conf=1.2), r"--reference-conf 1.2: give a number in \[0, 1\]"),
        (TaskConfig(task="detect", num_classes=0), "--num-classes 0: give a positive number of classes"),
        (TaskConfig(labels="x.json"), "--labels x.json applies to --task detect or segment"),
    ],
)
def test_each_option_is_checked_by_name(cfg, message):
    with pytest.raises(UsageError, match=message):
        cfg.validate()
    with pytest.raises(UsageError, match=message):  # before any stage: the whole configuration's check
        BuildConfig(model="m", out="o", task=cfg).with_overrides(calib_cache="c").validate_sections()


def test_from_args_takes_only_what_was_given():
    base = TaskConfig(task="detect", max_det=100)
    got = TaskConfig.from_args(Namespace(iou_threshold=0.65, decoder="boxes"), base)
    assert got == TaskConfig(task="detect", decoder="boxes", iou_threshold=0.65, max_det=100)
    assert TaskConfig.from_args(Namespace(), base) is base


def test_recorded_and_read_back():
    cfg = BuildConfig(model="m.onnx", out="o").with_overrides(
        task="detect", decoder="yolov8", conf_threshold=0.25, iou_threshold=0.65, max_det=100, labels="l.json",
        num_classes=3,
    )  # fmt: skip
    doc = cfg.to_dict()
    assert doc["task"] == {"task": "detect", "decoder": "yolov8", "num_classes": 3, "conf_threshold": 0.25,
                           "iou_threshold": 0.65, "max_det": 100, "reference_conf": 0.25, "labels": "l.json"}  # fmt: skip
    assert BuildConfig.from_dict(doc).task == cfg.task
    assert (
        BuildConfig.from_dict({k: v for k, v in doc.items() if k != "task"}).task == TaskConfig()
    )  # older reports
    with pytest.raises(UsageError, match="config section 'task' has unknown keys nms"):
        BuildConfig.from_dict({**doc, "task": {"nms": 1}})
    assert "l.json" in cfg.input_paths()
