"""The streaming calibration pass: one ONNX Runtime run per batch feeds every method; artifacts round-trip."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
import torch

from trtq.calibration import MIN_AMAX, Calibration, calibrate, choose_method, plot_thresholds
from trtq.errors import TrtqError, UsageError
from trtq.progress import set_quiet

set_quiet(True)


def _small_convnet() -> onnx.ModelProto:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    ).eval()
    f = io.BytesIO()
    torch.onnx.export(
        net,
        torch.randn(1, 3, 16, 16),
        f,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
        dynamo=False,
        opset_version=17,
    )
    return onnx.load_from_string(f.getvalue())


@pytest.fixture(scope="module")
def convnet() -> onnx.ModelProto:
    return _small_convnet()


def _acts(model: onnx.ModelProto) -> list[str]:
    return ["x"] + [n.output[0] for n in model.graph.node if n.op_type in ("Relu", "Flatten")]


def _batches(n: int = 6, bs: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((bs, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


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
        onnxrt.OnnxRuntimeRunner, "infer_impl", lambda self, feed: calls.append(1) or real(self, feed)
    )
    batches = _batches()
    cal = calibrate(convnet, batches, _acts(convnet), ["all"])
    assert len(calls) == len(batches)  # one inference per batch for all four methods
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


def test_save_load_round_trip_is_exact_and_deterministic(convnet, tmp_path):
    cal = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    cal.save(p1)
    again = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    again.save(p2)
    assert p1.read_bytes() == p2.read_bytes()
    back = Calibration.load(p1, expect_tensors=_acts(convnet))
    assert back.amax == cal.amax and back.methods == cal.methods and back.method == cal.method
    assert back.stats == json.loads(json.dumps(cal.stats))


def test_an_infinite_fp16_range_survives_the_file(convnet, tmp_path):
    """A transformer's -inf attention mask has an infinite range; strict JSON writes it as null, and reading the
    file back gives inf (the typed graph then keeps that node FP32), not a 'malformed file' error."""
    cal = calibrate(convnet, _batches(2), _acts(convnet), ["minmax"])
    cal.ranges = {"mask": float("inf"), "x": 3.0}
    cal.save(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["ranges"]["mask"] is None
    back = Calibration.load(tmp_path / "c.json")
    assert back.ranges == {"mask": float("inf"), "x": 3.0}


def test_load_refuses_corrupt_and_mismatched_files(convnet, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        Calibration.load(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(UsageError, match="not a trtq calibration file"):
        Calibration.load(bad)
    cal = calibrate(convnet, _batches(1), ["x"], ["minmax"])
    good = cal.save(tmp_path / "good.json")
    with pytest.raises(UsageError, match="another model"):
        Calibration.load(good, expect_tensors=["x", "/1/Relu_output_0"])
    doc = json.loads(good.read_text())
    doc["tensors"]["x"]["amax"]["minmax"] = -1
    bad.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="malformed"):
        Calibration.load(bad)


def _insert_qdq(model: onnx.ModelProto, amax: dict[str, float]) -> onnx.ModelProto:
    """A minimal independent Q/DQ inserter: per-tensor int8 Q/DQ on each named activation."""
    from onnx import TensorProto, helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for t, a in amax.items():
        s, z = f"{t}_s", f"{t}_z"
        g.initializer.extend(
            [
                helper.make_tensor(s, TensorProto.FLOAT, [], [a / 127.0]),
                helper.make_tensor(z, TensorProto.INT8, [], [0]),
            ]
        )
        for n in g.node:
            for i, name in enumerate(n.input):
                if name == t:
                    n.input[i] = f"{t}_dq"
        g.node.extend(
            [
                helper.make_node("QuantizeLinear", [t, s, z], [f"{t}_q"]),
                helper.make_node("DequantizeLinear", [f"{t}_q", s, z], [f"{t}_dq"]),
            ]
        )
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(_toposort(nodes, {i.name for i in g.input} | {i.name for i in g.initializer}))
    return out


def _toposort(nodes, ready):
    ready, done, order = set(ready), set(), []
    while len(order) < len(nodes):
        for k, n in enumerate(nodes):
            if k not in done and all(i in ready or not i for i in n.input):
                order.append(n)
                done.add(k)
                ready.update(n.output)
    return order


def test_choose_method_prefers_the_faithful_thresholds(convnet):
    names = _acts(convnet)
    cal = calibrate(convnet, _batches(4), names, ["minmax"])
    good = cal.amax_for("minmax")
    bad = {t: v / 40 for t, v in good.items()}  # clips almost everything
    two = Calibration(methods=["bad", "good"], amax={"bad": bad, "good": good})
    best, scores = choose_method(
        two, lambda a: _insert_qdq(convnet, a), _batches(2, seed=9), reference_model=convnet
    )
    assert best == "good" and two.method == "good" and two.scores == scores
    assert scores["good"]["cosine"] > scores["bad"]["cosine"] and scores["good"]["mse"] < scores["bad"]["mse"]
    assert 0 <= scores["bad"]["top1_agreement"] <= scores["good"]["top1_agreement"] <= 1
    # the same with reference outputs given instead of the model
    import onnxruntime as ort

    sess = ort.InferenceSession(convnet.SerializeToString(), providers=["CPUExecutionProvider"])
    refs = [{"y": sess.run(None, b)[0]} for b in _batches(2, seed=9)]
    assert (
        choose_method(two, lambda a: _insert_qdq(convnet, a), _batches(2, seed=9), reference_outputs=refs)[1]
        == scores
    )


def test_plots_mark_the_most_disagreeing_tensors(convnet, tmp_path):
    from trtq.calibrators.plot import disagreement

    cal = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    spread = disagreement(cal)
    files = plot_thresholds(cal, 2, tmp_path)
    top = sorted(spread, key=lambda t: -spread[t])[:2]
    assert len(files) == 2 and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    assert [f.name for f in files] == [f"calib_{t.strip('/').replace('/', '_')}.png" for t in top]
    cal.save(tmp_path / "c.json")
    with pytest.raises(UsageError, match="in memory only"):
        plot_thresholds(Calibration.load(tmp_path / "c.json"), 1, tmp_path)


def test_feeds_are_cast_to_the_input_dtype_and_extra_keys_ignored(convnet):
    batches = _batches(2)
    as64 = [{"x": b["x"].astype(np.float64), "label": np.zeros(4, np.int64)} for b in batches]
    a = calibrate(convnet, batches, _acts(convnet), ["minmax"])
    b = calibrate(convnet, as64, _acts(convnet), ["minmax"])
    assert a.amax == b.amax
