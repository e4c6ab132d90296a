"""ONNX helpers: loading with one-line errors, every real input with its dtype, feed checks, Identity removal.

Most tests run on the zoo's `two_inputs` graph: features (batch, 4) float and token_ids (batch, 6) int64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtq.errors import UsageError
from trtq.export import (
    check_feed,
    check_input_shape,
    load_onnx,
    onnx_input_shape,
    onnx_inputs,
    onnx_opset,
    strip_identities,
)
from trtq.runners import OnnxRuntimeRunner

FEED = {
    "features": np.ones((3, 4), np.float32),
    "token_ids": np.arange(18, dtype=np.int64).reshape(3, 6),
}


def test_onnx_inputs_lists_every_real_input_with_dtype_and_dims(onnx_graph) -> None:
    model = onnx_graph("two_inputs")
    assert [(i.name, i.dtype, i.dims) for i in onnx_inputs(model)] == [
        ("features", np.dtype(np.float32), (None, 4)),
        ("token_ids", np.dtype(np.int64), (None, 6)),
    ]
    assert onnx_inputs(model)[0].symbols == ("batch", None)  # the dynamic axis keeps its name
    assert onnx_inputs(model)[1].to_json() == {"name": "token_ids", "dtype": "int64", "dims": [None, 6]}
    assert onnx_input_shape(model) == ("features", [None, 4])
    # the graph really takes these two feeds
    with OnnxRuntimeRunner(model) as r:
        np.testing.assert_allclose(r.infer(FEED)["output"][:, 0], 4 + FEED["token_ids"].mean(1))


def test_graph_without_real_inputs_and_untyped_inputs_are_usage_errors(onnx_graph) -> None:
    model = onnx_graph("two_inputs")
    del model.graph.input[:]
    with pytest.raises(UsageError, match="no inputs"):
        onnx_input_shape(model)
    model = onnx_graph("two_inputs")
    model.graph.input[2].type.tensor_type.elem_type = TensorProto.STRING
    with pytest.raises(UsageError, match="'token_ids' has element type STRING"):
        onnx_inputs(model)


def test_check_input_shape_first_or_named_input(onnx_graph) -> None:
    model = onnx_graph("two_inputs")
    check_input_shape(model, (7, 4))
    check_input_shape(model, (7, 6), name="token_ids")
    with pytest.raises(UsageError, match=r"model input 'features' expects \(4,\)"):
        check_input_shape(model, (7, 6))
    with pytest.raises(UsageError, match="--calib-data has shape .* 'token_ids' has rank 2"):
        check_input_shape(model, (7, 6, 1), "--calib-data", name="token_ids")
    with pytest.raises(UsageError, match="no input 'mask'"):
        check_input_shape(model, (7, 6), name="mask")


def test_check_input_shape_hints_the_option_to_set() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "img",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, 32, 32])],
    )
    model = helper.make_model(graph)
    with pytest.raises(UsageError, match="set --channels"):
        check_input_shape(model, (2, 1, 32, 32))
    with pytest.raises(UsageError, match="set --size"):
        check_input_shape(model, (2, 3, 16, 32))


def test_check_feed_names_the_missing_unknown_or_mistyped_input(onnx_graph) -> None:
    model = onnx_graph("two_inputs")
    check_feed(model, FEED)
    with pytest.raises(UsageError, match="'token_ids' is not in data"):
        check_feed(model, {"features": FEED["features"]})
    with pytest.raises(UsageError, match="has input 'mask'"):
        check_feed(model, {**FEED, "mask": FEED["token_ids"]})
    with pytest.raises(UsageError, match="'token_ids' is int64 but data gives float32"):
        check_feed(model, {**FEED, "token_ids": FEED["token_ids"].astype(np.float32)})
    with pytest.raises(UsageError, match="data input 'features' gives samples of shape"):
        check_feed(model, {**FEED, "features": np.ones((3, 5), np.float32)})


def test_load_onnx_errors_name_the_file(tmp_path: Path, onnx_graph) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(UsageError, match="bad.onnx is not a readable ONNX file"):
        load_onnx(bad)
    broken = onnx_graph("two_inputs")
    broken.graph.node[0].input[1] = "nowhere"
    onnx.save(broken, str(tmp_path / "broken.onnx"))
    with pytest.raises(UsageError, match="broken.onnx fails the ONNX checker"):
        load_onnx(tmp_path / "broken.onnx")
    onnx.save(onnx_graph("two_inputs"), str(tmp_path / "ok.onnx"))
    assert onnx_opset(load_onnx(tmp_path / "ok.onnx")) == 17


def test_strip_identities_bypasses_weight_identities_and_keeps_output_ones() -> None:
    w = numpy_helper.from_array(np.full((2, 2), 2.0, np.float32), "w")
    nodes = [
        helper.make_node("Identity", ["w"], ["w_id"]),
        helper.make_node("Identity", ["w_id"], ["w_id2"]),
        helper.make_node("MatMul", ["input", "w_id2"], ["mm"]),
        helper.make_node("Identity", ["mm"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ids",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])],
        initializer=[w],
    )
    model = strip_identities(helper.make_model(graph))
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Identity"]
    assert list(model.graph.node[0].input) == ["input", "w"]
    onnx.checker.check_model(model)
    with OnnxRuntimeRunner(model) as r:
        np.testing.assert_allclose(r.infer({"input": np.ones((1, 2), np.float32)})["output"], [[4.0, 4.0]])


def test_a_custom_op_onnx_runtime_cannot_run_is_refused_naming_the_node_and_op():
    from onnx import TensorProto, helper

    from trtq.errors import TrtqError
    from trtq.export.onnx_model import check_onnxruntime_ops

    def model(domain: str, op: str):
        node = helper.make_node(op, ["x"], ["y"], domain=domain, name="special")
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])  # fmt: skip
        return helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)]
        )

    with pytest.raises(
        TrtqError,
        match=r"node 'special' of m.onnx is the custom op com.example:MySpecialOp, which ONNX Runtime has no kernel for",
    ):
        check_onnxruntime_ops(model("com.example", "MySpecialOp"), "m.onnx")
    check_onnxruntime_ops(model("com.microsoft", "Gelu"), "m.onnx")  # ONNX Runtime runs it: the build goes on


def test_an_empty_onnx_file_is_named_as_empty(tmp_path):
    from trtq.calibration import load_model
    from trtq.export import load_onnx

    (tmp_path / "e.onnx").write_bytes(b"")
    for load in (load_onnx, load_model):
        with pytest.raises(UsageError, match=r"e\.onnx is empty \(0 bytes\)"):
            load(tmp_path / "e.onnx")
