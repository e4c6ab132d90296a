"""The streaming calibration pass: one ONNX Runtime run per batch feeds every method; exact against numpy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.calibration.cases import activations as _acts
from tests.calibration.cases import batches as _batches
from trtq.calibration import MIN_AMAX, calibrate, make_calibrators, resolve_methods
from trtq.calibration.run import load_model
from trtq.errors import TrtqError, UsageError
from trtq.formats import INT8
from trtq.progress import set_quiet

set_quiet(True)


def _reference_activations(model: onnx.ModelProto, batches, names) -> dict[str, np.ndarray]:
    """All activations of all batches, concatenated (the non-streaming reference)."""
    import onnxruntime as ort

    from trtq.runners.onnxrt import expose_tensors

    inner = [n for n in names if n != "x"]
    sess = ort.InferenceSession(
        expose_tensors(model, inner).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    got: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for b in batches:
        outs = dict(zip(inner, sess.run(inner, b)))
        outs["x"] = b["x"]
        for n in names:
            got[n].append(outs[n].ravel())
    return {n: np.concatenate(v) for n, v in got.items()}


def test_minmax_is_exact_max_abs_of_every_activation(convnet):
    batches = _batches()
    names = _acts(convnet)
    cal = calibrate(convnet, batches, names, ["minmax"])
    ref = _reference_activations(convnet, batches, names)
    for n in names:
        assert cal.amax_for("minmax")[n] == float(np.abs(ref[n]).max())
        assert cal.stats[n]["count"] == ref[n].size
        assert cal.stats[n]["mean"] == pytest.approx(float(ref[n].mean()), rel=1e-5, abs=1e-6)
        assert cal.stats[n]["std"] == pytest.approx(float(ref[n].std()), rel=1e-4)


def test_all_methods_come_from_one_pass_and_are_ordered_sensibly(convnet, monkeypatch):
    from trtq.runners import onnxrt

    calls = []
    real = onnxrt.OnnxRuntimeRunner.infer_impl
    monkeypatch.setattr(
        onnxrt.OnnxRuntimeRunner,
        "infer_impl",
        lambda self, feed: calls.append(len(next(iter(feed.values())))) or real(self, feed),
    )
    batches = _batches()
    cal = calibrate(convnet, batches, _acts(convnet), ["all"])
    # one pass for all four methods: every sample is inferred once (the first batch is measured on one sample)
    assert sum(calls) == sum(len(b["x"]) for b in batches) and len(calls) == len(batches) + 1
    assert cal.methods == ["entropy", "minmax", "percentile", "mse"]
    for n in _acts(convnet):
        mx = cal.amax["minmax"][n]
        for m in ("entropy", "percentile", "mse"):
            assert 0 < cal.amax[m][n] <= mx


def test_max_alias_and_default_method(convnet):
    cal = calibrate(convnet, _batches(2), ["x"], ["max", "entropy"])
    assert cal.methods == ["minmax", "entropy"] and cal.method == "minmax"
    assert cal.amax_for() == cal.amax_for("max")
    with pytest.raises(UsageError, match="mse"):
        cal.amax_for("mse")


def test_result_is_independent_of_batch_size_and_order(convnet):
    names = _acts(convnet)
    big = _batches(n=4, bs=6, seed=3)
    x = np.concatenate([b["x"] for b in big])
    small = [{"x": x[i : i + 2]} for i in range(0, len(x), 2)][::-1]  # other size, reversed order
    a = calibrate(convnet, big, names, ["all"])
    b = calibrate(convnet, small, names, ["all"])
    for m in a.methods:
        assert a.amax[m] == pytest.approx(b.amax[m], rel=1e-6)


def test_nan_activation_names_tensor_and_batch(convnet):
    batches = _batches(3)
    batches[2]["x"][0, 0, 0, 0] = np.nan
    with pytest.raises(TrtqError, match=r"'x'.*batch 2"):
        calibrate(convnet, batches, ["x"], ["minmax"])


def test_inf_inside_the_network_is_reported(convnet):
    batches = _batches(2)
    batches[1]["x"][0, 0, 5, 5] = np.inf  # becomes Inf/NaN inside the first convolution
    relu = _acts(convnet)[1]
    with pytest.raises(TrtqError, match=r"NaN or Inf in calibration batch 1"):
        calibrate(convnet, batches, [relu], ["entropy"])


def test_an_optional_tensor_holding_inf_is_dropped_with_a_note_and_the_others_kept():
    from onnx import TensorProto, helper

    # r = Relu(x) is finite; m = Log(r) is -inf wherever r is 0 (like an attention mask's -inf)
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Log", ["r"], ["m"]),
         helper.make_node("Add", ["r", "r"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
    )  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    batches = [{"x": np.random.default_rng(i).standard_normal((4, 8)).astype(np.float32)} for i in range(2)]
    cal = calibrate(model, batches, ["r", "m"], ["minmax"], optional=["m"])
    assert list(cal.amax["minmax"]) == ["r"] and "m" not in cal.stats
    assert cal.amax["minmax"]["r"] == pytest.approx(max(float(b["x"].max()) for b in batches))
    assert any("leaves out 'm': it holds NaN or Inf (batch 0)" in w for w in cal.warnings)
    with pytest.raises(TrtqError, match=r"'m'.*batch 0"):  # required: still an error
        calibrate(model, batches, ["r", "m"], ["minmax"])


def test_dead_tensor_is_clamped_with_a_warning(convnet):
    batches = [{"x": np.zeros((2, 3, 16, 16), np.float32)} for _ in range(2)]
    cal = calibrate(convnet, batches, ["x"], ["all"])
    for m in cal.methods:
        assert cal.amax[m]["x"] == MIN_AMAX
    assert len(cal.warnings) == 1 and "'x'" in cal.warnings[0]


def test_bad_inputs_are_one_line_usage_errors(convnet, tmp_path):
    with pytest.raises(UsageError, match="nope"):
        calibrate(convnet, _batches(1), ["nope"])
    with pytest.raises(UsageError, match="weight"):
        calibrate(convnet, _batches(1), ["0.weight"])
    with pytest.raises(UsageError, match="'kl' is not a registered calibration method"):
        calibrate(convnet, _batches(1), ["x"], ["kl"])
    with pytest.raises(UsageError, match="no input 'x'"):
        calibrate(convnet, [{"image": np.zeros((1, 3, 16, 16), np.float32)}], ["x"])
    with pytest.raises(UsageError, match="no batches"):
        calibrate(convnet, [], ["x"])
    with pytest.raises(UsageError, match="does not exist"):
        calibrate(tmp_path / "missing.onnx", _batches(1), ["x"])


def test_num_batches_limits_the_pass(convnet):
    cal = calibrate(convnet, iter(_batches(5)), ["x"], ["minmax"], num_batches=2)
    assert cal.settings["batches"] == 2
    assert cal.stats["x"]["count"] == 2 * 4 * 3 * 16 * 16


def test_feeds_are_cast_to_the_input_dtype_and_extra_keys_ignored(convnet):
    batches = _batches(2)
    as64 = [{"x": b["x"].astype(np.float64), "label": np.zeros(4, np.int64)} for b in batches]
    a = calibrate(convnet, batches, _acts(convnet), ["minmax"])
    b = calibrate(convnet, as64, _acts(convnet), ["minmax"])
    assert a.amax == b.amax


def test_methods_resolve_aliases_lists_and_all_in_registry_order():
    assert resolve_methods("all") == ["entropy", "minmax", "percentile", "mse"]
    assert resolve_methods(["max, mse", "minmax"]) == ["minmax", "mse"]  # aliases, commas, no duplicates
    with pytest.raises(UsageError, match="'kl' is not a registered calibration method; .*, or all"):
        resolve_methods("entropy,kl")
    with pytest.raises(UsageError, match="no calibration method given"):
        resolve_methods(" , ")


def test_parameters_reach_the_methods_that_declare_them(convnet):
    cals = make_calibrators(["percentile", "mse", "minmax"], {"percentile": "99.9", "num_bins": 1024}, INT8)
    assert cals["percentile"].percentile == 99.9 and cals["mse"].num_bins == 1024
    assert len({id(c.collector) for c in cals.values()}) == 1  # one shared pass
    assert cals["minmax"].collector.keep_histograms  # some method needs histograms
    assert not make_calibrators(["minmax"], {}, INT8)["minmax"].collector.keep_histograms
    cal = calibrate(convnet, _batches(2), ["x"], ["percentile"], params={"percentile": 100.0})
    assert cal.settings["params"] == {"percentile": {"percentile": 100.0}}
    assert cal.amax_for()["x"] == max(float(np.abs(b["x"]).max()) for b in _batches(2))
    with pytest.raises(UsageError, match="--calib-param percentile=200: must be <= 100"):
        calibrate(convnet, _batches(1), ["x"], ["percentile"], percentile=200)


def test_statistics_per_tensor(convnet):
    cal = calibrate(convnet, _batches(3), ["x"], ["percentile"])  # a method that keeps histograms
    x = np.concatenate([b["x"] for b in _batches(3)]).ravel()
    stats = cal.stats["x"]
    assert (stats["min"], stats["max"], stats["absmax"]) == (
        float(x.min()),
        float(x.max()),
        float(np.abs(x).max()),
    )
    assert stats["zero_fraction"] == 0.0 and stats["histogram"]["bins"] > 1000
    assert stats["histogram"]["abs_quantiles"]["0.5"] == pytest.approx(float(np.median(np.abs(x))), rel=2e-3)


def test_load_model_refuses_missing_and_unreadable_files(tmp_path, convnet):
    assert load_model(convnet) is convnet
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(UsageError, match="bad.onnx is not a readable ONNX file"):
        load_model(tmp_path / "bad.onnx")
    onnx.save(convnet, str(tmp_path / "m.onnx"))
    assert load_model(tmp_path / "m.onnx") == convnet
    assert MIN_AMAX == INT8.min_amax


def _traced_peak(fn) -> int:
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_calibration_memory_is_flat_in_the_number_of_samples_and_in_the_batch_size(convnet, monkeypatch):
    """The pass holds histograms and a few samples' activations, never the data.

    Python side (tracemalloc): 4x the samples in batches of 4 leaves the traced peak within 1.5x (measured 1.0x).
    ONNX Runtime side (its output buffers are not traced): the bytes one inference returns stay within the
    budget whatever the batch size (unsplit, one batch of 256 returns 64x the budget)."""
    from trtq.runners import onnxrt

    names = _acts(convnet)
    with onnxrt.OnnxRuntimeRunner(convnet, extra_outputs=[n for n in names if n != "x"]) as r:
        per_sample = sum(v.nbytes for v in r.infer(_batches(1, 1)[0]).values())
    budget = 4 * per_sample

    def run(n_batches: int, bs: int) -> None:
        calibrate(convnet, _batches(n_batches, bs), names, ["all"], activation_budget=budget)

    small, many = _traced_peak(lambda: run(4, 4)), _traced_peak(lambda: run(16, 4))
    assert many / small < 1.5, (small, many)
    returned: list[int] = []
    real = onnxrt.OnnxRuntimeRunner.infer_impl

    def recording(self, feed):
        out = real(self, feed)
        returned.append(sum(v.nbytes for v in out.values()))
        return out

    monkeypatch.setattr(onnxrt.OnnxRuntimeRunner, "infer_impl", recording)
    run(1, 256)
    assert max(returned) <= budget and sum(returned) == 256 * per_sample


def test_the_split_into_parts_changes_no_threshold(convnet):
    names = _acts(convnet)
    whole = calibrate(convnet, _batches(3, 8), names, ["all"], activation_budget=0)
    parts = calibrate(convnet, _batches(3, 8), names, ["all"], activation_budget=1)  # one sample per call
    assert parts.amax == whole.amax
    assert all(parts.histograms[t].fine.tolist() == whole.histograms[t].fine.tolist() for t in names)


@pytest.mark.parametrize("budget", [0, 1])  # whole batches; one sample a call (the parts joined per batch)
def test_outputs_are_the_fp32_models_graph_outputs_per_batch(convnet, budget):
    """`outputs=`: the graph outputs the calibration inference computes anyway, per batch, as a plain FP32 session
    (no tensor exposed) gives them."""
    import onnxruntime as ort

    batches = _batches(3, 8)
    got: list[dict[str, np.ndarray]] = []
    plain = calibrate(convnet, batches, _acts(convnet), ["minmax"], activation_budget=budget)
    cal = calibrate(convnet, batches, _acts(convnet), ["minmax"], activation_budget=budget, outputs=got)
    assert cal.amax == plain.amax  # asking for the outputs changes no threshold
    sess = ort.InferenceSession(convnet.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in convnet.graph.output]
    assert len(got) == len(batches) and all(list(g) == names for g in got)
    for g, b in zip(got, batches):
        want = dict(zip(names, sess.run(names, {"x": b["x"]})))
        for n in names:
            assert g[n].shape == want[n].shape
            np.testing.assert_allclose(g[n], want[n], rtol=1e-5, atol=1e-6)


def test_ahead_keeps_the_order_makes_one_item_ahead_and_reraises():
    """`ahead`: the calibration pass's next ONNX Runtime call runs while the current part is folded; no more than the
    caller's item and the next one exist at a time; an error of the producer reaches the caller in order."""
    import threading

    from trtq.calibration.run import ahead

    made: list[int] = []
    threads: set[str] = set()

    def produce(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise TrtqError(f"batch {i}")
            threads.add(threading.current_thread().name)
            made.append(i)
            yield i

    got = []
    for i in ahead(produce(6)):
        assert len(made) - len(got) <= 2  # this item and at most the next
        got.append(i)
    assert got == list(range(6)) and threads == {"trtq-ahead"}
    seen = []
    with pytest.raises(TrtqError, match="batch 3"):
        for i in ahead(produce(6, fail_at=3)):
            seen.append(i)
    assert seen == [0, 1, 2]
    made.clear()
    stream = ahead(produce(100))
    assert next(stream) == 0
    stream.close()  # the caller stops early: the producer stops too
    assert len(made) <= 2
