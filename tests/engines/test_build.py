"""The build recipe, graph choice and timing cache, against a fake TensorRT (tests/conftest.py)."""

from __future__ import annotations

import sys

import pytest

from trtq.engines import compat
from trtq.engines.build import build_engine, build_engine_info, choose_graph, read_timing_cache
from trtq.engines.options import EngineOptions
from trtq.errors import TensorRTUnavailable, TrtqError, UsageError


# --- graph choice per version -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "version, weak, graph, strong",
    [
        ((11, 4, 0), False, "model.trt.onnx", True),
        ((10, 13, 3), True, "model.trt.onnx", True),
        ((10, 12, 0), True, "model.trt.onnx", True),
        ((10, 11, 0), True, "model.int8.onnx", False),
        ((10, 3, 0), True, "model.int8.onnx", False),
    ],
)
def test_choose_graph_per_version(tmp_path, version, weak, graph, strong):
    trt_onnx, int8_onnx = tmp_path / "model.trt.onnx", tmp_path / "model.int8.onnx"
    trt_onnx.write_bytes(b"x")
    int8_onnx.write_bytes(b"x")
    choice = choose_graph(version, weak, trt_onnx, int8_onnx)
    assert (choice.graph.name, choice.strongly_typed) == (graph, strong)


def test_choose_graph_falls_back_and_refuses(tmp_path):
    int8_onnx = tmp_path / "model.int8.onnx"
    int8_onnx.write_bytes(b"x")
    choice = choose_graph((11, 4, 0), False, tmp_path / "model.trt.onnx", int8_onnx)
    assert choice.graph == int8_onnx and choice.strongly_typed and "missing" in choice.reason
    with pytest.raises(UsageError, match="weakly typed builds are not available on TensorRT 11.4"):
        choose_graph((11, 4, 0), False, int8_onnx, int8_onnx, typed=False)
    with pytest.raises(UsageError, match="no graph to build"):
        choose_graph((11, 4, 0), False, tmp_path / "a.onnx", tmp_path / "b.onnx")


# --- without TensorRT -------------------------------------------------------------------------------
def test_no_tensorrt_is_a_clean_one_line_error(monkeypatch, tmp_path, graph_file):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    ok, why = compat.tensorrt_status()
    assert not ok and why.startswith("TensorRT is not installed")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        build_engine(graph_file("qdq_conv", tmp_path / "m.onnx"))
    assert not (tmp_path / "model.plan").exists()


# --- the build recipe -------------------------------------------------------------------------------
def test_strongly_typed_build_on_11(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt("11.4.0")
    opts = EngineOptions(batch=(1, 4, 16), workspace_gb=1, opt_level=5, hardware_compat="ampere_plus")
    info = build_engine_info(graph_file("qdq_conv", tmp_path / "m.onnx"), opts)
    cfg = trt.state.config
    assert info.strongly_typed and info.flags == []
    assert ("create_network", 0) in trt.state.log  # STRONGLY_TYPED is implied on 11 and not passed
    assert cfg.flags == []  # no precision flags exist on 11
    assert cfg.profiling_verbosity is trt.ProfilingVerbosity.DETAILED
    assert cfg.builder_optimization_level == 5
    assert cfg.pools == {"WORKSPACE": 1 << 30}
    assert cfg.hardware_compatibility_level is trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert cfg.profiles[0].shapes == {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8))}
    assert info.plan.startswith(b"PLAN:")
    assert info.trt_version == "11.4.0"


