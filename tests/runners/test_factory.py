"""`make_runner`: ONNX (file, ModelProto, bytes) -> ONNX Runtime; .plan/.engine/.trt -> TensorRT."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.errors import UsageError
from trtq.runners import ENGINE_SUFFIXES, ONNX_SUFFIXES, OnnxRuntimeRunner, make_runner
from trtq.runners.tensorrt import TensorRTRunner


def test_make_runner_by_suffix(tmp_path, graph_file):
    onnx_path = graph_file("conv_relu", tmp_path / "m.onnx")
    assert type(make_runner(onnx_path)).__name__ == "OnnxRuntimeRunner"
    (tmp_path / "m.plan").write_bytes(b"x")
    assert type(make_runner(tmp_path / "m.plan")).__name__ == "TensorRTRunner"
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(UsageError, match="give .onnx, .plan or .engine"):
        make_runner(tmp_path / "m.txt")
    with pytest.raises(UsageError, match="does not exist"):
        make_runner(tmp_path / "nope.onnx")


@pytest.mark.parametrize("suffix", [".plan", ".engine", ".trt", ".PLAN"])
def test_every_engine_suffix_goes_to_tensorrt(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"serialized engine")
    runner = make_runner(path, profile=1)
    assert isinstance(runner, TensorRTRunner)
    assert runner.name == path.name and runner.device == "cuda" and runner.backend == "tensorrt"
    assert not runner.is_active  # nothing loaded (no TensorRT needed to choose)
    assert ENGINE_SUFFIXES == (".plan", ".engine", ".trt")


def test_onnx_file_model_and_bytes_go_to_onnxruntime_and_agree(tmp_path, graph_file, onnx_graph):
    path = graph_file("conv_relu", tmp_path / "m.onnx")
    proto = onnx_graph("conv_relu")
    feed = {"x": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    runners = [make_runner(path, threads=1), make_runner(proto), make_runner(proto.SerializeToString())]
    assert all(isinstance(r, OnnxRuntimeRunner) and r.device == "cpu" for r in runners)
    assert [r.name for r in runners] == ["m.onnx", "onnxruntime", "onnxruntime"]
    outs = []
    for r in runners:
        with r:
            outs.append(r.infer(feed)["z"])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    assert ONNX_SUFFIXES == (".onnx",)


def test_names_and_runner_options_are_passed_through(tmp_path, graph_file):
    path = graph_file("conv_relu", tmp_path / "m.onnx")
    runner = make_runner(path, name="fp32", extra_outputs=["y"])
    assert runner.name == "fp32"
    with runner:
        assert runner.output_names() == ["z", "y"]


def test_what_cannot_run_is_a_one_line_usage_error(tmp_path):
    (tmp_path / "engine").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"engine: cannot run a suffix-less file; give \.onnx") as e:
        make_runner(tmp_path / "engine")
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="not a serialized ONNX model; give an engine as a .plan"):
        make_runner(b"\x00\xffnot onnx at all")
    with pytest.raises(UsageError, match="cannot run a int"):
        make_runner(3)  # type: ignore[arg-type]
