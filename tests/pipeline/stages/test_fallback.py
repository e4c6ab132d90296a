"""FallbackStage: ranking and the FP16 fallback set -> sensitivity.json/.png/.md, the mixed plan, the report section."""

from __future__ import annotations

import json

import onnx
import pytest

from trtq.calibration import Calibration
from trtq.config import BuildConfig, DataConfig, FallbackConfig
from trtq.errors import UsageError
from trtq.pipeline import NamedFiles
from trtq.pipeline.stages import FallbackStage
from trtq.pipeline.stages.fallback import SECTION_TITLE
from trtq.placement import plan_qdq
from trtq.progress import set_quiet


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def _config(**fallback) -> BuildConfig:
    return BuildConfig(data=DataConfig(batch_size=4), fallback=FallbackConfig(**fallback))


def _ctx(run_context, fp32, config, **kw):
    plan = plan_qdq(fp32)
    cal = Calibration.from_amax({t: 3.0 for t in plan.activations})
    return run_context(config, fp32=fp32, plan=plan, calibration=cal, **kw)


def test_active_with_a_budget_a_set_or_always_rank(run_context):
    assert not FallbackStage().active(run_context())
    assert FallbackStage().active(run_context(_config(max_drop=1.0)))
    assert FallbackStage().active(run_context(_config(layers=2)))
    assert FallbackStage(always_rank=True).active(run_context())


def test_check_refuses_a_metric_the_data_cannot_feed(run_context):
    with pytest.raises(UsageError, match="--metric top1_accuracy needs evaluation data with class labels"):
        FallbackStage().check(run_context(_config(max_drop=1.0, metric="top1_accuracy")))


def test_a_named_set_replaces_the_plan_without_ranking(run_context, fp32, tmp_path):
    ctx = _ctx(run_context, fp32, _config(layers=("/2/Conv",)))
    FallbackStage().run(ctx)
    assert ctx.plan.quantized_nodes == ["/0/Conv"]
    doc = json.loads((tmp_path / "staging" / "sensitivity.json").read_text())
    assert doc["format"] == "trtq.sensitivity/1" and "layers" not in doc  # nothing was ranked
    assert doc["fallback"]["nodes"] == ["/2/Conv"] and doc["fallback"]["met"] is None
    assert not (tmp_path / "staging" / "sensitivity.png").exists()
    assert ctx.result.sensitivity.sensitivity is None and ctx.result.sensitivity.fallback.nodes == ["/2/Conv"]
    assert [s.title for s in ctx.result.sections] == [SECTION_TITLE]
    assert "Fallback set given by the user (1 layer(s))" in ctx.result.sections[0].markdown


def test_always_rank_without_a_budget_keeps_the_plan_and_writes_the_ranking(run_context, fp32, tmp_path):
    sink = NamedFiles({"sensitivity.json": tmp_path / "s.json", "sensitivity.md": tmp_path / "s.md"},
                      folder=tmp_path / "more")  # fmt: skip
    ctx = _ctx(run_context, fp32, BuildConfig(data=DataConfig(batch_size=4)), sink=sink)
    before = ctx.plan
    FallbackStage(always_rank=True, mixed_artifact="model.mixed.onnx").run(ctx)
    assert ctx.plan is before
    doc = json.loads((tmp_path / "s.json").read_text())
    assert (
        sorted(layer["node"] for layer in doc["layers"]) == ["/0/Conv", "/2/Conv"] and "fallback" not in doc
    )
    assert (tmp_path / "more" / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "s.md").read_text().startswith("# trtq sensitivity\n\nMetric: **top1_agreement**")


def test_build_writes_table_plot_and_mixed_graph(tmp_path, digits_npz, make_model):
    from trtq.demo import DEMO_PREPROCESS
    from trtq.pipeline import build

    result = build(
        make_model("digits_net"), calib_data=digits_npz, out=tmp_path / "run", preprocess=DEMO_PREPROCESS,
        max_drop=1.0, build_engine=False, calib_samples=128,
    )  # fmt: skip
    doc = json.loads((tmp_path / "run" / "sensitivity.json").read_text())
    assert doc["format"] == "trtq.sensitivity/1" and len(doc["layers"]) == 4
    for layer in doc["layers"]:
        assert {"node", "op_type", "macs", "metric_quantized_alone", "metric_fp16_alone", "rank"} <= set(
            layer
        )
    assert sorted(layer["rank"] for layer in doc["layers"]) == [1, 2, 3, 4]
    assert doc["fallback"]["met"] is True and doc["fallback"]["rank_by"] == "cosine"
    front = doc["fallback"]["pareto"]
    assert (
        front
        and all(e["front"] for e in front)
        and any(e["nodes"] == doc["fallback"]["nodes"] for e in front)
    )
    assert (tmp_path / "run" / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "run" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "run" / "report.md").read_text()
    assert (
        "## Sensitivity and FP16 fallback" in report and "![per-layer sensitivity](sensitivity.png)" in report
    )
    assert (
        "![FP16 fallback trade-off](tradeoff.png)" in report
        and "| INT8 share of MACs | layers FP16 |" in report
    )
    assert "| FP32 |" in report and "all INT8" in report and "mixed" in report
    assert result.sensitivity.fallback.metric >= doc["fp32_metric"] - 0.01
    assert (
        json.loads((tmp_path / "run" / "report.json").read_text())["sensitivity"]["fallback"]["met"] is True
    )
    mixed = onnx.load(str(tmp_path / "run" / "model.int8.onnx"))
    for node in doc["fallback"]["nodes"]:
        conv = next(n for n in mixed.graph.node if n.name == node)
        assert not any(i.endswith("_DequantizeLinear_Output") for i in conv.input)
