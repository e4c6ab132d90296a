"""`trtq build --weight-ptq ...`: the weights stage runs between calibration and quantization, is recorded in
report.json / report.md and the configuration, and the INT8 weight storage writes a smaller model.int8.onnx."""

from __future__ import annotations

import json

import numpy as np
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
    a = _build(tmp_path, digits_npz, "a", weight_ptq="adaround,bias-correction", seed=3)
    b = _build(tmp_path, digits_npz, "b", weight_ptq="adaround,bias-correction", seed=3)
    assert (tmp_path / "a" / "model.int8.onnx").read_bytes() == (
        tmp_path / "b" / "model.int8.onnx"
    ).read_bytes()
    assert a.validation.value("int8", "top1_agreement") == b.validation.value("int8", "top1_agreement")


def test_unknown_weight_method_is_a_usage_error(tmp_path, digits_npz):
    from trtq.errors import UsageError

    with pytest.raises(UsageError, match="--weight-ptq"):
        _build(tmp_path, digits_npz, "bad", weight_ptq="rounding")


def test_cli_weight_options_reach_the_config():
    import argparse

    from trtq.cli import build as cli_build
    from trtq.cli._options import config_from_args

    p = argparse.ArgumentParser()
    cli_build.add_arguments(p)
    args = p.parse_args(["--model", "m.onnx", "--out", "o", "--calib-data", "c", "--weight-ptq", "bias-correction,clip",
                         "--weight-storage", "int8", "--adaround-iters", "50"])  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.weights.methods == ("clip", "bias-correction")
    assert cfg.weights.storage == "int8" and cfg.weights.adaround_iters == 50
    assert np.all([cfg.weights.batches == 4])
