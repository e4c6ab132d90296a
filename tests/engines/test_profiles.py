"""Optimisation profiles from a graph's dynamic axes, --batch and --shapes."""

from __future__ import annotations

import pytest

from trtq.engines.profiles import compute_profile, needs_profile, onnx_input_shapes, opt_shapes
from trtq.errors import UsageError


def test_profile_from_dynamic_batch(tmp_path, graph_file):
    inputs = onnx_input_shapes(graph_file("qdq_conv", tmp_path / "m.onnx"))
    assert inputs == {"x": ["N", 3, 8, 8]}  # initializers are not inputs
    assert needs_profile(inputs)
    prof = compute_profile(inputs, (1, 8, 32))
    assert prof == {"x": ((1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8))}
    assert opt_shapes(prof) == {"x": (8, 3, 8, 8)}


def test_profile_static_model_keeps_its_shape(tmp_path, graph_file):
    inputs = onnx_input_shapes(graph_file("qdq_conv", tmp_path / "m.onnx", batch=2))
    assert not needs_profile(inputs)
    assert compute_profile(inputs, (1, 8, 32)) == {"x": ((2, 3, 8, 8),) * 3}


def test_profile_other_dynamic_axis_needs_shapes(tmp_path, graph_file):
    inputs = onnx_input_shapes(graph_file("qdq_conv", tmp_path / "m.onnx", height="H"))
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
