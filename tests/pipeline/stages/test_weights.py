"""`trtq.pipeline.stages.weights`: `trtq build --weight-ptq ...` runs the weights stage between calibration and
quantization, records it in report.json / report.md and the configuration; INT8 weight storage writes INT8
initializers into model.int8.onnx."""

from __future__ import annotations

import json

import onnx
import pytest
import torch


def _build(tmp_path, digits_npz, name, **kw):  # type: ignore[no-untyped-def]
    from trtq.demo import DEMO_PREPROCESS, DigitsNet
    from trtq.pipeline import build

    torch.manual_seed(0)
    return build(DigitsNet(), calib_data=digits_npz, out=tmp_path / name, preprocess=DEMO_PREPROCESS,
                 build_engine=False, calib_samples=128, **kw)  # fmt: skip


def test_build_with_bias_correction_and_int8_weights(tmp_path, digits_npz):
    plain = _build(tmp_path, digits_npz, "plain")
    res = _build(tmp_path, digits_npz, "bc", weight_ptq="bias-correction", weight_storage="int8")
    assert res.timings.get("weights") is not None and plain.timings.get("weights") is None
    report = json.loads((tmp_path / "bc" / "report.json").read_text())
    assert report["weights"]["methods"] == ["bias-correction"] and report["weights"]["layers"] >= 1
    assert report["config"]["weights"]["methods"] == ["bias-correction"]
    assert report["config"]["weights"]["storage"] == "int8"
    assert "## Weight-side PTQ" in (tmp_path / "bc" / "report.md").read_text()
    a = onnx.load(str(tmp_path / "plain" / "model.int8.onnx"))
    b = onnx.load(str(tmp_path / "bc" / "model.int8.onnx"))
    assert any(
        t.data_type == onnx.TensorProto.INT8 and t.name.endswith("_quantized") for t in b.graph.initializer
    )
    assert not any(
        t.data_type == onnx.TensorProto.INT8 and t.name.endswith("_quantized") for t in a.graph.initializer
    )
    # biases of quantized layers moved, nothing else about the graph did
    assert len(b.graph.node) == len(a.graph.node) - sum(
        1
        for n in a.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] in {t.name for t in a.graph.initializer}
    )
    assert (tmp_path / "bc" / "model.trt.onnx").is_file()
    assert res.validation.value("int8", "top1_agreement") >= 0.95


def test_same_seed_same_bytes_with_weight_ptq(tmp_path, digits_npz):
    from trtq.config.weights import WeightsConfig

    # 20 learned-rounding steps per layer instead of 300: the same code path in a fraction of the time
    weights = WeightsConfig(methods=("adaround", "bias-correction"), adaround_iters=20)
    a = _build(tmp_path, digits_npz, "a", weights=weights, seed=3)
    b = _build(tmp_path, digits_npz, "b", weights=weights, seed=3)
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["config"]["weights"]["adaround_iters"] == 20
    assert report["weights"]["summary"]["adaround"]["flipped_fraction"] > 0  # the rounding did change weights
    assert (tmp_path / "a" / "model.int8.onnx").read_bytes() == (
        tmp_path / "b" / "model.int8.onnx"
    ).read_bytes()
    assert a.validation.value("int8", "top1_agreement") == b.validation.value("int8", "top1_agreement")


def test_unknown_weight_method_is_a_usage_error(tmp_path, digits_npz):
    from trtq.errors import UsageError

    with pytest.raises(UsageError, match="--weight-ptq"):
        _build(tmp_path, digits_npz, "bad", weight_ptq="rounding")


def test_the_stage_is_active_with_methods_only_and_needs_calibration_data(run_context):
    from dataclasses import replace

    from trtq.config import BuildConfig
    from trtq.config.weights import WeightsConfig
    from trtq.errors import UsageError
    from trtq.pipeline.stages.weights import WeightsStage

    stage = WeightsStage()
    assert not stage.active(run_context())
    cfg = replace(BuildConfig(), weights=WeightsConfig(methods=("clip",)))
    assert stage.active(run_context(cfg))
    stage.check(run_context(cfg))  # calibration data present: fine
    with pytest.raises(UsageError, match="--weight-ptq needs --calib-data"):
        stage.check(run_context(cfg, calib=None))


def test_the_report_section_lists_each_method_with_its_time_and_summary():
    from trtq.pipeline.stages.weights import weights_markdown
    from trtq.weights import WeightPTQ

    res = WeightPTQ(methods=["clip", "bias-correction"], layers={"w": ("conv", "b"), "w2": ("fc", None)},
                    summary={"clip": {"clipped_channels": 3, "mean_ratio": 0.912345}, "bias-correction": {"layers": 1}},
                    seconds={"clip": 1.26, "bias-correction": 0.04, "statistics": 0.5})  # fmt: skip
    text = weights_markdown(res)
    assert "Methods: **clip, bias-correction** on 2 layers" in text
    assert "| clip | 1.3 | clipped_channels 3, mean_ratio 0.9123 |" in text
    assert "| bias-correction | 0.0 | layers 1 |" in text and "| (layer input statistics) | 0.5 |" in text


def test_build_with_equalize_runs_calibration_on_the_equalised_graph(tmp_path, digits_npz):
    res = _build(tmp_path, digits_npz, "cle", weight_ptq="equalize,bias-correction")
    run = tmp_path / "cle"
    report = json.loads(run.joinpath("report.json").read_text())
    assert report["config"]["weights"]["methods"] == ["equalize", "bias-correction"]
    assert report["equalize"]["pairs"] >= 1 and report["weights"]["methods"] == ["bias-correction"]
    assert res.timings.get("equalize") is not None
    equalised = onnx.load(str(run / "model.equalized.onnx"))
    calibrated = set(json.loads(run.joinpath("calibration.json").read_text())["tensors"])
    assert calibrated and calibrated <= {v for n in equalised.graph.node for v in n.output} | {
        i.name for i in equalised.graph.input
    }
    assert res.validation.value("int8", "top1_agreement") >= 0.95
