"""The fast path of sensitivity evaluation: suffix runs from cached checkpoints equal full runs of each variant."""

from __future__ import annotations

import numpy as np

from tests.sensitivity.fixtures import run_all
from trtq.placement import plan_qdq
from trtq.sensitivity.analysis import quantized_model, replan
from trtq.sensitivity.evaluate import VariantEvaluator


def test_fast_path_equals_running_each_variant_in_full(resnet):
    """Suffix evaluation from cached checkpoints gives the outputs of full runs (resnet18: residual Adds)."""
    fp32, amax, x = resnet
    x = x[:16]
    plan = plan_qdq(fp32)
    nodes = plan.quantized_nodes
    picked = [nodes[1], nodes[len(nodes) // 2], nodes[-2]]
    ev = VariantEvaluator({"input": x[:1]}, len(x), workers=2)
    int8, _ = quantized_model(fp32, plan, amax)
    ev.add_base("fp32", fp32)
    ev.add_base("int8", int8)
    models = {}
    for n in picked:
        models[("q", n)], _ = quantized_model(fp32, replan(fp32, None, [o for o in nodes if o != n]), amax)
        models[("f", n)], _ = quantized_model(fp32, replan(fp32, None, [n]), amax)
        ev.add_variant(("q", n), "fp32", models[("q", n)])
        suffix = ev.add_variant(("f", n), "int8", models[("f", n)])
        if n == nodes[-2]:
            assert suffix.nodes < suffix.total_nodes / 4  # a late layer re-runs only the end of the graph
    ev.run([({"input": x[:8]}, None), ({"input": x[8:]}, None)])
    np.testing.assert_array_equal(next(iter(ev.base_outputs("int8").values())), run_all(int8, x))
    for key, model in models.items():
        # Equal up to float rounding: ONNX Runtime may fuse a residual Add into a convolution differently
        # when the Add's other input arrives as a graph input of the suffix.
        np.testing.assert_allclose(
            next(iter(ev.outputs(key).values())), run_all(model, x), rtol=1e-5, atol=1e-6, err_msg=str(key)
        )
