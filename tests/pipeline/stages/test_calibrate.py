"""CalibrateStage: calibration.json (every method, the chosen one, FP16 ranges), the TensorRT cache, plots."""

from __future__ import annotations

import json

import pytest

from tests.pipeline.stages.conftest import arrays
from trtq.calibration import Calibration, calibrate
from trtq.config import BuildConfig, CalibrationConfig, DataConfig
from trtq.engines.calib_cache import read_trt_cache, read_trt_cache_header, write_trt_cache
from trtq.errors import UsageError
from trtq.pipeline import NamedFiles
from trtq.pipeline.stages import CalibrateStage
from trtq.pipeline.stages.calibrate import cache_algorithm
from trtq.placement import plan_qdq


def _config(**calibration) -> BuildConfig:
    return BuildConfig(data=DataConfig(batch_size=4), calibration=CalibrationConfig(**calibration))


def test_cache_algorithm_labels():
    assert cache_algorithm("minmax") == "MinMaxCalibration"
    assert {cache_algorithm(m) for m in ("entropy", "percentile", "mse", "plugin")} == {"EntropyCalibration2"}


def test_run_writes_calibration_json_and_the_cache_of_the_chosen_method(run_context, fp32, tmp_path):
    plan = plan_qdq(fp32)
    ctx = run_context(
        _config(method="minmax", cache_version=(10, 13, 3), trt_cache=True), fp32=fp32, plan=plan
    )
    CalibrateStage().run(ctx)
    staging = tmp_path / "staging"
    doc = json.loads((staging / "calibration.json").read_text())
    data = arrays()
    expected = calibrate(fp32, data.feeds("x", 4), plan.activations, ["minmax"])
    assert (
        doc["methods"] == ["minmax"]
        and {t: e["amax"]["minmax"] for t, e in doc["tensors"].items()} == expected.amax_for()
    )
    assert set(doc["ranges"]) >= set(plan.activations) and doc["ranges"]["x"] == pytest.approx(
        float(abs(data.array).max()), rel=1e-6
    )
    assert read_trt_cache_header(staging / "calibration.cache") == (101303, "MinMaxCalibration")
    # the cache holds every float tensor (implicit INT8 reads them all), the plan's ones as in calibration.json
    from trtq.precision import float_tensors

    every = calibrate(fp32, data.feeds("x", 4), float_tensors(fp32), ["minmax"]).amax_for()
    cache = read_trt_cache(staging / "calibration.cache")
    assert set(cache) == set(every) > set(plan.activations)
    assert cache == pytest.approx(every, rel=1e-6)
    summary = ctx.result.calibration
    assert (summary.method, summary.source, summary.samples, summary.tensors) == (
        "minmax",
        "data",
        8,
        len(plan.activations),
    )
    assert ctx.calibration.amax_for() == expected.amax_for()


def test_without_trt_cache_no_cache_is_written_and_only_the_plans_tensors_are_calibrated(
    run_context, fp32, tmp_path, monkeypatch
):
    """The cache is written on request only (`--trt-cache`); without it the calibration pass exposes and folds
    only the activations the Q/DQ plan quantizes, not every float tensor the cache would need."""
    import trtq.calibration as calibration
    from trtq.precision import float_tensors

    asked: list[list[str]] = []
    real = calibration.calibrate
    monkeypatch.setattr(
        calibration, "calibrate", lambda m, b, t, *a, **k: asked.append(list(t)) or real(m, b, t, *a, **k)
    )
    plan = plan_qdq(fp32)
    ctx = run_context(_config(method="minmax"), fp32=fp32, plan=plan)
    CalibrateStage().run(ctx)
    staging = tmp_path / "staging"
    assert (staging / "calibration.json").is_file() and not (staging / "calibration.cache").exists()
    assert "calibration.cache" not in ctx.result.artifacts
    assert asked == [list(plan.activations)]
    asked.clear()
    CalibrateStage().run(run_context(_config(method="minmax", trt_cache=True), fp32=fp32, plan=plan))
    assert set(asked[0]) == set(float_tensors(fp32)) > set(plan.activations)
    assert (staging / "calibration.cache").is_file()


def test_several_methods_are_chosen_on_held_out_data_with_plots(run_context, fp32, tmp_path):
    sink = NamedFiles(
        {"calibration.json": tmp_path / "c.json", "calibration.cache": None}, folder=tmp_path / "plots"
    )
    ctx = run_context(_config(method="minmax,mse"), sink=sink, fp32=fp32, plan=plan_qdq(fp32))
    CalibrateStage().run(ctx)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "plots"]  # the cache was not asked for
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots and all(p.startswith("calib_") and p.endswith(".png") for p in plots)
    cal = Calibration.load(tmp_path / "c.json")
    assert set(cal.scores) == {"minmax", "mse"} and ctx.result.calibration.choose_metric == "cosine"
    assert "chosen on the calibration data itself" in ctx.result.calibration.warnings[0]


