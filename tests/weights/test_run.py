"""`trtq.weights.run`: method names resolved in registry order, `weight_ptq`'s result, `apply_initializers`."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.weights.cases import conv_model, feeds, plan_of
from trtq.errors import UsageError
from trtq.weights import WEIGHT_METHODS
from trtq.weights.run import apply_initializers, resolve_weight_methods, weight_ptq


def test_registry_order_and_names():
    assert set(WEIGHT_METHODS.names()) >= {"clip", "adaround", "bias-correction"}
    assert resolve_weight_methods("bias-correction,clip") == ["clip", "bias-correction"]
    assert resolve_weight_methods(["adaround", "clip,adaround"]) == ["clip", "adaround"]  # each once
    assert resolve_weight_methods("none") == []
    with pytest.raises(UsageError, match="--weight-ptq"):
        resolve_weight_methods("clip,nope")


def _model(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    return conv_model(
        rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32), rng.normal(0, 1, 4).astype(np.float32)
    )


def test_no_method_changes_nothing_and_reads_no_data():
    model = _model()

    def no_data():
        raise AssertionError("read calibration data")
        yield  # pragma: no cover

    res = weight_ptq(model, plan_of(model), no_data(), [])
    assert res.methods == [] and res.initializers == {} and res.layers == {} and res.weight_amax == {}


def test_result_names_the_layers_and_gives_per_channel_amax():
    model = _model()
    x = np.random.default_rng(1).uniform(0, 1, (16, 3, 6, 6)).astype(np.float32)
    res = weight_ptq(model, plan_of(model), feeds(x, 8), "bias-correction", batches=2)
    assert res.methods == ["bias-correction"] and res.layers == {"w": ("conv", "b")}
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w"))
    np.testing.assert_array_equal(
        res.weight_amax["w"], np.abs(w).reshape(4, -1).max(axis=1)
    )  # max |w|: no clip
    assert set(res.initializers) == {"b"} and res.initializers["b"].shape == (4,)  # only the bias moved
    assert set(res.seconds) == {"statistics", "bias-correction"}
    assert res.to_json()["layers"] == 1


def test_apply_initializers_replaces_by_name_keeping_dtype_and_shape():
    model = _model()
    out = apply_initializers(model, {"b": np.arange(4, dtype=np.float64), "nope": np.zeros(1)})
    b = numpy_helper.to_array(next(t for t in out.graph.initializer if t.name == "b"))
    assert b.dtype == np.float32 and b.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert (
        numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "b")).tolist()
        != b.tolist()
    )
    assert [t.name for t in out.graph.initializer] == [t.name for t in model.graph.initializer]
