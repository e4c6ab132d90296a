"""The zoo itself: every entry documented, deterministic, and a valid model that runs (so tests can trust it)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from tests import zoo
from tests.zoo.registry import model
from trtq.runners import OnnxRuntimeRunner

#: the size given to dynamic axes when a graph is run
DYNAMIC = 2


def _feed(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {i.name for i in m.graph.initializer}
    rng = np.random.default_rng(0)
    feed = {}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.dim_value else DYNAMIC for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            feed[vi.name] = rng.integers(0, 5, dims).astype(np.int64)
        else:
            feed[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feed


@pytest.mark.parametrize("name", list(zoo.GRAPHS))
def test_every_graph_passes_the_checker_runs_and_is_built_the_same_each_time(name):
    m = zoo.onnx_graph(name)
    onnx.checker.check_model(m, full_check=True)
    assert zoo.GRAPHS[name].doc
    again = zoo.GRAPHS[name].build()  # bypass the cache: the builder itself is deterministic
    assert again.SerializeToString(deterministic=True) == m.SerializeToString(deterministic=True)
    with OnnxRuntimeRunner(m) as r:
        outputs = r.infer(_feed(m))
    assert outputs and all(np.isfinite(v).all() for v in outputs.values())


def test_graphs_are_copies_callers_may_change():
    a = zoo.onnx_graph("conv_relu")
    a.graph.node.pop()
    assert len(zoo.onnx_graph("conv_relu").graph.node) == 2


@pytest.mark.parametrize("name", ["tiny_cnn", "two_convs", "digits_net", "features_and_tokens"])
def test_small_models_are_seeded_and_in_eval_mode(name):
    a, b = zoo.make_model(name), zoo.make_model(name)
    assert not a.training and zoo.MODELS[name].doc
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    if name == "tiny_cnn":
        other = zoo.make_model(name, seed=1)
        assert not torch.equal(next(iter(other.state_dict().values())), next(iter(a.state_dict().values())))


def test_the_registry_refuses_duplicates_undocumented_builders_and_unknown_names():
    with pytest.raises(ValueError, match="zoo model 'tiny_cnn' is registered twice"):
        model("tiny_cnn")(lambda: None)
    with pytest.raises(ValueError, match="needs a docstring"):
        model("undocumented")(lambda: None)
    with pytest.raises(KeyError, match="no zoo graph 'resnet'; the zoo has tiny_cnn, conv_relu"):
        zoo.onnx_graph("resnet")
    assert "residual_block" in zoo.describe() and "digits_net" in zoo.describe()


def test_digits_are_the_demos_data(digits):
    assert (
        digits.images.shape == (1797, 8, 8) and digits.images.dtype == np.uint8 and digits.images.max() == 255
    )
    x = digits.x(4)
    assert x.shape == (4, 1, 8, 8) and x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
    assert np.bincount(digits.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
