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


class _Recording:
    """Wraps an ONNX Runtime session; records the samples of every `run` call."""

    def __init__(self, session, calls: list[int]) -> None:
        self.session, self.calls = session, calls

    def __getattr__(self, name):
        return getattr(self.session, name)

    def run(self, names, feed):
        self.calls.append(int(next(iter(feed.values())).shape[0]))
        return self.session.run(names, feed)


def test_sessions_run_a_few_samples_a_call_with_the_outputs_of_whole_batches(resnet, monkeypatch):
    """A batch of 16 runs 3 samples a call (CALL_SAMPLES), without an arena, and gives the full runs' outputs."""
    from trtq.sensitivity import evaluate

    fp32, amax, x = resnet
    x = x[:16]
    plan = plan_qdq(fp32)
    node = plan.quantized_nodes[len(plan.quantized_nodes) // 2]
    int8, _ = quantized_model(fp32, plan, amax)
    variant, _ = quantized_model(fp32, replan(fp32, None, [node]), amax)
    calls: list[int] = []
    sessions = []
    make = evaluate.make_session

    def recording(model, threads=None):
        sessions.append(make(model, threads))
        return _Recording(sessions[-1], calls)

    monkeypatch.setattr(evaluate, "CALL_SAMPLES", 3)
    monkeypatch.setattr(evaluate, "make_session", recording)
    ev = VariantEvaluator({"input": x[:1]}, len(x), workers=1)
    ev.add_base("int8", int8)
    ev.add_variant("f", "int8", variant)
    calls.clear()  # the checkpoint sizes were measured on one sample
    ev.run([({"input": x}, None)])
    assert calls and max(calls) == 3 and sum(calls) == 2 * len(x)  # the base and the variant, 16 samples each
    assert all(not s.get_session_options().enable_cpu_mem_arena for s in sessions)
    np.testing.assert_array_equal(next(iter(ev.base_outputs("int8").values())), run_all(int8, x))
    np.testing.assert_allclose(
        next(iter(ev.outputs("f").values())), run_all(variant, x), rtol=1e-5, atol=1e-6
    )


def test_a_small_cache_runs_the_samples_in_chunks_with_the_same_outputs(resnet):
    """With room for a few samples of cached activations the evaluator works chunk by chunk; outputs unchanged."""
    fp32, amax, x = resnet
    x = x[:16]
    plan = plan_qdq(fp32)
    node = plan.quantized_nodes[-2]
    int8, _ = quantized_model(fp32, plan, amax)
    variant, _ = quantized_model(fp32, replan(fp32, None, [node]), amax)
    outs = {}
    for cache in (2 << 30, None):
        ev = VariantEvaluator({"input": x[:1]}, len(x), workers=1, cache_bytes=cache or 1)
        ev.add_base("int8", int8)
        suffix = ev.add_variant("f", "int8", variant)
        if cache is None:  # room for no checkpoint: the variant runs from the input, a batch at a time
            ev.cache_bytes = int(x[:1].nbytes)
        ev.run([({"input": x[i : i + 4]}, None) for i in range(0, len(x), 4)])
        outs[cache] = (next(iter(ev.outputs("f").values())), ev.chunks, suffix.nodes)
    (full, one_chunk, short), (chunked, chunks, long_) = outs[2 << 30], outs[None]
    assert one_chunk == 1 and chunks == 4 and long_ > short
    np.testing.assert_allclose(chunked, run_all(variant, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, run_all(variant, x), rtol=1e-5, atol=1e-6)
