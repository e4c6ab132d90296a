"""ValidateStage: FP32, INT8 (and the typed graph) on the evaluation data, scored against FP32 by the registry."""

from __future__ import annotations

import numpy as np
import pytest

from tests.pipeline.stages.conftest import arrays
from trtq.config import BuildConfig, FallbackConfig, ValidationConfig
from trtq.errors import UsageError
from trtq.pipeline.stages import ValidateStage
from trtq.pipeline.stages.validate import run_metrics
from trtq.placement import plan_qdq
from trtq.precision import to_strongly_typed
from trtq.qdq import insert_qdq
from trtq.runners import OnnxRuntimeRunner


@pytest.fixture
def models(fp32):
    plan = plan_qdq(fp32)
    int8 = insert_qdq(fp32, plan, {t: 3.0 for t in plan.activations})
    return fp32, int8


@pytest.fixture
def samples(monkeypatch) -> dict[str, int]:
    """How many samples each model (by its validation label) is run on, counted as validation feeds them."""
    import trtq.validate as validate

    counts: dict[str, int] = {}
    real = validate._run_one

    def counting(runner, feeds, label, **kw):
        def counted():
            for f in feeds:
                counts[label] = counts.get(label, 0) + len(f["x"])
                yield f

        return real(runner, counted(), label, **kw)

    monkeypatch.setattr(validate, "_run_one", counting)
    return counts


def test_run_metrics_are_the_configured_ones_and_the_fallback_metric(run_context):
    config = BuildConfig(
        validation=ValidationConfig(metrics=("mse",)), fallback=FallbackConfig(metric="snr_db")
    )
    assert [m.name for m in run_metrics(run_context(config))] == ["mse", "snr_db"]
    with pytest.raises(UsageError, match="--metric 'nope' is not a registered metric"):
        ValidateStage().check(run_context(BuildConfig(validation=ValidationConfig(metrics=("nope",)))))
    with pytest.raises(UsageError, match="--metric top1_accuracy needs evaluation data with class labels"):
        ValidateStage().check(run_context(BuildConfig(fallback=FallbackConfig(metric="top1_accuracy"))))


def test_every_candidate_is_scored_against_fp32_on_the_eval_data(run_context, models):
    fp32, int8 = models
    evaluation = arrays(12, seed=1, labels=True)
    config = BuildConfig(validation=ValidationConfig(metrics=("mse",)))
    ctx = run_context(config, eval=evaluation, fp32=fp32, int8=int8, typed=to_strongly_typed(int8))
    ValidateStage().run(ctx)
    val = ctx.result.validation
    assert val.reference == "fp32" and list(val.candidates) == ["int8", "typed"]
    assert val.samples == 12 and val.data == "eval"
    names = [m.name for m in val.metrics]
    assert names[:3] == ["top1_accuracy", "top5_accuracy", "top1_agreement"] and "mse" in names  # task first
    with OnnxRuntimeRunner(fp32) as r:
        ref = r.infer({"x": evaluation.array})["y"]
    with OnnxRuntimeRunner(int8) as r:
        got = r.infer({"x": evaluation.array})["y"]
    labels = evaluation.labels
    assert val.value("fp32", "top1_accuracy") == pytest.approx(np.mean(ref.argmax(1) == labels))
    assert val.value("int8", "top1_accuracy") == pytest.approx(np.mean(got.argmax(1) == labels))
    assert val.value("int8", "mse") == pytest.approx(
        float(np.mean((got.astype(np.float64) - ref) ** 2)), rel=1e-6
    )


def test_without_eval_data_the_calibration_data_is_used_and_said(run_context, models):
    fp32, int8 = models
    ctx = run_context(fp32=fp32, int8=int8)
    ValidateStage().run(ctx)
    assert ctx.result.validation.data == "calibration (no --eval-data)" and ctx.result.validation.samples == 8
    assert list(ctx.result.validation.candidates) == ["int8"]
    assert "top1_accuracy" not in ctx.result.validation.candidates["int8"].metrics  # no labels


def test_validation_reuses_the_runs_fp32_reference_and_runs_each_candidate_once(
    run_context, models, monkeypatch
):
    """The FP32 outputs computed earlier in the run (the method choice) are not computed again; each candidate
    runs once, over batches made afresh."""
    import trtq.validate as validate

    fp32, int8 = models
    ran: list[str] = []
    real = validate._run_one
    monkeypatch.setattr(
        validate,
        "_run_one",
        lambda runner, feeds, label, **kw: ran.append(label) or real(runner, feeds, label, **kw),
    )
    ctx = run_context(eval=arrays(12, seed=1), fp32=fp32, int8=int8)
    reference = ctx.fp32_reference()
    assert ran == ["fp32"] and ctx.fp32_reference() is reference
    ValidateStage().run(ctx)
    assert ran == ["fp32", "int8"] and ctx.result.validation.samples == 12
    ctx.fp32 = int8  # another FP32 model: its reference is computed anew
    ctx.fp32_reference()
    assert ran == ["fp32", "int8", "fp32"]


