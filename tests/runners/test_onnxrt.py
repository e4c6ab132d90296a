"""The ONNX Runtime runner: Q/DQ executed as written, extra outputs, metadata, device."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trtq.runners import onnxrt
from trtq.runners.onnxrt import QDQ_FUSION_OPTIMIZERS, OnnxRuntimeRunner, expose_tensors


@pytest.fixture
def sessions(monkeypatch):
    """Record the keyword arguments every ONNX Runtime session is created with."""
    import onnxruntime as ort

    made: list[dict] = []
    real = ort.InferenceSession

    def recording(*args, **kwargs):
        made.append({**kwargs, "options": args[1] if len(args) > 1 else kwargs.get("sess_options")})
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    return made


def test_qdq_fusion_is_disabled_unless_asked_for(sessions, onnx_graph):
    with OnnxRuntimeRunner(onnx_graph("conv_relu")):
        pass
    with OnnxRuntimeRunner(onnx_graph("conv_relu"), qdq_as_written=False):
        pass
    assert sessions[0]["disabled_optimizers"] == QDQ_FUSION_OPTIMIZERS
    assert sessions[1]["disabled_optimizers"] is None
    assert set(QDQ_FUSION_OPTIMIZERS) == {"QDQSelectorActionTransformer", "WeightBiasQuantization"}
    assert all(s["providers"] == ["CPUExecutionProvider"] for s in sessions)


def test_every_trtq_session_does_not_spin_and_takes_its_thread_count(sessions, onnx_graph):
    """Calibration, method choice, validation and sensitivity sessions: no spin-waiting intra-op threads (they
    take the cores a throughput pass needs on a shared or 2-core machine); `threads` where given."""
    from trtq.sensitivity.evaluate import make_session
    from trtq.validate import polygraphy_runner

    model = onnx_graph("conv_relu")
    with OnnxRuntimeRunner(model, threads=1):
        pass
    with polygraphy_runner(model, "fp32"):
        pass
    make_session(model, threads=2)
    assert len(sessions) == 3
    spin = [s["options"].get_session_config_entry("session.intra_op.allow_spinning") for s in sessions]
    assert spin == ["0", "0", "0"]
    assert [s["options"].intra_op_num_threads for s in sessions] == [1, 0, 2]


def test_extra_outputs_and_metadata(tmp_path, graph_file):
    path = graph_file("conv_relu", tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with OnnxRuntimeRunner(path, extra_outputs=["y"], threads=1) as r:
        assert r.input_metadata() == {"x": (np.dtype(np.float32), ("N", 3, 16, 16))}
        assert r.output_names() == ["z", "y"]
        out = r.infer({"x": x})
    np.testing.assert_array_equal(out["z"], np.maximum(out["y"], 0))  # z = Relu(y)
    assert r.session is None  # released on exit


def test_expose_tensors_copies_and_types_the_new_outputs(onnx_graph):
    proto = onnx_graph("conv_relu")
    exposed = expose_tensors(proto, ["y", "z"])
    assert [o.name for o in proto.graph.output] == ["z"]  # the original is untouched
    assert [o.name for o in exposed.graph.output] == ["z", "y"]  # already-present outputs not repeated
    assert exposed.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_device_and_timing_interface(onnx_graph):
    cpu = OnnxRuntimeRunner(onnx_graph("conv_relu"))
    gpu = OnnxRuntimeRunner(
        onnx_graph("conv_relu"), providers=("CUDAExecutionProvider", "CPUExecutionProvider")
    )
    assert (cpu.device, gpu.device) == ("cpu", "cuda")
    assert cpu.backend == gpu.backend == "onnxruntime"
    assert cpu.cuda_steps() is None and gpu.cuda_steps() is None  # always timed around infer()
    assert "CUDAExecutionProvider" in onnxrt.CUDA_PROVIDERS


def test_part_runner_splits_feeds_by_output_bytes_and_sample_cap(onnx_graph):
    from trtq.runners.onnxrt import PartRunner

    model = onnx_graph("conv_relu")
    x = np.random.default_rng(0).standard_normal((10, *_input_shape(model)[1:])).astype(np.float32)
    name = model.graph.input[0].name
    with OnnxRuntimeRunner(model) as runner:
        whole = runner.infer({name: x})
        per_sample = sum(v.nbytes for v in whole.values()) // 10
        sizes = []
        by_bytes = PartRunner(runner, budget=3 * per_sample)
        for part, _out in by_bytes.parts({name: x}):
            sizes.append(len(part[name]))
        assert sizes == [1, 3, 3, 3] and by_bytes.samples == 3  # measured on the first sample
        capped = PartRunner(runner, budget=0, max_samples=4)
        got = capped.infer({name: x})
        assert capped.calls == 3 and all(np.allclose(got[k], whole[k], atol=1e-6) for k in whole)
        never = PartRunner(runner, budget=0)
        assert [len(p[name]) for p, _ in never.parts({name: x})] == [10]


def _input_shape(model):
    return [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
