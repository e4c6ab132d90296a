"""Conflicting options and value checks are refused by the configuration (exit 2) before the first stage runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trtq.cli import main
from trtq.config import BuildConfig, CalibrationConfig, EngineConfig, FallbackConfig
from trtq.errors import UsageError


def test_a_calibration_method_with_a_cache_is_refused():
    with pytest.raises(
        UsageError, match=r"--calib-cache takes the scales from c.cache, so --calib mse would not"
    ):
        CalibrationConfig(method="mse", cache="c.cache").validate()
    with pytest.raises(UsageError, match="--calib-param/--percentile would not be used"):
        CalibrationConfig(cache="c.cache", params={"percentile": 99.0}).validate()
    CalibrationConfig(cache="c.cache").validate()  # the cache alone is fine
    with pytest.raises(
        UsageError, match="--trt-cache writes the scales calibration computes, but --calib-cache"
    ):
        CalibrationConfig(cache="c.cache", trt_cache=True).validate()
    assert CalibrationConfig().methods == ["entropy"]  # no method given: entropy


def test_the_option_given_now_wins_over_a_recorded_config():
    import argparse

    recorded = CalibrationConfig(method="mse")
    assert CalibrationConfig.from_args(argparse.Namespace(calib_cache="c.cache"), recorded).method is None
    written = CalibrationConfig(
        method="mse", trt_cache=True
    )  # a recorded --trt-cache yields to a cache given now
    assert CalibrationConfig.from_args(argparse.Namespace(calib_cache="c.cache"), written).trt_cache is False
    cached = CalibrationConfig(cache="c.cache")
    assert CalibrationConfig.from_args(argparse.Namespace(calib="minmax"), cached).cache is None


def test_fallback_n_with_a_budget_is_refused_but_names_with_a_budget_are_kept():
    with pytest.raises(UsageError, match=r"--fallback 2 and --max-drop 1.0 both decide how many layers"):
        FallbackConfig(max_drop=1.0, layers=2).validate()
    FallbackConfig(max_drop=1.0, layers=("conv1",)).validate()


def test_the_builds_engine_takes_no_calibration_cache():
    cfg = BuildConfig(
        model="m.onnx", out="r", data=BuildConfig().data, engine=EngineConfig(calib_cache="c.cache")
    )
    cfg = cfg.with_overrides(calib_cache="x.cache", eval_data="e.npy")
    with pytest.raises(UsageError, match="takes no calibration cache"):
        cfg.validate()


def test_percentile_with_entropy_names_the_option_that_was_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--model", "x", "--calib-data", ".", "--out", "y", "--percentile", "99",
                 "--calib", "entropy"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "trtq build: error: --percentile: not a parameter of --calib entropy; it applies to --calib percentile"
    )


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--calib", "mse", "--calib-cache", "c.cache"], "--calib mse would not be used"),
        (["--calib-cache", "c.cache", "--trt-cache"], "--trt-cache writes the scales calibration computes"),
        (["--max-drop", "1", "--fallback", "2"], "both decide how many layers stay FP16"),
        (["--max-drop", "-1"], "--max-drop -1.0: the budget must be >= 0"),
        (["--resize", "10", "--no-resize"], "--resize and --no-resize contradict each other"),
        (["--fp32-onnx", "m.onnx"], "--fp32-onnx only applies with --from-qat"),
        (["--calib-samples", "-5"], "--calib-samples must be a positive number of samples, not -5"),
    ],
)
def test_conflicts_and_bad_values_exit_2_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    import trtq.export.sources as sources

    def no_work(*a: object, **k: object) -> None:
        raise AssertionError("the model was resolved before the options were checked")

    monkeypatch.setattr(sources, "resolve_model", no_work)
    import importlib

    monkeypatch.setattr(importlib.import_module("trtq.pipeline.build"), "load_inputs", no_work)
    np.save(tmp_path / "d.npy", np.zeros((2, 3, 8, 8), np.float32))
    for name in ("c.cache", "m.onnx"):  # files that exist, so the conflict is what is refused
        (tmp_path / name).write_text("x")
    extra = [str(tmp_path / a) if a in ("c.cache", "m.onnx") else a for a in extra]
    argv = ["build", "--model", "resnet18", "--calib-data", str(tmp_path / "d.npy"), "--out", str(tmp_path / "r"),
            *extra]  # fmt: skip
    assert main(argv) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert needle in line and line.startswith("trtq build: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.cache", "d.npy", "m.onnx"]


def test_weights_or_checkpoint_with_an_onnx_model_is_refused():
    for opt in ({"weights": "DEFAULT"}, {"checkpoint": "w.pt"}):
        cfg = BuildConfig(model="m.onnx", out="r").with_overrides(**opt, eval_data="e.npy")
        cfg = cfg.with_overrides(data=cfg.data.__class__(calib_data="c.npy"))
        with pytest.raises(UsageError, match="cannot apply to the ONNX model m.onnx"):
            cfg.validate()
