"""The build recipe, profiles, options, graph choice, timing cache and engine stage, without TensorRT.

TensorRT is replaced by tests/trt_stub/fake_tensorrt.py, a recorder shaped like 10.x or 11.x whose
names are checked against the real bindings by test_engines_contract.py. These tests pin what trtq asks
TensorRT to do; they cannot show what TensorRT does with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtq.engines import compat
from trtq.engines.build import build_engine, build_engine_info, choose_graph, read_timing_cache
from trtq.engines.calib_cache import cache_scales, cache_version_number, read_cache_header, retarget_cache
from trtq.engines.options import EngineOptions, parse_batch, parse_shapes
from trtq.engines.profiles import compute_profile, needs_profile, onnx_input_shapes, opt_shapes
from trtq.engines.stage import build_engine_file, engine_stage
from trtq.errors import TensorRTUnavailable, TrtqError, UsageError

sys.path.insert(0, str(Path(__file__).parent))
from trt_stub.fake_tensorrt import make_fake  # noqa: E402

SAMPLES = Path(__file__).parent / "trt_stub" / "inspector"


def _model(
    path: Path, batch: str | int = "N", height: str | int = 8, qdq: bool = True, fp16: bool = False
) -> Path:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    inits = [w]
    nodes = []
    x, weight = "x", "w"
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "zp"),
            numpy_helper.from_array(np.full((4,), 0.01, np.float32), "ws"),
            numpy_helper.from_array(np.zeros((4,), np.int8), "wzp"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xdq"]),
            helper.make_node("QuantizeLinear", ["w", "ws", "wzp"], ["wq"], axis=0),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["wdq"], axis=0),
        ]
        x, weight = "xdq", "wdq"
    nodes.append(helper.make_node("Conv", [x, weight], ["y"], pads=[1, 1, 1, 1]))
    out = "y"
    if fp16:
        nodes += [
            helper.make_node("Cast", ["y"], ["y16"], to=TensorProto.FLOAT16),
            helper.make_node("Relu", ["y16"], ["r16"]),
            helper.make_node("Cast", ["r16"], ["z"], to=TensorProto.FLOAT),
        ]
        out = "z"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 4, height, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def fake(monkeypatch):
    """Install a fake TensorRT of the requested version as `tensorrt`."""

    def install(version: str = "11.4.0"):
        mod = make_fake(version)
        monkeypatch.setitem(sys.modules, "tensorrt", mod)
        return mod

    return install


# --- options ----------------------------------------------------------------------------------------
def test_parse_batch():
    assert parse_batch("1,8,32") == (1, 8, 32)
    assert parse_batch("4") == (4, 4, 4)
    for bad in ("8,1,32", "0,1,2", "1,2", "a"):
        with pytest.raises(UsageError, match="--batch"):
            parse_batch(bad)


def test_parse_shapes():
    assert parse_shapes(["images:1x3x224x224,8x3x224x224,16x3x224x224"]) == {
        "images": ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
    }
    assert parse_shapes(["a:b:2x3"]) == {"a:b": ((2, 3), (2, 3), (2, 3))}  # names may contain ':'
    assert parse_shapes(None) is None
    with pytest.raises(UsageError, match="min <= opt <= max"):
        parse_shapes(["x:4x3,2x3,8x3"])
    with pytest.raises(UsageError, match="integers"):
        parse_shapes(["x:ax3"])


def test_engine_options_validate():
    with pytest.raises(UsageError, match="--opt-level 7"):
        EngineOptions(opt_level=7)
    with pytest.raises(UsageError, match="--hardware-compat"):
        EngineOptions(hardware_compat="volta")
    with pytest.raises(UsageError, match="--workspace-gb"):
        EngineOptions(workspace_gb=0)
    assert EngineOptions(hardware_compat="Ampere-Plus").hardware_compat == "ampere_plus"
    assert EngineOptions(hardware_compat="none").hardware_compat is None
    assert EngineOptions(workspace_gb=0.5).workspace_bytes == 1 << 29
    d = EngineOptions(timing_cache=Path("t.cache"), shapes={"x": ((1, 3), (2, 3), (4, 3))}).to_json()
    assert d["timing_cache"] == "t.cache" and d["shapes"] == {"x": [[1, 3], [2, 3], [4, 3]]}
    json.dumps(d)


# --- profiles ---------------------------------------------------------------------------------------
def test_profile_from_dynamic_batch(tmp_path):
    inputs = onnx_input_shapes(_model(tmp_path / "m.onnx"))
    assert inputs == {"x": ["N", 3, 8, 8]}  # initializers are not inputs
    assert needs_profile(inputs)
    prof = compute_profile(inputs, (1, 8, 32))
    assert prof == {"x": ((1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8))}
    assert opt_shapes(prof) == {"x": (8, 3, 8, 8)}


def test_profile_static_model_keeps_its_shape(tmp_path):
    inputs = onnx_input_shapes(_model(tmp_path / "m.onnx", batch=2))
    assert not needs_profile(inputs)
    assert compute_profile(inputs, (1, 8, 32)) == {"x": ((2, 3, 8, 8),) * 3}


def test_profile_other_dynamic_axis_needs_shapes(tmp_path):
    inputs = onnx_input_shapes(_model(tmp_path / "m.onnx", height="H"))
    with pytest.raises(UsageError, match=r"input 'x' \(\?x3x\?x8\) has a dynamic axis 2 .*--shapes x:"):
        compute_profile(inputs, (1, 8, 32))
    rng = ((1, 3, 8, 8), (4, 3, 16, 8), (8, 3, 32, 8))
    assert compute_profile(inputs, (1, 8, 32), {"x": rng}) == {"x": rng}
    with pytest.raises(UsageError, match="axis 1 is fixed to 3"):
        compute_profile(inputs, (1, 8, 32), {"x": ((1, 4, 8, 8),) * 3})
    with pytest.raises(UsageError, match="rank 4, not 3"):
        compute_profile(inputs, (1, 8, 32), {"x": ((1, 3, 8),) * 3})
    with pytest.raises(UsageError, match="does not have"):
        compute_profile(inputs, (1, 8, 32), {"y": ((1,),) * 3})


def test_profile_accepts_tensorrt_minus_one_dims():
    assert compute_profile({"x": [-1, 3]}, (2, 4, 6)) == {"x": ((2, 3), (4, 3), (6, 3))}


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
def test_no_tensorrt_is_a_clean_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    ok, why = compat.tensorrt_status()
    assert not ok and why.startswith("TensorRT is not installed")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        build_engine(_model(tmp_path / "m.onnx"))
    assert not (tmp_path / "model.plan").exists()


def test_too_old_tensorrt_is_refused(fake):
    fake("8.6.1")
    with pytest.raises(TensorRTUnavailable, match="TensorRT 8.6.1 is too old"):
        compat.import_tensorrt()


# --- the build recipe -------------------------------------------------------------------------------
def test_strongly_typed_build_on_11(fake, tmp_path):
    trt = fake("11.4.0")
    opts = EngineOptions(batch=(1, 4, 16), workspace_gb=1, opt_level=5, hardware_compat="ampere_plus")
    info = build_engine_info(_model(tmp_path / "m.onnx"), opts)
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


def test_strongly_typed_build_on_10_13_sets_the_network_flag(fake, tmp_path):
    trt = fake("10.13.3")
    info = build_engine_info(_model(tmp_path / "m.onnx"), EngineOptions(version_compat=True))
    assert info.strongly_typed
    assert ("create_network", 1 << 1) in trt.state.log
    assert trt.state.config.flags == ["VERSION_COMPATIBLE"]  # never FP16/INT8 in a strongly typed build


def test_weakly_typed_build_on_10_3_sets_int8_and_fp16(fake, tmp_path):
    trt = fake("10.3.0")
    info = build_engine_info(_model(tmp_path / "m.onnx"), EngineOptions())
    assert not info.strongly_typed
    assert ("create_network", 0) in trt.state.log
    assert trt.state.config.flags == ["INT8", "FP16"] == info.flags
    fake("10.3.0")
    assert build_engine_info(_model(tmp_path / "m.onnx"), EngineOptions(precision="fp16")).flags == ["FP16"]


def test_weak_typing_refused_on_11(fake, tmp_path):
    fake("11.4.0")
    with pytest.raises(UsageError, match="weakly typed builds are not available on TensorRT 11.4"):
        build_engine(_model(tmp_path / "m.onnx"), typed=False)


def test_same_compute_capability_needs_10_4(fake, tmp_path):
    fake("10.3.0")
    with pytest.raises(UsageError, match="same_compute_capability is not available on TensorRT 10.3"):
        build_engine(_model(tmp_path / "m.onnx"), EngineOptions(hardware_compat="same_compute_capability"))


def test_parser_errors_name_the_node(fake, tmp_path):
    trt = fake()
    trt.state.parse_errors = [
        ("/head/NonMaxSuppression", "NonMaxSuppression", "No importer registered for op\n"),
        ("/x", "Foo", "other"),
    ]
    with pytest.raises(
        TrtqError,
        match=r"could not parse .*m.onnx: node /head/NonMaxSuppression \(NonMaxSuppression\): "
        r"No importer registered for op \(\+1 more parser errors\)$",
    ):
        build_engine(_model(tmp_path / "m.onnx"))


def test_missing_onnx_is_a_usage_error(fake, tmp_path):
    fake()
    with pytest.raises(UsageError, match="does not exist"):
        build_engine(tmp_path / "nope.onnx")


def test_build_from_bytes(fake, tmp_path):
    trt = fake()
    data = _model(tmp_path / "m.onnx").read_bytes()
    assert build_engine(data).startswith(b"PLAN:")
    assert ("parse", len(data)) in trt.state.log


def test_build_failure(fake, tmp_path):
    trt = fake()
    trt.state.build_fails = True
    with pytest.raises(TrtqError, match="could not build an engine"):
        build_engine(_model(tmp_path / "m.onnx"))


# --- timing cache -----------------------------------------------------------------------------------
def test_timing_cache_created_loaded_and_saved(fake, tmp_path):
    cache = tmp_path / "timing.cache"
    assert read_timing_cache(cache) == b""
    fake()
    info = build_engine_info(_model(tmp_path / "m.onnx"), EngineOptions(timing_cache=cache))
    assert info.timing_cache["loaded"] is False
    assert cache.read_bytes() == b"+tactics"  # the new cache, serialized after the build
    fake()
    info = build_engine_info(_model(tmp_path / "m.onnx"), EngineOptions(timing_cache=cache))
    assert info.timing_cache["loaded"] is True and info.timing_cache["loaded_bytes"] == 8
    assert cache.read_bytes() == b"+tactics+tactics"  # loaded, extended, saved


@pytest.mark.parametrize("content", [b"OTHER-GPU-cache", b"CORRUPT"])
def test_unusable_timing_cache_starts_fresh(fake, tmp_path, content):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(content)
    fake()
    info = build_engine_info(_model(tmp_path / "m.onnx"), EngineOptions(timing_cache=cache))
    assert info.timing_cache["loaded"] is False and "not usable" in info.timing_cache["note"]
    assert cache.read_bytes() == b"+tactics"


def test_timing_cache_folder_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        read_timing_cache(tmp_path)


# --- legacy calibration cache -----------------------------------------------------------------------
def test_calibration_cache_header_and_scales():
    assert cache_version_number((10, 3, 0)) == 100300
    assert cache_version_number((10, 16, 1)) == 101601
    assert cache_version_number((8, 6, 1)) == 8601
    data = b"TRT-100300-EntropyCalibration2\ninput: 3c010204\n/conv1/Conv_output_0: 3d800000\n"
    assert read_cache_header(data) == (100300, "EntropyCalibration2")
    scales = cache_scales(data)
    assert scales["input"] == pytest.approx(1 / 127, rel=1e-6)  # amax 1.0
    assert scales["/conv1/Conv_output_0"] == 0.0625
    new, changed = retarget_cache(data, (10, 13, 3))
    assert changed and new.startswith(b"TRT-101303-EntropyCalibration2\ninput: 3c010204")
    assert retarget_cache(data, (10, 3, 0)) == (data, False)
    with pytest.raises(UsageError, match="does not start with a TensorRT header"):
        read_cache_header(b"input: 3c010204\n")


def test_implicit_int8_from_a_cache_on_10(fake, tmp_path):
    trt = fake("10.3.0")
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"TRT-100300-MinMaxCalibration\nx: 3c010204\n")
    info = build_engine_info(
        _model(tmp_path / "m.onnx", qdq=False), EngineOptions(calib_cache=cache), typed=False
    )
    cfg = trt.state.config
    assert info.calibrator == "IInt8MinMaxCalibrator"
    assert cfg.int8_calibrator.read_calibration_cache() == cache.read_bytes()
    assert cfg.calibration_profile is cfg.profiles[0]
    assert cfg.flags == ["INT8", "FP16"]


def test_implicit_int8_refused_when_strongly_typed(fake, tmp_path):
    fake("11.4.0")
    with pytest.raises(UsageError, match="--calib-cache needs a weakly typed build"):
        build_engine(_model(tmp_path / "m.onnx"), EngineOptions(calib_cache=tmp_path / "c"))


# --- the engine stage -------------------------------------------------------------------------------
def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    _model(run / "model.trt.onnx", fp16=True)
    _model(run / "model.int8.onnx")
    return run


def test_engine_stage_writes_plan_and_engine_json(fake, tmp_path):
    trt = fake("11.4.0")
    trt.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
    run = _run_dir(tmp_path)
    summary = engine_stage(
        run, run / "model.trt.onnx", run / "model.int8.onnx", EngineOptions(batch=(1, 8, 32))
    )
    assert (run / "model.plan").read_bytes().startswith(b"PLAN:")
    meta = json.loads((run / "engine.json").read_text())
    assert meta["status"] == "ok"
    assert meta["tensorrt_version"] == "11.4.0" and meta["typing"] == "strong"
    assert meta["input_onnx"]["name"] == "model.trt.onnx" and len(meta["input_onnx"]["sha256"]) == 64
    assert meta["profiles"] == [{"x": {"min": [1, 3, 8, 8], "opt": [8, 3, 8, 8], "max": [32, 3, 8, 8]}}]
    assert meta["io_tensors"][0] == {
        "name": "x",
        "mode": "input",
        "dtype": "float",
        "shape": [-1, 3, 8, 8],
        "profiles": [[[1, 3, 8, 8], [8, 3, 8, 8], [32, 3, 8, 8]]],
    }
    assert meta["io_tensors"][1]["mode"] == "output"
    assert meta["build_options"]["batch"] == [1, 8, 32]
    assert set(meta["gpu"]) >= {"name", "compute_capability"}
    assert meta["plan"]["bytes"] == len((run / "model.plan").read_bytes())
    # the inspector ran with a context at the opt shape, so formats were resolved
    assert ("set_input_shape", "x", (8, 3, 8, 8)) in trt.state.log
    assert ("inspector", "JSON", True) in trt.state.log
    assert json.loads((run / "engine.layers.json").read_text()) == trt.state.inspector_json
    # the summary for report.json
    assert summary["precision"]["expected_int8_layers"] == 1  # counted in model.trt.onnx
    assert summary["precision"]["expect_fp16"] is True  # the graph casts to FP16
    assert summary["precision"]["by_precision"]["int8"] == 3
    assert summary["typing"] == "strong" and summary["graph"] == "model.trt.onnx"


def test_engine_stage_on_old_10_builds_the_int8_graph_weakly(fake, tmp_path):
    trt = fake("10.3.0")
    trt.state.inspector_json = json.loads((SAMPLES / "trt10_int8_resnet_block.json").read_text())
    run = _run_dir(tmp_path)
    summary = engine_stage(run, run / "model.trt.onnx", run / "model.int8.onnx", EngineOptions())
    assert summary["graph"] == "model.int8.onnx" and summary["typing"] == "weak"
    assert summary["builder_flags"] == ["INT8", "FP16"]
    assert json.loads((run / "engine.json").read_text())["builder_flags"] == ["INT8", "FP16"]


def test_engine_stage_fails_loudly_on_an_fp32_engine(fake, tmp_path):
    trt = fake("11.4.0")
    trt.state.inspector_json = json.loads((SAMPLES / "trt11_fp32_unfused.json").read_text())
    run = _run_dir(tmp_path)
    with pytest.raises(TrtqError, match=r"engine runs 0 weighted layers in INT8 .*no plan written"):
        engine_stage(
            run, run / "model.trt.onnx", run / "model.int8.onnx", EngineOptions(), expected_int8_layers=4
        )
    assert not (run / "model.plan").exists()
    meta = json.loads((run / "engine.json").read_text())
    assert meta["status"] == "precision_check_failed"
    assert "0 weighted layers in INT8" in meta["precision"]["error"]


def test_build_engine_file_refuses_to_overwrite(fake, tmp_path):
    trt = fake()
    trt.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
    onnx_path = _model(tmp_path / "m.onnx")
    out = tmp_path / "model.plan"
    summary = build_engine_file(onnx_path, out)
    assert Path(summary["engine_json"]).name == "model.engine.json"
    with pytest.raises(UsageError, match="already exists"):
        build_engine_file(onnx_path, out)
    build_engine_file(onnx_path, out, force=True)


def test_same_inputs_give_the_same_engine_json(fake, tmp_path):
    docs = []
    for _ in range(2):
        trt = fake()
        trt.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
        build_engine_file(_model(tmp_path / "m.onnx"), tmp_path / "model.plan", force=True)
        meta = json.loads((tmp_path / "model.engine.json").read_text())
        meta.pop("build_seconds")
        docs.append(meta)
    assert docs[0] == docs[1]