def test_scales_from_a_tensorrt_cache(run_context, fp32, tmp_path):
    plan = plan_qdq(fp32)
    cache = write_trt_cache(tmp_path / "given.cache", {t: 2.0 for t in plan.activations})
    ctx = run_context(_config(cache=str(cache)), fp32=fp32, plan=plan)
    stage = CalibrateStage()
    stage.check(ctx)
    stage.run(ctx)
    assert ctx.calibration.method == "cache" and ctx.calibration.amax_for() == pytest.approx(
        {t: 2.0 for t in plan.activations}, rel=1e-6
    )
    assert ctx.result.calibration.source == "cache" and ctx.result.calibration.cache == str(cache)
    assert not (tmp_path / "staging" / "calibration.cache").exists()  # a given cache is not rewritten
    partial = write_trt_cache(tmp_path / "partial.cache", {plan.activations[0]: 2.0})
    with pytest.raises(UsageError, match=rf"has no scale for {len(plan.activations) - 1} tensor\(s\)"):
        CalibrateStage().run(run_context(_config(cache=str(partial)), fp32=fp32, plan=plan))


def test_check_refuses_missing_data_and_caches(run_context, tmp_path):
    with pytest.raises(UsageError, match="--calib-data is required"):
        CalibrateStage().check(run_context(calib=None))
    with pytest.raises(UsageError, match="--calib-cache .*none.cache does not exist"):
        CalibrateStage().check(run_context(_config(cache=str(tmp_path / "none.cache"))))
    (tmp_path / "c.cache").write_text("TRT-100300-EntropyCalibration2\n")
    with pytest.raises(UsageError, match="--calib-cache needs --eval-data"):
        CalibrateStage().check(run_context(_config(cache=str(tmp_path / "c.cache")), calib=None))


def test_calib_all_scores_methods_on_the_held_out_subset_only_with_the_shared_fp32_reference(
    run_context, fp32, monkeypatch
):
    """--choose-samples: each method's Q/DQ model sees only that many held-out samples; the FP32 outputs are
    computed once for the run (and validation reuses them)."""
    import trtq.validate as validate
    from tests.pipeline.stages.conftest import arrays
    from trtq.runners import onnxrt

    seen: dict[str, int] = {}
    real = onnxrt.OnnxRuntimeRunner.infer_impl

    def counting(self, feed):
        seen[self.name] = seen.get(self.name, 0) + len(next(iter(feed.values())))
        return real(self, feed)

    references = []
    real_outputs = validate.model_outputs
    monkeypatch.setattr(onnxrt.OnnxRuntimeRunner, "infer_impl", counting)
    monkeypatch.setattr(
        validate, "model_outputs", lambda *a, **k: references.append(1) or real_outputs(*a, **k)
    )
    config = BuildConfig(
        data=DataConfig(batch_size=4), calibration=CalibrationConfig(method="all", choose_samples=6)
    )
    ctx = run_context(config, eval=arrays(20, seed=3), fp32=fp32, plan=plan_qdq(fp32))
    CalibrateStage().run(ctx)
    assert {k: v for k, v in seen.items() if k.startswith("qdq-")} == {
        f"qdq-{m}": 6 for m in ctx.calibration.methods
    }
    assert references == [1] and ctx.calibration.settings["choose_samples"] == 6
    before = len(ctx.fp32_reference())
    assert references == [1] and before == 5  # 20 samples in batches of 4, computed once
    everything = run_context(config, eval=arrays(20, seed=3), fp32=fp32, plan=plan_qdq(fp32))
    everything.config = BuildConfig(
        data=DataConfig(batch_size=4), calibration=CalibrationConfig(method="all", choose_samples=0)
    )
    seen.clear()
    CalibrateStage().run(everything)
    assert {k: v for k, v in seen.items() if k.startswith("qdq-")} == {
        f"qdq-{m}": 20 for m in everything.calibration.methods
    }


def test_without_eval_data_the_calibration_pass_gives_the_fp32_reference(run_context, fp32, monkeypatch):
    """Validating on the calibration data: the calibration inference's graph outputs are the run's FP32 reference
    (no second FP32 pass over the data), equal to a plain FP32 run over the same batches."""
    import numpy as np

    import trtq.validate as validate

    references = []
    real_outputs = validate.model_outputs
    monkeypatch.setattr(
        validate, "model_outputs", lambda *a, **k: references.append(1) or real_outputs(*a, **k)
    )
    config = BuildConfig(
        data=DataConfig(batch_size=4), calibration=CalibrationConfig(method="all", choose_samples=6)
    )
    ctx = run_context(config, calib=arrays(10, seed=2), fp32=fp32, plan=plan_qdq(fp32))
    CalibrateStage().run(ctx)  # the method choice reads the reference too
    shared = ctx.fp32_reference()
    assert references == [] and ctx.reference[0] is fp32 and len(shared) == 3  # 10 samples in batches of 4
    plain = real_outputs(fp32, ctx.feeds(ctx.inputs.calib))
    assert [list(b) for b in shared] == [list(b) for b in plain]
    for got, want in zip(shared, plain):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    with_eval = run_context(
        config, calib=arrays(10, seed=2), eval=arrays(8, seed=3), fp32=fp32, plan=plan_qdq(fp32)
    )
    CalibrateStage().run(with_eval)  # other evaluation data: its own FP32 pass, once
    assert references == [1] and len(with_eval.fp32_reference()) == 2 and references == [1]


def test_choose_samples_is_checked():
    with pytest.raises(UsageError, match="--choose-samples must be a whole number"):
        CalibrationConfig(choose_samples=-1).validate()
