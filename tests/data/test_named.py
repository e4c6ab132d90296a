"""Data with one array per model input: named .npz, shards, dicts; checked against the model before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtq.data import check_fits, conform, load_data
from trtq.errors import UsageError
from trtq.export import onnx_inputs


def two_input_model(path: Path | None = None) -> onnx.ModelProto:
    """Token ids (int64, [batch, sequence]) through an embedding Gather, plus a float mask of the same length,
    into a MatMul: the shape of a tiny encoder."""
    rng = np.random.default_rng(0)
    emb = numpy_helper.from_array(rng.standard_normal((50, 16)).astype(np.float32), "emb")
    w = numpy_helper.from_array(rng.standard_normal((16, 24)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["h"], name="embed"),
        helper.make_node("Cast", ["attention_mask"], ["m"], name="mask_float", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axes"], ["m3"], name="mask_3d"),
        helper.make_node("Mul", ["h", "m3"], ["hm"], name="masked"),
        helper.make_node("MatMul", ["hm", "w"], ["y"], name="proj"),
    ]
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    graph = helper.make_graph(
        nodes, "enc",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", 24])], [emb, w, axes],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if path is not None:
        onnx.save(model, str(path))
    return model


def _encoder_npz(path: Path, n: int = 12, seq: int = 7, **override: np.ndarray) -> Path:
    rng = np.random.default_rng(1)
    arrays = {
        "input_ids": rng.integers(0, 50, (n, seq)).astype(np.int64),
        "attention_mask": (rng.random((n, seq)) > 0.2).astype(np.int64),
        "labels": rng.integers(0, 3, n),
    }
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def test_a_named_npz_feeds_every_input_by_name_and_keeps_integers(tmp_path: Path) -> None:
    model = two_input_model()
    ds = load_data(_encoder_npz(tmp_path / "d.npz"), input_names=["input_ids", "attention_mask"])
    assert ds.is_named and ds.input_names == ["input_ids", "attention_mask"] and ds.labels is not None
    feed = next(ds.feeds(["attention_mask", "input_ids"], 5))
    assert set(feed) == {"input_ids", "attention_mask"} and feed["input_ids"].dtype == np.int64
    check_fits(ds, onnx_inputs(model), "--calib-data")  # fits: no error
    import onnxruntime as ort

    out = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    assert out.shape == (5, 7, 24)


def test_shards_dicts_and_the_legacy_layout(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    _encoder_npz(shards / "a.npz", n=4)
    _encoder_npz(shards / "b.npz", n=6)
    ds = load_data(shards)
    assert ds.is_named and len(ds) == 10 and len(ds.labels) == 10
    from_dicts = load_data(
        [{"input_ids": np.zeros((2, 3), np.int64), "attention_mask": np.ones((2, 3), np.int64)}] * 3
    )
    assert from_dicts.is_named and len(from_dicts) == 6
    tuples = load_data(
        [(np.zeros((2, 3), np.int64), np.ones((2, 3), np.int64))], input_names=["input_ids", "attention_mask"]
    )
    assert tuples.input_names == ["input_ids", "attention_mask"]
    # an image array and its labels stay one unnamed input, as before
    np.savez(tmp_path / "img.npz", x=np.zeros((3, 1, 8, 8), np.float32), y=np.arange(3))
    legacy = load_data(tmp_path / "img.npz", input_names=["input"])
    assert not legacy.is_named and list(legacy.labels) == [0, 1, 2]
    # a model whose two inputs really are called x and y gets both as inputs
    both = load_data(tmp_path / "img.npz", input_names=["x", "y"])
    assert both.is_named and both.input_names == ["x", "y"] and both.labels is None


@pytest.mark.parametrize(
    "override, match",
    [
        ({"attention_mask": None}, "no array for model input 'attention_mask'"),
        (
            {"input_ids": np.zeros((12, 7), np.float32)},
            "input 'input_ids' holds float32 values but the model takes int64",
        ),
        (
            {"attention_mask": np.ones((12, 9), np.int64)},
            "'attention_mask' has 9 in axis 1 but 'input_ids' has 7",
        ),
        (
            {"token_type_ids": np.zeros((12, 7), np.int64)},
            "array 'token_type_ids', which no model input takes",
        ),
        ({"input_ids": np.zeros((12, 7, 1), np.int64)}, "rank 3"),
    ],
)
def test_data_that_cannot_feed_the_model_is_refused_naming_the_input(
    tmp_path: Path, override: dict, match: str
) -> None:
    arrays = {k: v for k, v in override.items() if v is not None}
    path = _encoder_npz(tmp_path / "d.npz", **arrays)
    if any(v is None for v in override.values()):
        data = dict(np.load(path))
        for k, v in override.items():
            if v is None:
                del data[k]
        np.savez(path, **data)
    model = two_input_model()
    with pytest.raises(UsageError, match=match):
        ds = load_data(path, input_names=[i.name for i in onnx_inputs(model)])
        check_fits(ds, onnx_inputs(model), "--calib-data")


def test_int32_ids_are_cast_exactly_to_the_model_type(tmp_path: Path) -> None:
    model = two_input_model()
    path = _encoder_npz(tmp_path / "d.npz", input_ids=np.arange(12 * 7).reshape(12, 7).astype(np.int32) % 50)
    ds = conform(load_data(path, input_names=["input_ids", "attention_mask"]), onnx_inputs(model))
    assert ds.inputs["input_ids"].dtype == np.int64


def test_trtq_build_runs_a_two_input_model_from_a_named_npz(tmp_path: Path) -> None:
    from trtq.pipeline import build

    two_input_model(tmp_path / "enc.onnx")
    path = _encoder_npz(tmp_path / "d.npz", n=24)
    res = build(str(tmp_path / "enc.onnx"), calib_data=str(path), out=tmp_path / "run", calib="minmax",
                build_engine=False)  # fmt: skip
    int8 = onnx.load(str(res.int8_onnx))
    proj = next(n for n in int8.graph.node if n.name == "proj")
    assert all(
        i.endswith("_DequantizeLinear_Output") for i in proj.input
    )  # the MatMul reads DQ on both inputs
    assert res.validation.samples == 24 and res.validation.value("int8", "cosine") > 0.99
