"""The calibration section: methods from the registry, declared parameters, cache version, --config overrides."""

from __future__ import annotations

from argparse import Namespace

import pytest

from trtq.config import CalibrationConfig
from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION
from trtq.errors import UsageError


def test_calibration_methods_and_their_parameters():
    assert CalibrationConfig(method="all").methods == ["entropy", "minmax", "percentile", "mse"]
    assert CalibrationConfig(method="max, mse,minmax").methods == ["minmax", "mse"]
    cfg = CalibrationConfig(method="percentile,mse", params={"percentile": "99.9", "num_bins": "1024"})
    assert cfg.method_kwargs("percentile") == {"percentile": 99.9} and cfg.method_kwargs("mse") == {
        "num_bins": 1024
    }
    assert (
        CalibrationConfig().cache_version is DEFAULT_CACHE_VERSION
        and CalibrationConfig().choose_metric == "cosine"
    )


def test_calibration_from_args_reads_params_and_the_percentile_shortcut():
    cfg = CalibrationConfig.from_args(Namespace(calib="percentile", calib_param=["num_bins = 4096"], percentile=99.0,
                                                trt_version=(10, 13, 3), calib_cache="c.cache"))  # fmt: skip
    assert cfg.method == "percentile" and cfg.params == {"num_bins": "4096", "percentile": 99.0}
    assert cfg.cache_version == (10, 13, 3) and cfg.cache == "c.cache"
    kept = CalibrationConfig.from_args(
        Namespace(calib_param=["start_bin=64"]), CalibrationConfig(params={"num_bins": 8})
    )
    assert kept.params == {"num_bins": 8, "start_bin": "64"}
    with pytest.raises(UsageError, match="--calib-param 'percentile': write NAME=VALUE"):
        CalibrationConfig.from_args(Namespace(calib_param=["percentile"]))


def test_a_parameter_no_chosen_method_takes_is_refused_naming_who_takes_it():
    with pytest.raises(
        UsageError, match="--percentile: not a parameter of --calib entropy; it applies to --calib percentile"
    ):
        CalibrationConfig(method="entropy", params={"percentile": 99.9}).validate()
    with pytest.raises(UsageError, match="must be <= 100"):
        CalibrationConfig(method="percentile", params={"percentile": 101}).validate()
    with pytest.raises(UsageError, match="takes the scales from c.cache, so --calib all would not be used"):
        CalibrationConfig(method="all", cache="c.cache").validate()


def test_a_new_method_on_the_command_line_drops_recorded_parameters_it_does_not_take():
    recorded = CalibrationConfig(method="percentile", params={"percentile": 99.9, "num_bins": 4096})
    changed = CalibrationConfig.from_args(Namespace(calib="mse"), recorded)
    assert changed.method == "mse" and changed.params == {
        "num_bins": 4096
    }  # mse takes num_bins, not percentile
    same = CalibrationConfig.from_args(Namespace(), recorded)
    assert same.params == recorded.params
