"""`trtq.finetune.passes`: one Q/DQ pair per tensor, no no-op Casts, no re-quantization, pairs where the plan
wants them."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.finetune.helpers import graph
from trtq.finetune.layout import qdq_layout
from trtq.finetune.passes import collapse_requantization, drop_noop_casts, merge_duplicate_qdq
from trtq.runners import OnnxRuntimeRunner


def test_duplicate_pairs_merge_and_noop_casts_drop() -> None:
    s = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [helper.make_node("Cast", ["x"], ["xc"], "cast", to=TensorProto.FLOAT)]
    for tag in ("a", "b"):
        nodes += [
            helper.make_node("QuantizeLinear", ["xc", "s", "z"], [f"q{tag}"], f"Q{tag}"),
            helper.make_node("DequantizeLinear", [f"q{tag}", "s", "z"], [f"d{tag}"], f"DQ{tag}"),
            helper.make_node("Relu", [f"d{tag}"], [f"y{tag}"], f"relu_{tag}"),
        ]
    model = graph(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(f"y{t}", TensorProto.FLOAT, [2, 3]) for t in "ab"], [s, z],
    )  # fmt: skip
    no_cast, dropped = drop_noop_casts(model)
    merged, n = merge_duplicate_qdq(no_cast)
    assert dropped == 1 and n == 1
    assert sum(node.op_type == "QuantizeLinear" for node in merged.graph.node) == 1
    assert qdq_layout(merged).activations == {"x": ["relu_a", "relu_b"]}
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    with OnnxRuntimeRunner(model) as a, OnnxRuntimeRunner(merged) as b:
        ra, rb = a.infer({"x": x}), b.infer({"x": x})
    np.testing.assert_array_equal(ra["ya"], rb["ya"])
    np.testing.assert_array_equal(ra["yb"], rb["yb"])


def test_requantization_with_the_same_scale_collapses_and_another_scale_stays() -> None:
    """Q -> DQ -> Q -> DQ with one scale is the identity on the int8 grid; with two scales it is not."""

    def chain(second: float):
        inits = [
            numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("s1", 0.05), ("s2", second))
        ]
        inits.append(numpy_helper.from_array(np.array(0, np.int8), "z"))
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "s1", "z"], ["q1"], "Q1"),
            helper.make_node("DequantizeLinear", ["q1", "s1", "z"], ["d1"], "DQ1"),
            helper.make_node("QuantizeLinear", ["d1", "s2", "z"], ["q2"], "Q2"),
            helper.make_node("DequantizeLinear", ["q2", "s2", "z"], ["d2"], "DQ2"),
            helper.make_node("Relu", ["d2"], ["y"], "relu"),
        ]
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [8]) for n in ("x", "y")]
        return graph(nodes, io[:1], io[1:], inits)

    x = np.linspace(-3, 3, 8).astype(np.float32)
    same, n_same = collapse_requantization(chain(0.05))
    other, n_other = collapse_requantization(chain(0.07))
    assert n_same == 1 and sum(n.op_type == "QuantizeLinear" for n in same.graph.node) == 1
    assert n_other == 0 and sum(n.op_type == "QuantizeLinear" for n in other.graph.node) == 2
    with OnnxRuntimeRunner(chain(0.05)) as a, OnnxRuntimeRunner(same) as b:
        np.testing.assert_array_equal(a.infer({"x": x})["y"], b.infer({"x": x})["y"])
