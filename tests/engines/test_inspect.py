"""Reading a built engine (against the fake TensorRT): deserialization, I/O tensors with profiles, the inspector."""

from __future__ import annotations

import pytest

from trtq.engines.inspect import describe_io, deserialize, inspect_plan
from trtq.errors import TrtqError

PLAN = b'PLAN:{"inputs": [["x", [-1, 3, 8, 8]]]}'


@pytest.fixture
def trt(fake_tensorrt):
    """A fake TensorRT 11.4 whose builder config holds a profile for x (what a build leaves behind)."""
    fake = fake_tensorrt("11.4.0")
    config = fake.IBuilderConfig()
    profile = fake.IOptimizationProfile()
    profile.set_shape("x", (1, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8))
    config.add_optimization_profile(profile)
    fake.state.config = config
    return fake


def test_deserialize_keeps_the_runtime_and_refuses_a_foreign_plan(trt):
    holder = deserialize(PLAN, trt, host_code_allowed=True)
    assert holder.engine.num_io_tensors == 2 and holder.runtime is not None
    with pytest.raises(
        TrtqError, match="TensorRT 11.4.0 could not load the engine .*rebuild it on this machine"
    ):
        deserialize(b"from another GPU", trt)


def test_describe_io_gives_profiles_for_dynamic_inputs_only(trt):
    io = describe_io(deserialize(PLAN, trt).engine, trt)
    assert io[0] == {"name": "x", "mode": "input", "dtype": "float", "shape": [-1, 3, 8, 8],
                     "profiles": [[[1, 3, 8, 8], [4, 3, 8, 8], [16, 3, 8, 8]]]}  # fmt: skip
    assert io[1] == {"name": "logits", "mode": "output", "dtype": "float", "shape": [-1, 10]}
    static = describe_io(deserialize(b'PLAN:{"inputs": [["x", [2, 3, 8, 8]]]}', trt).engine, trt)
    assert "profiles" not in static[0]


def test_inspect_plan_sets_the_shapes_on_a_context_and_reads_json(trt):
    trt.state.inspector_json = {"Layers": [{"Name": "conv"}]}
    info, io = inspect_plan(PLAN, {"x": (4, 3, 8, 8), "not_an_input": (1,)})
    assert info == {"Layers": [{"Name": "conv"}]} and [t["name"] for t in io] == ["x", "logits"]
    assert ("set_input_shape", "x", (4, 3, 8, 8)) in trt.state.log and (
        "inspector",
        "JSON",
        True,
    ) in trt.state.log
    assert not any(e[:2] == ("set_input_shape", "not_an_input") for e in trt.state.log)


def test_inspect_plan_refusals(trt, monkeypatch):
    monkeypatch.setattr(trt.EngineInspector, "get_engine_information", lambda self, fmt: "Layers: none")
    with pytest.raises(TrtqError, match="the engine inspector returned text that is not JSON"):
        inspect_plan(PLAN, {})
    monkeypatch.setattr(trt.IExecutionContext, "set_input_shape", lambda self, name, shape: False)
    with pytest.raises(TrtqError, match=r"TensorRT refused shape \(4, 3, 8, 8\) for input 'x'"):
        inspect_plan(PLAN, {"x": (4, 3, 8, 8)})
    monkeypatch.setattr(trt.ICudaEngine, "create_execution_context", lambda self: None)
    with pytest.raises(TrtqError, match="could not create an execution context"):
        inspect_plan(PLAN, {})