def test_strongly_typed_build_on_10_13_sets_the_network_flag(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt("10.13.3")
    info = build_engine_info(graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions(version_compat=True))
    assert info.strongly_typed
    assert ("create_network", 1 << 1) in trt.state.log
    assert trt.state.config.flags == ["VERSION_COMPATIBLE"]  # never FP16/INT8 in a strongly typed build


def test_weakly_typed_build_on_10_3_sets_int8_and_fp16(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt("10.3.0")
    info = build_engine_info(graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions())
    assert not info.strongly_typed
    assert ("create_network", 0) in trt.state.log
    assert trt.state.config.flags == ["INT8", "FP16"] == info.flags
    fake_tensorrt("10.3.0")
    assert build_engine_info(
        graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions(precision="fp16")
    ).flags == ["FP16"]


def test_weak_typing_refused_on_11(fake_tensorrt, tmp_path, graph_file):
    fake_tensorrt("11.4.0")
    with pytest.raises(UsageError, match="weakly typed builds are not available on TensorRT 11.4"):
        build_engine(graph_file("qdq_conv", tmp_path / "m.onnx"), typed=False)


def test_same_compute_capability_needs_10_4(fake_tensorrt, tmp_path, graph_file):
    fake_tensorrt("10.3.0")
    with pytest.raises(UsageError, match="same_compute_capability is not available on TensorRT 10.3"):
        build_engine(
            graph_file("qdq_conv", tmp_path / "m.onnx"),
            EngineOptions(hardware_compat="same_compute_capability"),
        )


def test_parser_errors_name_the_node(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt()
    trt.state.parse_errors = [
        ("/head/NonMaxSuppression", "NonMaxSuppression", "No importer registered for op\n"),
        ("/x", "Foo", "other"),
    ]
    with pytest.raises(
        TrtqError,
        match=r"could not parse .*m.onnx: node /head/NonMaxSuppression \(NonMaxSuppression\): "
        r"No importer registered for op \(\+1 more parser errors\)$",
    ):
        build_engine(graph_file("qdq_conv", tmp_path / "m.onnx"))


def test_missing_onnx_is_a_usage_error(fake_tensorrt, tmp_path):
    fake_tensorrt()
    with pytest.raises(UsageError, match="does not exist"):
        build_engine(tmp_path / "nope.onnx")


def test_build_from_bytes(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt()
    data = graph_file("qdq_conv", tmp_path / "m.onnx").read_bytes()
    assert build_engine(data).startswith(b"PLAN:")
    assert ("parse", len(data)) in trt.state.log


def test_build_failure(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt()
    trt.state.build_fails = True
    with pytest.raises(TrtqError, match="could not build an engine"):
        build_engine(graph_file("qdq_conv", tmp_path / "m.onnx"))


# --- timing cache -----------------------------------------------------------------------------------
def test_timing_cache_created_loaded_and_saved(fake_tensorrt, tmp_path, graph_file):
    cache = tmp_path / "timing.cache"
    assert read_timing_cache(cache) == b""
    fake_tensorrt()
    info = build_engine_info(graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions(timing_cache=cache))
    assert info.timing_cache["loaded"] is False
    assert cache.read_bytes() == b"+tactics"  # the new cache, serialized after the build
    fake_tensorrt()
    info = build_engine_info(graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions(timing_cache=cache))
    assert info.timing_cache["loaded"] is True and info.timing_cache["loaded_bytes"] == 8
    assert cache.read_bytes() == b"+tactics+tactics"  # loaded, extended, saved


@pytest.mark.parametrize("content", [b"OTHER-GPU-cache", b"CORRUPT"])
def test_unusable_timing_cache_starts_fresh(fake_tensorrt, tmp_path, content, graph_file):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(content)
    fake_tensorrt()
    info = build_engine_info(graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions(timing_cache=cache))
    assert info.timing_cache["loaded"] is False and "not usable" in info.timing_cache["note"]
    assert cache.read_bytes() == b"+tactics"


def test_timing_cache_folder_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        read_timing_cache(tmp_path)


# --- legacy implicit INT8 from a calibration cache --------------------------------------------------
def test_implicit_int8_from_a_cache_on_10(fake_tensorrt, tmp_path, graph_file):
    trt = fake_tensorrt("10.3.0")
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"TRT-100300-MinMaxCalibration\nx: 3c010204\n")
    info = build_engine_info(
        graph_file("qdq_conv", tmp_path / "m.onnx", qdq=False), EngineOptions(calib_cache=cache), typed=False
    )
    cfg = trt.state.config
    assert info.calibrator == "IInt8MinMaxCalibrator"
    assert cfg.int8_calibrator.read_calibration_cache() == cache.read_bytes()
    assert cfg.calibration_profile is cfg.profiles[0]
    assert cfg.flags == ["INT8", "FP16"]


def test_implicit_int8_refused_when_strongly_typed(fake_tensorrt, tmp_path, graph_file):
    fake_tensorrt("11.4.0")
    with pytest.raises(UsageError, match="--calib-cache needs a weakly typed build"):
        build_engine(graph_file("qdq_conv", tmp_path / "m.onnx"), EngineOptions(calib_cache=tmp_path / "c"))
