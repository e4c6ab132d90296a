"""The data section: subsets (0 = all on the command line), batch size, preprocessing from options."""

from __future__ import annotations

from argparse import Namespace

import pytest

from trtq.config import DataConfig, preprocess_from_args
from trtq.data import IMAGENET_MEAN, Preprocess
from trtq.errors import UsageError


def test_preprocess_from_args():
    assert preprocess_from_args(Namespace()) is None
    assert preprocess_from_args(Namespace(size=64, resize=72)) == Preprocess(size=64, resize=72)
    grey = preprocess_from_args(Namespace(channels=1))
    assert grey.channels == 1 and grey.mean == pytest.approx((sum(IMAGENET_MEAN) / 3,))
    raw = preprocess_from_args(Namespace(preset="raw", no_resize=True, size=8, mean=(0.5,), std=(0.5,)))
    assert raw == Preprocess(size=8, resize=None, mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(UsageError, match="--resize and --no-resize contradict each other"):
        preprocess_from_args(Namespace(resize=10, no_resize=True))
    with pytest.raises(UsageError, match="--resize 32 is smaller than --size 64"):
        preprocess_from_args(Namespace(size=64, resize=32))
    with pytest.raises(UsageError, match="--preset 'cifar': choose from imagenet, raw"):
        preprocess_from_args(Namespace(preset="cifar"))


@pytest.mark.parametrize(
    "section, message",
    [
        (DataConfig(calib_samples=-5), "--calib-samples must be a positive number of samples"),
        (DataConfig(eval_samples=0), "--eval-samples must be a positive number of samples"),
        (DataConfig(batch_size=0), "--batch-size must be >= 1"),
    ],
)
def test_data_checks_name_the_option(section, message):
    with pytest.raises(UsageError, match=message):
        section.validate()


def test_preprocessing_is_recorded_as_json_values():
    cfg = DataConfig(
        calib_data="c/", preprocess=Preprocess(size=8, resize=None, mean=(0.5,), std=(0.5,), channels=1)
    )
    doc = cfg.to_json()
    assert doc["calib_data"] == "c/" and doc["preprocess"]["size"] == 8 and doc["preprocess"]["mean"] == [0.5]


def test_preset_keyword_with_preprocess_fields_over_it():
    from trtq.config.data import with_preset
    from trtq.data import PRESETS

    assert with_preset({"calib": "mse"}) == {"calib": "mse"}
    assert with_preset({"preset": "yolo"})["preprocess"] == PRESETS["yolo"]
    got = with_preset({"preset": "yolo", "preprocess": {"size": 320}})["preprocess"]
    assert got.size == 320 and got.letterbox and got.mean == (0.0, 0.0, 0.0) and isinstance(got.std, tuple)
    with pytest.raises(UsageError, match="preset 'coco': choose from imagenet, raw, yolo"):
        with_preset({"preset": "coco"})
    with pytest.raises(UsageError, match="give preset= with a preprocess dict of fields to change"):
        with_preset({"preset": "yolo", "preprocess": PRESETS["raw"]})


def test_task_detect_letterboxes_by_default_on_the_command_line():
    assert preprocess_from_args(Namespace(task="detect", size=320)).letterbox
    assert not preprocess_from_args(Namespace(task="segment", size=200)).letterbox
