"""`trtq.finetune.config`: `QATConfig`, the keywords of `trtq.qat` mapped onto it, its checks and its JSON."""

from __future__ import annotations

import json

import pytest

from trtq.config import CalibrationConfig
from trtq.errors import UsageError
from trtq.finetune import OVERRIDES, QATConfig, QATDataConfig, TrainConfig
from trtq.placement import PlacementConfig

#: A value for every keyword (what `trtq.qat` took before the configuration existed), and where it lands.
VALUES = {
    "calib": "mse", "calib_data": "c/", "calib_samples": 7, "train_samples": 8, "val_samples": 9,
    "preprocess": "raw", "epochs": 3, "lr": 0.5, "fp32_lr": 2.0, "optimizer": "adamw", "momentum": 0.8,
    "weight_decay": 0.1, "label_smoothing": 0.2, "warmup_epochs": 0.5, "freeze_bn_epoch": 1,
    "quant_delay_epochs": 1, "grad_clip": None, "batch_size": 4, "amp": False, "workers": 2, "seed": 5,
    "opset": 18, "weights": "DEFAULT", "checkpoint": "w.pt", "trust_pickle": True, "handoff": False,
    "typed_graph": False, "build_engine": False,
}  # fmt: skip

#: Data for the built-in loop (validate() checks settings, not files).
DATA = QATConfig(data=QATDataConfig(train_data="train/", val_data="val/"))


def test_every_keyword_lands_in_its_section_field() -> None:
    cfg = QATConfig().with_overrides(**VALUES)
    for key, value in VALUES.items():
        section, name = OVERRIDES[key]
        assert getattr(getattr(cfg, section), name) == value, key
    assert set(VALUES) | {"percentile", "exclude", "engine"} == set(OVERRIDES)


def test_no_method_given_means_the_build_default() -> None:
    from trtq.config.calibration import DEFAULT_METHOD

    assert QATConfig().calibration.method is None  # as for trtq build: None = the default method
    assert DATA.validate().method == DEFAULT_METHOD == "entropy"


def test_exclude_adds_to_the_placement_whatever_the_keyword_order() -> None:
    placement = PlacementConfig(exclude_nodes=("a",))
    one = QATConfig().with_overrides(exclude=["b"], placement=placement)
    two = QATConfig().with_overrides(placement=placement, exclude="b")
    assert one.placement.exclude_nodes == two.placement.exclude_nodes == ("a", "b")
    assert QATConfig().with_overrides(placement=None).placement == PlacementConfig()


def test_percentile_applies_to_the_percentile_method_only_as_before() -> None:
    cfg = DATA.with_overrides(percentile=99.0)
    assert cfg.validate().calibrator_kwargs() == {}  # entropy: the shortcut is ignored, not an error
    assert cfg.with_overrides(calib="percentile").calibrator_kwargs() == {"percentile": 99.0}
    with pytest.raises(UsageError, match="--calib-param num_bins"):
        DATA.with_overrides(
            calibration=CalibrationConfig(method="minmax", params={"num_bins": 10})
        ).validate()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"calib": "kl"}, "--calib 'kl' is not a method"),
        ({"calib": "all"}, "--calib all: QAT starts from one method"),
        ({"calib": "entropy,mse"}, "one method"),
        ({"opset": 12}, "--opset 12"),
        ({"device": "tpu"}, "--device 'tpu'"),
        ({"threads": 0}, "--threads must be >= 1"),
        ({"train_samples": -1}, "--train-samples"),
        ({"epochs": -1}, "--epochs"),
        ({"workers": -1}, "--workers"),
        ({"engine": "fast"}, "engine= must be"),
    ],
)
def test_bad_settings_name_the_option(overrides: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        DATA.with_overrides(**overrides).validate()


def test_the_built_in_loop_needs_labelled_data_and_valid_settings_a_train_fn_does_not() -> None:
    with pytest.raises(UsageError, match="--train-data is required"):
        QATConfig().validate()
    cfg = QATConfig().with_overrides(calib_data="c/", optimizer="lion")
    cfg.validate(built_in_loop=False)  # a user train_fn: the loop's settings do not matter
    with pytest.raises(UsageError, match="--calib-data is required"):
        QATConfig().validate(built_in_loop=False)


def test_unknown_keywords_and_wrong_sections_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown setting 'epoch'.*epochs"):
        QATConfig().with_overrides(epoch=3)
    with pytest.raises(UsageError, match="train= must be a TrainConfig"):
        QATConfig().with_overrides(train={"epochs": 3})
    cfg = QATConfig().with_overrides(train=TrainConfig(epochs=7), epochs=1)  # sections first, then fields
    assert cfg.train.epochs == 1 and cfg.seed == 0 and cfg.batch_size == 32


def test_to_dict_is_json_and_records_every_section() -> None:
    import numpy as np

    cfg = QATConfig().with_overrides(calib_data=np.zeros((2, 1, 8, 8), np.float32), exclude=["x"], epochs=1)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert set(d) == {"calibration", "data", "train", "placement", "export", "handoff", "device", "threads"}
    assert d["data"]["calib_data"] == "<ndarray>" and d["placement"]["exclude_nodes"] == ["x"]
    assert d["train"]["epochs"] == 1 and d["train"]["resolved_lr"] == TrainConfig().resolved_lr()
