"""Validation through Polygraphy's Comparator: per-output errors against numpy, registered metrics, the verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.runners.fakes import HostRunner
from trtq.data import ClassLabels, DataSource
from trtq.metrics import get_metric
from trtq.validate import (
    Comparison,
    ValidationResult,
    compare,
    evaluate_runs,
    output_metrics,
    polygraphy_runner,
    run_models,
    stacked_outputs,
)


def test_output_metrics_match_numpy():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((6, 5)).astype(np.float32)
    got = ref + rng.standard_normal((6, 5)).astype(np.float32) * 0.1
    m = output_metrics(ref, got)
    diff = np.abs(ref.astype(np.float64) - got)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert m["max_abs_error"] == pytest.approx(diff.max()) and m["mean_abs_error"] == pytest.approx(
        diff.mean()
    )
    assert m["median_abs_error"] == pytest.approx(np.median(diff))
    assert m["max_rel_error"] == pytest.approx((diff / np.maximum(np.abs(ref), 1e-6)).max())
    assert m["cosine_similarity"] == pytest.approx(cos.mean(), rel=1e-6)
    assert m["min_cosine_similarity"] == pytest.approx(cos.min(), rel=1e-6)
    zero = output_metrics(np.zeros((2, 3)), np.zeros((2, 3)))
    assert zero["cosine_similarity"] == 1.0 and zero["max_abs_error"] == 0.0


def test_compare_scores_a_candidate_with_labels_from_the_data(graph_file, tmp_path):
    ref = graph_file("linear_classifier", tmp_path / "ref.onnx")
    cand = graph_file("linear_classifier", tmp_path / "cand.onnx", qdq=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 3, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 10, 10)
    data = DataSource("val", array=x, targets=ClassLabels(labels))
    res = compare(str(cand), str(ref), data, input_name="x", batch_size=4)
    w = np.random.default_rng(0).standard_normal((10, 48)).astype(np.float32)
    ref_logits = x.reshape(10, -1) @ w.T
    q = np.clip(np.rint(x.reshape(10, -1) / 0.05), -128, 127) * 0.05
    cand_logits = q @ w.T  # the Q/DQ graph by hand
    assert res.samples == 10 and res.data == "val" and list(res.candidates) == ["candidate"]
    assert res.value("reference", "top1_accuracy") == pytest.approx(np.mean(ref_logits.argmax(1) == labels))
    assert res.value("candidate", "top1_accuracy") == pytest.approx(np.mean(cand_logits.argmax(1) == labels))
    assert res.value("candidate", "top1_agreement") == pytest.approx(
        np.mean(cand_logits.argmax(1) == ref_logits.argmax(1))
    )
    assert res.candidates["candidate"].outputs["logits"]["max_abs_error"] == pytest.approx(
        np.abs(cand_logits - ref_logits).max(), rel=1e-4, abs=1e-5
    )
    assert res.metrics[0].name == "top1_accuracy" and res.metric("cosine").unit == "value"
    assert res.metric("nope") is None and res.value("other", "cosine") is None
    assert res.candidates["candidate"].polygraphy_pass is True


def test_evaluate_runs_scores_several_candidates_from_one_run_and_the_verdict_follows_tolerances(onnx_graph):
    feeds = [
        {"x": np.random.default_rng(i).standard_normal((4, 3, 4, 4)).astype(np.float32)} for i in range(2)
    ]
    models = {"fp32": onnx_graph("linear_classifier"), "same": onnx_graph("linear_classifier"),
              "far": onnx_graph("linear_classifier", weight_scale=-1.0)}  # fmt: skip
    runs = run_models(models, feeds)
    assert stacked_outputs(runs, "far")["logits"].shape == (8, 10)
    res = evaluate_runs(runs, "fp32", ["same", "far"], extra_metrics=(get_metric("mse"),), data="d")
    assert res.value("same", "mse") == 0.0 and res.value("same", "cosine") == pytest.approx(1.0)
    assert res.value("far", "cosine") == pytest.approx(-1.0) and res.value("far", "top1_agreement") < 0.5
    assert res.candidates["same"].polygraphy_pass is True and res.candidates["far"].polygraphy_pass is False
    assert res.reference_metrics == {"top1_agreement": 1.0}  # task metrics only, for the reference
    loose = evaluate_runs(runs, "fp32", ["far"], rtol=1e9, atol=1e9)
    assert loose.candidates["far"].polygraphy_pass is True and loose.tolerances["rtol"] == 1e9


def test_to_json_is_the_report_layout():
    res = ValidationResult(reference="fp32", samples=3, data="eval", metrics=[get_metric("cosine")],
                           reference_metrics={"top1_agreement": 1.0},
                           candidates={"int8": Comparison("int8", {"cosine": 0.5}, {"y": {"max_abs_error": 1.0}}, True)},
                           tolerances={"rtol": 0.05})  # fmt: skip
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["models"] == {"fp32": {"top1_agreement": 1.0}, "int8": {"cosine": 0.5}}
    assert doc["outputs"] == {"int8": {"y": {"max_abs_error": 1.0}}}
    assert doc["polygraphy"] == {"int8": True, "rtol": 0.05} and doc["metrics"][0]["name"] == "cosine"
    assert Comparison("c").to_json() == {"metrics": {}, "outputs": {}, "polygraphy_pass": None}


def test_trtq_runners_are_adapted_and_a_data_source_needs_an_input_name():
    feeds = [{"x": np.arange(8, dtype=np.float32).reshape(2, 4)}]
    host = HostRunner("host")
    runs = run_models({"a": host, "b": HostRunner("other")}, feeds)
    assert stacked_outputs(runs, "a")["y"].tolist() == feeds[0]["x"].tolist() and host.infers == 1
    adapted = polygraphy_runner(host, "renamed")
    assert adapted.name == "renamed"
    sentinel = object()
    assert polygraphy_runner(sentinel) is sentinel  # already a Polygraphy runner
    with pytest.raises(ValueError, match="input_name is required"):
        run_models({"a": host}, DataSource("d", array=np.zeros((1, 1, 2, 2), np.float32)))


def test_run_models_streams_one_model_at_a_time_and_reuses_given_outputs(onnx_graph):
    """Feeds are made afresh per model (none held), precomputed outputs are not recomputed, and running a batch
    a few samples at a time gives the outputs of the whole batch."""
    from trtq.validate import model_outputs

    batches = [
        {"x": np.random.default_rng(i).standard_normal((20, 3, 4, 4)).astype(np.float32)} for i in range(2)
    ]
    made = []

    def feeds():
        made.append(1)
        return iter(batches)

    fp32 = onnx_graph("linear_classifier")
    reference = model_outputs(fp32, feeds())
    runs = run_models({"fp32": fp32, "int8": fp32, "far": onnx_graph("linear_classifier", weight_scale=-1.0)},
                      feeds, outputs={"fp32": reference})  # fmt: skip
    assert len(made) == 3  # the reference once, then each model that was not given
    assert [len(r) for _, r in runs.items()] == [2, 2, 2]
    import onnxruntime as ort

    sess = ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"])
    whole = np.concatenate([sess.run(None, b)[0] for b in batches])
    assert np.allclose(stacked_outputs(runs, "int8")["logits"], whole, atol=1e-6)
    assert np.array_equal(
        stacked_outputs(runs, "fp32")["logits"], np.concatenate([r["logits"] for r in reference])
    )


def test_validation_sessions_run_without_the_memory_arena(onnx_graph):
    """An arena would hold the largest activations of any call until the session ends (the validate stage's peak)."""
    runner = polygraphy_runner(onnx_graph("linear_classifier"), "int8")
    with runner:
        assert runner.sess.get_session_options().enable_cpu_mem_arena is False
