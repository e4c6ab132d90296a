"""The engine step where TensorRT imports but no GPU can run it, where the build fails, and what engine.json,
engine.log and the runtime do then (TensorRT replaced by the fake; see tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.zoo import graph_file
from trtq.engines import compat, cuda
from trtq.engines.options import EngineOptions
from trtq.engines.stage import build_engine_file
from trtq.errors import TensorRTUnavailable, TrtqError, UsageError


def test_no_gpu_is_a_one_line_skip_reason_not_a_builder_crash(fake_tensorrt, monkeypatch):
    fake_tensorrt("11.4.0")
    monkeypatch.setattr(cuda, "probe_driver", lambda: cuda.CudaDriver(loaded=False))
    ok, why = compat.tensorrt_status()
    assert not ok and why.startswith("TensorRT 11.4.0 is installed, but no NVIDIA driver was found")


def test_a_builder_factory_returning_nullptr_is_tensorrt_unavailable(fake_tensorrt, tmp_path):
    trt = fake_tensorrt("11.4.0")
    trt.state.builder_nullptr = True
    with pytest.raises(TensorRTUnavailable, match=r"could not create a builder \(TypeError: .*nullptr"):
        build_engine_file(graph_file("qdq_conv", tmp_path / "m.onnx"), tmp_path / "m.plan")


def test_a_failed_build_keeps_engine_json_and_the_tensorrt_log(fake_tensorrt, tmp_path):
    trt = fake_tensorrt("11.4.0")
    trt.state.build_fails = True
    with pytest.raises(TrtqError, match="could not build an engine"):
        build_engine_file(graph_file("qdq_conv", tmp_path / "m.onnx"), tmp_path / "m.plan")
    doc = json.loads((tmp_path / "m.engine.json").read_text())
    assert doc["status"] == "failed" and "could not build an engine" in doc["error"]
    assert doc["input_onnx"]["name"] == "m.onnx" and doc["log"] == "m.build.log"
    log = (tmp_path / "m.build.log").read_text().splitlines()
    assert log == ["[WARNING] a builder warning", "[INFO] a builder note"]
    assert not (tmp_path / "m.plan").exists()


def test_calib_cache_on_a_qdq_graph_is_refused_before_tensorrt_is_needed(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # no TensorRT: the refusal comes first
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-100300-EntropyCalibration2\nx: 3c010a14\n")
    with pytest.raises(UsageError, match=r"has 4 Q/DQ nodes; TensorRT would ignore the cache"):
        build_engine_file(graph_file("qdq_conv", tmp_path / "m.onnx"), tmp_path / "m.plan", EngineOptions(calib_cache=cache),
                          typed=False)  # fmt: skip
    with pytest.raises(UsageError, match="needs a weakly typed build"):
        build_engine_file(graph_file("qdq_conv", tmp_path / "f.onnx", qdq=False), tmp_path / "f.plan",
                          EngineOptions(calib_cache=cache), typed=True)  # fmt: skip


def test_plugins_are_registered_before_an_engine_is_deserialized(fake_tensorrt):
    from trtq.engines.inspect import deserialize

    trt = fake_tensorrt("11.4.0")
    holder = deserialize(b"PLAN:" + json.dumps({"inputs": [["x", [1, 3, 8, 8]]]}).encode(), trt)
    assert ("init_plugins", "") in trt.state.log and holder.runtime.engine_host_code_allowed is False
    assert deserialize(b'PLAN:{"inputs": []}', trt, host_code_allowed=True).runtime.engine_host_code_allowed


def test_version_compatible_engines_are_loaded_with_host_code_only_when_trtq_built_them_so(
    fake_tensorrt, tmp_path
):
    from trtq.engines.metadata import recorded_version_compatible
    from trtq.runners import TensorRTRunner

    trt = fake_tensorrt("11.4.0")
    trt.state.inspector_json = json.loads(
        (Path(__file__).parents[1] / "trt_stub" / "inspector" / "trt11_mixed_int8_fp16.json").read_text()
    )
    plan = tmp_path / "m.plan"
    build_engine_file(graph_file("qdq_conv", tmp_path / "m.onnx"), plan, EngineOptions(version_compat=True))
    assert json.loads((tmp_path / "m.engine.json").read_text())["builder_flags"] == ["VERSION_COMPATIBLE"]
    assert recorded_version_compatible(plan) and TensorRTRunner(plan).host_code_allowed()
    assert not TensorRTRunner(plan, host_code_allowed=False).host_code_allowed()
    assert not TensorRTRunner(plan.read_bytes()).host_code_allowed()  # bytes: nothing vouches for them
    plan.write_bytes(plan.read_bytes() + b" changed")  # another file under the same name
    assert not recorded_version_compatible(plan) and not TensorRTRunner(plan).host_code_allowed()
    build_engine_file(graph_file("qdq_conv", tmp_path / "n.onnx"), tmp_path / "n.plan")
    assert not TensorRTRunner(tmp_path / "n.plan").host_code_allowed()  # built without --version-compat
