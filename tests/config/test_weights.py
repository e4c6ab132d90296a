"""`trtq.config.weights`: the weights section, from the command line and checked before anything runs."""

from __future__ import annotations

import argparse

import pytest

from trtq.config.weights import WeightsConfig
from trtq.errors import UsageError


def test_cli_weight_options_reach_the_config():
    from trtq.cli import build as cli_build
    from trtq.cli._options import config_from_args

    p = argparse.ArgumentParser()
    cli_build.add_arguments(p)
    args = p.parse_args(["--model", "m.onnx", "--out", "o", "--calib-data", "c", "--weight-ptq", "bias-correction,clip",
                         "--weight-storage", "int8", "--adaround-iters", "50"])  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.weights.methods == ("clip", "bias-correction")
    assert cfg.weights.storage == "int8" and cfg.weights.adaround_iters == 50
    assert cfg.weights.batches == WeightsConfig().batches == 4 and cfg.weights.enabled
    none = config_from_args(p.parse_args(["--model", "m.onnx", "--out", "o", "--weight-ptq", "none"]))
    assert none.weights.methods == () and not none.weights.enabled


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (WeightsConfig(methods=("rounding",)), "--weight-ptq"),
        (WeightsConfig(batches=0), "--weight-batches 0"),
        (WeightsConfig(adaround_iters=0), "--adaround-iters 0"),
        (WeightsConfig(storage="fp8"), "--weight-storage 'fp8': choose from"),
    ],
)
def test_bad_settings_name_the_option(cfg: WeightsConfig, match: str):
    with pytest.raises(UsageError, match=match):
        cfg.validate()


def test_the_defaults_are_valid_and_change_nothing():
    cfg = WeightsConfig()
    cfg.validate()
    assert cfg.methods == () and cfg.storage == "qdq" and not cfg.enabled
