"""The precision proof on engine inspector JSON samples (10.x and 11.x schemas), without TensorRT.

The samples in tests/trt_stub/inspector/ are hand-written after the documented schemas (see the README
there), not dumped from a real engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from trtq.engines.precision import (
    check_precision,
    graph_expectations,
    parse_inspector,
    precision_summary,
    tensor_precision,
)
from trtq.errors import TrtqError

SAMPLES = Path(__file__).parents[1] / "trt_stub" / "inspector"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


@pytest.mark.parametrize(
    "desc, expected",
    [
        ("Row major linear FP32", "fp32"),
        ("Float", "fp32"),
        ("Half", "fp16"),
        ("Channel major FP16 format where channel % 8 == 0", "fp16"),
        ("Thirty-two wide channel vectorized row major Int8 format.", "int8"),
        ("Channel major INT8 format where channel % 16 == 0", "int8"),
        ("Int8", "int8"),
        ("UInt8", "uint8"),
        ("Row major linear UInt8 format", "uint8"),
        ("Row major linear BFloat16 format", "bf16"),
        ("Row major linear FP8 format", "fp8"),
        ("Row major linear Int32", "int"),
        ("Int64", "int"),
        ("Bool", "int"),
        ("N/A due to dynamic shapes", "unknown"),
        ("", "unknown"),
    ],
)
def test_tensor_precision_reads_tensorrt_format_strings(desc, expected):
    assert tensor_precision(desc) == expected


def test_trt10_int8_engine_summary():
    s = precision_summary(sample("trt10_int8_resnet_block.json"))
    assert s["schema"] == "10.x"
    assert s["layers"] == 8
    assert s["bookkeeping_layers"] == 2  # NoOp flatten, output reformat
    assert s["reformats"] == 1
    # input quantize (FP32 in), 3 convs + pooling + fc in INT8
    assert s["by_precision"] == {"fp32": 1, "int8": 5}
    assert s["weighted_layers"] == 4 and s["int8_weighted_layers"] == 4
    assert s["int8_share"] == pytest.approx(5 / 6, abs=1e-4)
    assert check_precision(s, expected_int8_layers=4, expect_fp16=False) == []


def test_trt11_schema_with_split_datatype_field():
    schema, layers = parse_inspector(sample("trt11_mixed_int8_fp16.json"))
    assert schema == "11.x"
    by_name = {lay.name: lay for lay in layers}
    assert by_name["/conv1/Conv + /relu/Relu"].precision == "int8"
    assert by_name["/layer1/conv2/Conv"].precision == "fp16"  # the sensitivity fallback layer
    # the Add's first input is the FP16 conv output: it runs in FP16 although its residual input is INT8
    assert by_name["/layer1/Add + /layer1/relu_1/Relu"].precision == "fp16"
    s = precision_summary(sample("trt11_mixed_int8_fp16.json"))
    assert s["by_precision"] == {"fp16": 3, "fp32": 1, "int8": 3}
    assert s["weighted_layers"] == 4 and s["int8_weighted_layers"] == 3
    assert check_precision(s, expected_int8_layers=3, expect_fp16=True, strongly_typed=True) == []


def test_warns_when_some_quantized_layers_are_not_int8():
    s = precision_summary(sample("trt11_mixed_int8_fp16.json"))
    warnings = check_precision(s, expected_int8_layers=4, expect_fp16=True)
    assert warnings == ["3 of 4 quantized layers run in INT8"]


def test_fp32_engine_from_an_int8_graph_fails_loudly():
    """The TensorRT 11 trap: the build exits cleanly, but nothing runs in INT8 (or FP16)."""
    s = precision_summary(sample("trt11_fp32_unfused.json"))
    assert s["by_precision"] == {"fp32": 6}
    with pytest.raises(TrtqError, match=r"engine runs 0 weighted layers in INT8 but the graph quantized 4"):
        check_precision(s, expected_int8_layers=4)
    with pytest.raises(TrtqError, match=r"runs 6 of 6 non-INT8 float layers in FP32 although FP16 was asked"):
        check_precision(s, expect_fp16=True, strongly_typed=True)


def test_fp32_shortfall_is_only_a_warning_for_weak_typing():
    s = precision_summary(sample("trt11_fp32_unfused.json"))
    warnings = check_precision(s, expect_fp16=True, strongly_typed=False)
    assert len(warnings) == 1 and "in FP32 although FP16 was asked" in warnings[0]


def test_min_int8_fraction_is_the_threshold():
    s = precision_summary(sample("trt11_mixed_int8_fp16.json"))  # 3 INT8 weighted layers
    check_precision(s, expected_int8_layers=6, min_int8_fraction=0.5)  # needs 3: passes
    with pytest.raises(TrtqError, match="at least 4 required"):
        check_precision(s, expected_int8_layers=7, min_int8_fraction=0.5)


def test_dynamic_shapes_without_context_cannot_prove_anything():
    s = precision_summary(sample("trt10_dynamic_no_context.json"))
    assert s["by_precision"] == {"unknown": 2}
    with pytest.raises(TrtqError, match="gave no layer precisions"):
        check_precision(s, expected_int8_layers=2)


def test_layer_names_only_is_refused():
    with pytest.raises(TrtqError, match="detailed profiling verbosity"):
        precision_summary(sample("trt10_layer_names_only.json"))


def test_not_json_is_refused():
    with pytest.raises(TrtqError, match="did not return JSON"):
        precision_summary("Layers: none")
    with pytest.raises(TrtqError, match="no 'Layers'"):
        precision_summary({"Bindings": []})


def test_myelin_layers_with_short_type_names():
    s = precision_summary(sample("trt10_myelin_gemm.json"))
    assert s["weighted_layers"] == 2 and s["int8_weighted_layers"] == 2
    assert s["by_precision"] == {"fp16": 1, "fp32": 1, "int8": 2}


# --- what the graph asked for -----------------------------------------------------------------------
def test_graph_expectations_counts_fully_quantized_weighted_ops(onnx_graph):
    assert graph_expectations(onnx_graph("qdq_conv")) == {"int8_layers": 1, "fp16": False, "qdq_nodes": 4}
    assert graph_expectations(onnx_graph("qdq_conv", quantize_weight=False))["int8_layers"] == 0
    assert graph_expectations(onnx_graph("qdq_conv", fp16=True))["fp16"] is True


def test_graph_expectations_match_onnxruntime_qdq_quantizer(tmp_path, make_model):
    """Reference: ONNX Runtime's QDQ quantizer quantizes every Conv and Gemm of a small CNN."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from tests.zoo import export_model

    fp32 = tmp_path / "m.onnx"
    export_model(make_model("tiny_cnn", classes=5), np.zeros((1, 3, 16, 16), np.float32), fp32,
                 input_names=["x"], output_names=None, dynamic=None)  # fmt: skip

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter(
                [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
            )

        def get_next(self):
            return next(self.items, None)

    q = tmp_path / "m.qdq.onnx"
    quantize_static(
        str(fp32), str(q), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8, per_channel=True,
    )  # fmt: skip
    model = onnx.load(str(q))
    weighted = sum(1 for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul"))
    assert weighted == 3
    assert graph_expectations(q)["int8_layers"] == weighted
    assert graph_expectations(fp32) == {"int8_layers": 0, "fp16": False, "qdq_nodes": 0}


def test_a_real_inspector_json_from_nvidia_trex_proves_an_int8_mobilenet():
    """Real data: the engine inspector JSON of a QAT MobileNetV2 engine in NVIDIA's TensorRT Engine Explorer test
    inputs (combined "Format/Datatype" schema; see tests/trt_stub/README.md for its source)."""
    summary = precision_summary(sample("real_trt8_mobilenet_qat.json"))
    assert summary["schema"] == "10.x" and summary["layers"] == 73
    assert summary["weighted_layers"] == 53 and summary["int8_weighted_layers"] == 53  # 52 convs and the FC
    assert summary["by_precision"] == {"fp16": 1, "int8": 53}
    assert summary["tensor_keys"] == {"Format/Datatype": 156}  # what the proof read
    assert check_precision(summary, expected_int8_layers=53, expect_fp16=True) == []


@pytest.mark.parametrize("spelling", ["DataType", "Datatype", "Data Type", "datatype"])
def test_the_split_datatype_key_is_read_however_it_is_spelled(spelling):
    """NVIDIA's tools spell the 11.x per-tensor key "DataType" and "Datatype"; the proof reads either, and says so."""
    doc = json.loads(
        json.dumps(sample("trt11_mixed_int8_fp16.json")).replace('"DataType"', json.dumps(spelling))
    )
    reference = precision_summary(sample("trt11_mixed_int8_fp16.json"))
    summary = precision_summary(doc)
    assert summary["by_precision"] == reference["by_precision"] and reference["by_precision"].get("int8")
    assert spelling in summary["tensor_keys"] and "Format" not in summary["tensor_keys"]