def test_int8_outputs_on_the_method_choice_samples_are_not_run_again(run_context, fp32, samples):
    """--calib all ran the chosen Q/DQ model on its held-out samples: validation runs model.int8.onnx only on the
    others (when it is that same model), and scores every sample as one full run would."""
    from trtq.config import CalibrationConfig, DataConfig
    from trtq.pipeline.stages import CalibrateStage, QuantizeStage

    evaluation = arrays(12, seed=1)
    config = BuildConfig(
        data=DataConfig(batch_size=4),
        calibration=CalibrationConfig(method="all", choose_samples=5),
        validation=ValidationConfig(metrics=("mse",)),
    )
    ctx = run_context(config, eval=evaluation, fp32=fp32, plan=plan_qdq(fp32))
    CalibrateStage().run(ctx)
    QuantizeStage().run(ctx)
    assert ctx.heldout is not None and list(ctx.heldout.indices) == list(evaluation.subset_indices(5, 0))
    ValidateStage().run(ctx)
    val = ctx.result.validation
    assert samples == {"fp32": 12, "int8": 7} and val.samples == 12 and val.reused == {"int8": 5}
    assert val.to_json()["reused_outputs"] == {"int8": 5}
    with OnnxRuntimeRunner(fp32) as r:
        ref = r.infer({"x": evaluation.array})["y"].astype(np.float64)
    with OnnxRuntimeRunner(ctx.int8) as r:
        got = r.infer({"x": evaluation.array})["y"].astype(np.float64)
    assert val.value("int8", "mse") == pytest.approx(float(np.mean((got - ref) ** 2)), rel=1e-5)
    # another INT8 model than the one chosen on (here: other scales): every sample runs
    samples.clear()
    plan = plan_qdq(fp32)
    ctx.int8 = insert_qdq(fp32, plan, {t: 3.0 for t in plan.activations})
    ValidateStage().run(ctx)
    assert samples == {"int8": 12} and ctx.result.validation.reused == {}
    assert "reused_outputs" not in ctx.result.validation.to_json()


def test_the_typed_graph_is_scored_on_its_subset_against_fp32_on_the_same_samples(
    run_context, models, samples
):
    """--typed-samples N: model.trt.onnx runs on N reproducible evaluation samples (the --calib all held-out ones at
    the same count and seed) and is scored against FP32's outputs on those samples; INT8 still runs on all."""
    from trtq.config import TypingConfig
    from trtq.report import accuracy_rows

    fp32, int8 = models
    evaluation = arrays(12, seed=1, labels=True)
    typed = to_strongly_typed(int8)
    config = BuildConfig(validation=ValidationConfig(metrics=("mse",)), typing=TypingConfig(samples=5))
    ctx = run_context(config, eval=evaluation, fp32=fp32, int8=int8, typed=typed)
    ValidateStage().run(ctx)
    val = ctx.result.validation
    assert samples == {"fp32": 12, "int8": 12, "typed": 5} and val.samples == 12
    assert val.candidates["typed"].samples == 5 and val.candidates["int8"].samples is None
    idx = evaluation.subset_indices(5, 0)
    with OnnxRuntimeRunner(fp32) as r:
        ref = r.infer({"x": evaluation.array[idx]})["y"].astype(np.float64)
    with OnnxRuntimeRunner(typed) as r:
        got = r.infer({"x": evaluation.array[idx]})["y"].astype(np.float64)
    with OnnxRuntimeRunner(int8) as r:
        int8_got = r.infer({"x": evaluation.array[idx]})["y"].astype(np.float64)
    assert not np.array_equal(
        got, int8_got
    )  # FP16 rounding of the non-INT8 rest: not the INT8 graph's numbers
    assert val.value("typed", "mse") == pytest.approx(float(np.mean((got - ref) ** 2)), rel=1e-5)
    labels = evaluation.labels[idx]
    assert val.value("typed", "top1_accuracy") == pytest.approx(np.mean(got.argmax(1) == labels))
    assert val.to_json()["samples_of"] == {"typed": 5}
    assert [label for label, _ in accuracy_rows(val)][-1].endswith(", 5 samples")
    samples.clear()
    ctx.config = BuildConfig(typing=TypingConfig(samples=0))  # 0: every sample
    ValidateStage().run(ctx)
    assert samples == {"int8": 12, "typed": 12} and "samples_of" not in ctx.result.validation.to_json()
