"""`trtq.finetune.fold`: BatchNorm folded into the convolution exactly, also through a per-channel Q/DQ weight."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from tests.finetune.helpers import conv_bn_graph, run_graph
from trtq.finetune.fold import fold_batchnorm


@pytest.mark.parametrize("quantized_weight", [False, True])
def test_fold_batchnorm_is_exact_with_and_without_weight_qdq(quantized_weight: bool) -> None:
    from trtq.qdq import weight_scales

    model, x = conv_bn_graph(quantized_weight)
    folded, n = fold_batchnorm(model)
    assert n == 1 and "BatchNormalization" not in {node.op_type for node in folded.graph.node}
    # float32 rounding of the fold: measured max |diff| 3.8e-6 (plain) and 2.9e-6 (Q/DQ) on outputs up to 18,
    # i.e. at most 6% of what rtol=atol=1e-5 allows
    np.testing.assert_allclose(run_graph(folded, x), run_graph(model, x), rtol=1e-5, atol=1e-5)
    if quantized_weight:
        # the rescaled weight scales are what PTQ computes on the folded weight (zero gamma: floor scale)
        inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
        q = next(node for node in folded.graph.node if node.op_type == "QuantizeLinear")
        np.testing.assert_allclose(inits[q.input[1]], weight_scales(inits[q.input[0]], 0), rtol=1e-6)


def test_batchnorm_is_left_where_it_cannot_fold() -> None:
    """A per-tensor weight scale cannot be rescaled per channel: the BatchNorm stays, the graph unchanged."""
    model, x = conv_bn_graph(True)
    inits = {t.name: t for t in model.graph.initializer}
    inits["ws"].CopyFrom(numpy_helper.from_array(np.array(0.05, np.float32), "ws"))
    inits["wz"].CopyFrom(numpy_helper.from_array(np.array(0, np.int8), "wz"))
    folded, n = fold_batchnorm(model)
    assert n == 0 and "BatchNormalization" in {node.op_type for node in folded.graph.node}
    np.testing.assert_array_equal(run_graph(folded, x), run_graph(model, x))
