"""`choose_method` (`--calib all`): the method whose Q/DQ model is most faithful to FP32 on held-out data wins.

The Q/DQ models are made by a minimal, independent inserter (per-tensor Q/DQ on each named activation).
"""

from __future__ import annotations

import onnx
import pytest

from tests.calibration.cases import activations as _acts
from tests.calibration.cases import batches as _batches
from trtq.calibration import Calibration, calibrate, choose_method
from trtq.errors import UsageError
from trtq.progress import set_quiet

set_quiet(True)


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


def test_ties_go_to_the_lower_mse_then_to_the_first_computed(convnet):
    good = calibrate(convnet, _batches(4), _acts(convnet), ["minmax"]).amax_for("minmax")
    same = Calibration(methods=["a", "b"], amax={"a": dict(good), "b": dict(good)})
    assert (
        choose_method(same, lambda a: _insert_qdq(convnet, a), _batches(2, seed=9), reference_model=convnet)[
            0
        ]
        == "a"
    )
    assert choose_method(same, lambda a: _insert_qdq(convnet, a), _batches(2, seed=9), reference_model=convnet,
                         methods=["b", "a"])[0] == "b"  # fmt: skip


def test_the_deciding_metric_is_any_registered_one_and_its_direction_counts(convnet):
    good = calibrate(convnet, _batches(4), _acts(convnet), ["minmax"]).amax_for("minmax")
    two = Calibration(
        methods=["bad", "good"], amax={"bad": {t: v / 40 for t, v in good.items()}, "good": good}
    )
    best, scores = choose_method(two, lambda a: _insert_qdq(convnet, a), _batches(2, seed=9),
                                 reference_model=convnet, metric="max_abs_error")  # fmt: skip
    assert best == "good" and scores["good"]["max_abs_error"] < scores["bad"]["max_abs_error"]
    assert set(scores["good"]) == {"max_abs_error", "mse", "top1_agreement"}


def test_refusals(convnet):
    cal = Calibration.from_amax({"x": 1.0})
    with pytest.raises(UsageError, match="at least one held-out batch"):
        choose_method(cal, lambda a: convnet, [], reference_model=convnet)
    with pytest.raises(UsageError, match="needs the FP32 model or its reference outputs"):
        choose_method(cal, lambda a: convnet, _batches(1))
    with pytest.raises(UsageError, match="1 reference outputs for 2 held-out batches"):
        choose_method(cal, lambda a: convnet, _batches(2), reference_outputs=[{"y": None}])
    with pytest.raises(UsageError, match="--metric 'kl' is not a registered metric"):
        choose_method(cal, lambda a: convnet, _batches(1), reference_model=convnet, metric="kl")


def test_a_task_metric_gets_the_held_out_targets(convnet):
    from trtq.data import ClassLabels
    from trtq.metrics import METRICS, register_metric

    seen = []

    @register_metric("test_targets_seen", needs="class")
    def targets_seen(reference, outputs, targets):
        """Records the targets it is given."""
        seen.append(targets)
        return 1.0

    try:
        good = calibrate(convnet, _batches(4), _acts(convnet), ["minmax"]).amax_for("minmax")
        labels = ClassLabels([0, 1, 0, 1])
        choose_method(Calibration(methods=["a"], amax={"a": good}), lambda a: _insert_qdq(convnet, a),
                      _batches(2, seed=9), reference_model=convnet, metric="test_targets_seen", targets=labels)  # fmt: skip
        assert seen and all(t is labels for t in seen)
    finally:
        METRICS.unregister("test_targets_seen")
