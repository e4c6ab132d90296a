"""The sections of a build configuration: their checks (naming the option) and `from_args` (only what was given)."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass

import pytest

from trtq.config import (
    CalibrationConfig,
    DataConfig,
    ExportConfig,
    FallbackConfig,
    TypingConfig,
    ValidationConfig,
)
from trtq.config.sections import section_from_dict, section_to_dict
from trtq.errors import UsageError


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (ExportConfig(opset=12), "--opset 12: per-channel Q/DQ needs opset >= 13"),
        (DataConfig(calib_samples=0), r"--calib-samples must be a positive number of samples, not 0 \(0 on the command line means all\)"),
        (DataConfig(eval_samples=True), "--eval-samples must be a positive number"),
        (DataConfig(batch_size=0), "--batch-size must be >= 1, not 0"),
        (CalibrationConfig(method="kl"), "--calib 'kl' is not a registered calibration method; choose from .*, or all"),
        (CalibrationConfig(method=" , "), "--calib names no calibration method"),
        (CalibrationConfig(params={"percentile": 99.9}), r"--percentile: not a parameter of --calib entropy; it applies to --calib percentile"),
        (CalibrationConfig(params={"gamma": 1}), r"--calib-param gamma: not a parameter of --calib entropy \(parameters: num_bins, saturation, start_bin\)"),
        (CalibrationConfig(method="percentile", params={"percentile": 0}), "--calib-param percentile=0: must be > 0"),
        (CalibrationConfig(choose_metric="kl"), "--choose-metric 'kl' is not a registered metric"),
        (CalibrationConfig(method="all", cache="c.cache"), "--calib-cache takes the scales from c.cache, so --calib all would not be used"),
        (CalibrationConfig(cache_version=(10, 3)), r"--trt-version \(10, 3\): give MAJOR.MINOR.PATCH"),
        (FallbackConfig(max_drop=-1), "--max-drop -1: the budget must be >= 0"),
        (FallbackConfig(max_drop=float("nan")), "--max-drop nan"),
        (FallbackConfig(layers=-2), "--fallback -2: give a number of layers >= 0"),
        (FallbackConfig(workers=0), "--workers 0: give at least 1"),
        (FallbackConfig(rank_by="top1"), "--rank-by 'top1': choose cosine, kl or metric"),
        (FallbackConfig(top_k=0), "--rank-top-k 0: give a number of candidates >= 1"),
        (FallbackConfig(metric="cosin"), "--metric 'cosin' is not a registered metric; .*or give package.module:function"),
        (TypingConfig(data_max=0), "data_max 0: must be positive"),
        (ValidationConfig(metrics=("nope",)), "--metric 'nope' is not a registered metric"),
        (ValidationConfig(rtol=-1), "--rtol and --atol must be >= 0"),
        (ValidationConfig(check_error_stat="p99"), "--check-error-stat 'p99': choose from elemwise, max, mean, median, quantile"),
    ],
)  # fmt: skip
def test_validate_names_the_option(section, message):
    with pytest.raises(UsageError, match=message):
        section.validate()


def test_defaults_validate():
    for section in (
        ExportConfig(),
        DataConfig(),
        CalibrationConfig(),
        FallbackConfig(),
        TypingConfig(),
        ValidationConfig(),
    ):
        section.validate()
    FallbackConfig(metric="pkg.mod:fn").validate()  # an entry point is checked when it is imported
    CalibrationConfig(method="percentile,mse", params={"percentile": "99.9", "num_bins": 1024}).validate()


def test_from_args_overrides_only_the_options_present():
    base = ExportConfig(opset=13, weights="DEFAULT")
    assert ExportConfig.from_args(Namespace(), base) is base
    assert ExportConfig.from_args(Namespace(opset=18), base) == ExportConfig(opset=18, weights="DEFAULT")
    data = DataConfig.from_args(Namespace(calib_data="c", calib_samples=0, eval_samples=5, batch_size=4))
    assert (data.calib_data, data.calib_samples, data.eval_samples, data.batch_size) == (
        "c",
        None,
        5,
        4,
    )  # 0 = all
    assert DataConfig.from_args(Namespace(), DataConfig(calib_samples=None)).calib_samples is None
    val = ValidationConfig.from_args(Namespace(rtol=0.5, report_metric=["mse,cosine", "snr_db"]))
    assert val == ValidationConfig(metrics=("mse", "cosine", "snr_db"), rtol=0.5)


def test_fallback_and_typing_from_args():
    assert FallbackConfig.from_args(Namespace(fallback="3")).layers == 3
    assert FallbackConfig.from_args(Namespace(fallback="/a, /b.*")).layers == ("/a", "/b.*")
    fb = FallbackConfig.from_args(Namespace(max_drop=1.0, metric="cosine", workers=2))
    assert fb == FallbackConfig(max_drop=1.0, metric="cosine", workers=2) and fb.enabled
    assert fb.rank_by == "cosine" and fb.top_k == 6  # the continuous measure by default
    assert not fb.alone_int8  # alone-INT8 variants are opt-in
    fb = FallbackConfig.from_args(Namespace(max_drop=1.0, rank_by="metric", rank_top_k=3, alone_int8=True))
    assert (fb.rank_by, fb.top_k, fb.alone_int8) == ("metric", 3, True)
    assert not FallbackConfig().enabled and FallbackConfig(layers=0).enabled
    typing = TypingConfig.from_args(Namespace(no_typed=True, keep_fp32=["a,b"], keep_fp32_op_type=["Gemm"]))
    assert typing == TypingConfig(enabled=False, keep_fp32_nodes=("a", "b"), keep_fp32_op_types=("Gemm",))
    assert TypingConfig.from_args(Namespace()) == TypingConfig()


@dataclass(frozen=True)
class _Section:
    names: tuple[str, ...] = ()
    n: int = 1


def test_section_dict_round_trip_lists_become_tuples_and_unknown_keys_are_refused():
    d = section_to_dict(_Section(names=("a", "b"), n=2))
    assert d == {"names": ["a", "b"], "n": 2}
    assert section_from_dict(_Section, d, "s") == _Section(names=("a", "b"), n=2)
    assert section_from_dict(_Section, None, "s") == _Section()
    with pytest.raises(UsageError, match="config section 's' has unknown keys x, y; expected names, n"):
        section_from_dict(_Section, {"y": 1, "x": 2}, "s")
    assert (
        section_to_dict(DataConfig(calib_data=object()))["calib_data"] == "<object>"
    )  # not repeatable from JSON
