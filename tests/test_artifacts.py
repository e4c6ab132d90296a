"""Artifact names: one spelling per file, each described for the report, calibration plot names made safe."""

from __future__ import annotations

import trtq.artifacts as A


def _names() -> dict[str, str]:
    return {k: getattr(A, k) for k in A.__all__ if k.isupper() and isinstance(getattr(A, k), str)}


def test_every_name_is_distinct_and_the_run_folder_files_are_the_documented_ones():
    names = _names()
    assert len(set(names.values())) == len(names), names
    run_folder = {A.MODEL_ONNX, A.CALIBRATION_JSON, A.CALIBRATION_CACHE, A.INT8_ONNX, A.TYPED_ONNX, A.REPORT_JSON,
                  A.REPORT_MD, A.PLAN, A.ENGINE_JSON, A.BENCH_JSON}  # fmt: skip
    assert run_folder == {"model.onnx", "calibration.json", "calibration.cache", "model.int8.onnx", "model.trt.onnx",
                          "report.json", "report.md", "model.plan", "engine.json", "bench.json"}  # fmt: skip


def test_descriptions_are_of_artifact_names_and_cover_what_a_build_writes():
    assert set(A.DESCRIPTIONS) <= set(_names().values())
    for name in (A.MODEL_ONNX, A.CALIBRATION_JSON, A.INT8_ONNX, A.TYPED_ONNX, A.REPORT_JSON, A.PLAN):
        assert A.describe(name), name
    assert A.describe("unknown.bin") == ""


def test_calibration_plot_names_are_safe_file_names_and_described():
    assert A.calib_plot_name("/layer1/conv1/Conv_output_0") == "calib_layer1_conv1_Conv_output_0.png"
    assert A.calib_plot_name("x") == "calib_x.png"
    assert A.calib_plot_name("///") == "calib_tensor.png"
    long = A.calib_plot_name("a" * 200)
    assert long == "calib_" + "a" * 80 + ".png"
    assert A.describe(A.calib_plot_name("/a:b")) == "activation histogram with each method's threshold"
    assert A.describe("calib_notes.txt") == ""
