"""QAT: quantizers where PTQ puts Q/DQ, exact BatchNorm folding of a Q/DQ graph, the export matching both the
fake-quant PyTorch model and PTQ's placement, a model PTQ breaks and QAT repairs, determinism, the hand-off
to the build path, the training-loop controls, and bad input.

The model PTQ breaks: the demo CNN trained on scikit-learn's digits, with two channels of the tensor that
feeds `conv2` scaled up 300x (and `conv2`'s weights for them scaled down 300x, so FP32 is unchanged). One
per-tensor int8 scale must then cover a range 300x wider than the other 30 channels need: with the minmax
range they all round to zero and PTQ falls to chance, while fine-tuning through the quantizers recovers.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from trtq.errors import TrtqError, UsageError
from trtq.runners import OnnxRuntimeRunner

HAS_TYPED = importlib.util.find_spec("trtq.precision") is not None
OUTLIER_SCALE = 300.0


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One PyTorch thread: these tiny models run fastest (and exactly reproducibly) that way on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo CNN trained on digits (seed 0), its train/val split as .npz, and the outlier variant."""
    from trtq.demo import _digits_uint8, _normalise, train_digits

    model, acc, _, _ = train_digits(0, epochs=6)
    imgs, labels = _digits_uint8()
    order = np.random.default_rng(0).permutation(len(imgs))  # train_digits' split
    root = tmp_path_factory.mktemp("qat_digits")
    np.savez(root / "train.npz", x=_normalise(imgs[order[:1200]]), y=labels[order[:1200]])
    np.savez(root / "val.npz", x=_normalise(imgs[order[1200:]]), y=labels[order[1200:]])
    outlier = copy.deepcopy(model)
    with torch.no_grad():
        bn, conv2 = outlier.conv1[1], outlier.conv2[0]
        for k in range(2):
            bn.weight[k] *= OUTLIER_SCALE
            bn.bias[k] *= OUTLIER_SCALE
            conv2.weight[:, k] /= OUTLIER_SCALE
    sd = root / "outlier.pt"
    torch.save(outlier.state_dict(), str(sd))
    return {
        "model": model,
        "outlier": outlier,
        "outlier_sd": sd,
        "fp32_acc": acc,
        "train": root / "train.npz",
        "val": root / "val.npz",
    }


#: Settings of the outlier runs: 2 epochs on 800 images, SGD at lr 0.01, one CPU thread (fast and exact).
RUN = {"calib": "minmax", "epochs": 2, "lr": 0.01, "train_samples": 800, "calib_samples": 256, "threads": 1}


@pytest.fixture(scope="module")
def outlier_run(digits: dict, tmp_path_factory: pytest.TempPathFactory):
    import trtq

    out = tmp_path_factory.mktemp("qat_run") / "qat"
    return trtq.qat(
        digits["outlier"], str(digits["train"]), str(digits["val"]), out,
        typed_graph=HAS_TYPED, **RUN,
    )  # fmt: skip


# ---- graph passes ----------------------------------------------------------------------------------------


def _conv_bn_graph(quantized_weight: bool) -> tuple[onnx.ModelProto, np.ndarray]:
    """x -> Conv(W [, per-channel Q/DQ]) -> BatchNormalization -> Relu; gamma has a negative and a zero entry."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    gamma = np.array([1.5, -0.7, 0.0, 2.0], np.float32)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(gamma, "gamma"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "var"),
    ]
    nodes = []
    weight = "W"
    if quantized_weight:
        scale = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
        inits += [numpy_helper.from_array(scale, "ws"), numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
        nodes += [
            helper.make_node("QuantizeLinear", ["W", "ws", "wz"], ["Wq"], "wq", axis=0),
            helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["Wdq"], "wdq", axis=0),
        ]
        weight = "Wdq"
    nodes += [
        helper.make_node("Conv", ["x", weight], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], "bn"),
        helper.make_node("Relu", ["b"], ["y"], "relu"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 6, 6])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, rng.standard_normal((2, 3, 6, 6)).astype(np.float32)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(model) as r:
        return r.infer({"x": x})["y"]


@pytest.mark.parametrize("quantized_weight", [False, True])
def test_fold_batchnorm_is_exact_with_and_without_weight_qdq(quantized_weight: bool) -> None:
    from trtq.finetune.graph import fold_batchnorm
    from trtq.qdq import weight_scales

    model, x = _conv_bn_graph(quantized_weight)
    folded, n = fold_batchnorm(model)
    assert n == 1 and "BatchNormalization" not in {node.op_type for node in folded.graph.node}
    np.testing.assert_allclose(_run(folded, x), _run(model, x), rtol=1e-5, atol=1e-5)
    if quantized_weight:
        # the rescaled weight scales are what PTQ computes on the folded weight (zero gamma: floor scale)
        inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
        q = next(node for node in folded.graph.node if node.op_type == "QuantizeLinear")
        np.testing.assert_allclose(inits[q.input[1]], weight_scales(inits[q.input[0]], 0), rtol=1e-6)


def test_duplicate_pairs_merge_and_noop_casts_drop() -> None:
    from trtq.finetune.graph import drop_noop_casts, merge_duplicate_qdq, qdq_layout

    s = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [helper.make_node("Cast", ["x"], ["xc"], "cast", to=TensorProto.FLOAT)]
    for tag in ("a", "b"):
        nodes += [
            helper.make_node("QuantizeLinear", ["xc", "s", "z"], [f"q{tag}"], f"Q{tag}"),
            helper.make_node("DequantizeLinear", [f"q{tag}", "s", "z"], [f"d{tag}"], f"DQ{tag}"),
            helper.make_node("Relu", [f"d{tag}"], [f"y{tag}"], f"relu_{tag}"),
        ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(f"y{t}", TensorProto.FLOAT, [2, 3]) for t in "ab"], [s, z],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
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


def test_module_for_node_follows_the_exporters_scope_names() -> None:
    from trtq.finetune.quantize import module_for_node

    inner = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    net = torch.nn.Module()
    net.layer1 = torch.nn.Sequential(torch.nn.Module())
    net.layer1[0].conv1 = torch.nn.Conv2d(3, 8, 3)
    net.layer1[0].downsample = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1))
    net.stem = inner
    net.head = torch.nn.Linear(8, 2)
    modules = dict(net.named_modules())
    assert module_for_node("/layer1/layer1.0/conv1/Conv", modules, "Conv") == "layer1.0.conv1"
    assert (
        module_for_node("/layer1/layer1.0/downsample/downsample.0/Conv", modules, "Conv")
        == "layer1.0.downsample.0"
    )
    assert module_for_node("/stem/stem.0/Conv", modules, "Conv") == "stem.0"
    assert module_for_node("/head/Gemm", modules, "Gemm") == "head"
    assert module_for_node("/stem/stem.1/Relu", modules, "Conv") is None  # not a weighted module
    assert module_for_node("/Conv", modules, "Conv") is None  # functional call: no scope


def test_resnet_residuals_repeated_and_inplace_relus_train_as_deployed() -> None:
    """ResNet: downsample residuals (BatchNorm folded away in ONNX), `relu` called twice per block, in place."""
    import torchvision

    from trtq.export import export_onnx, resolve_model
    from trtq.finetune import calibrate_inputs, export_qat_onnx, quantize_model, torch_vs_onnx
    from trtq.placement import plan_qdq

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(0).standard_normal((32, 3, 32, 32)).astype(np.float32)
    fp32 = export_onnx(resolve_model(net), x[:2]).model
    plan = plan_qdq(fp32)
    qm = quantize_model(net, fp32, plan, x[:4])
    outputs = {o.tensor: (o.module, o.call) for o in qm.outputs}
    assert qm.export_only == {}
    assert outputs["/layer1/layer1.0/relu_1/Relu_output_0"] == ("layer1.0.relu", 1)
    assert outputs["/layer2/layer2.0/downsample/downsample.0/Conv_output_0"] == ("layer2.0.downsample.1", 0)
    calibrate_inputs(qm, [x[:16], x[16:]], "entropy")
    ex = export_qat_onnx(qm, x[:2], fp32, calib_batches=lambda: [x])
    assert ex.check.matches and ex.folded_batchnorms == 20 and ex.added == {}
    check = torch_vs_onnx(qm.model, ex.model, [(x, None)])
    assert check["mean_abs_logit_error"] < 0.01 * check["max_abs_logit"]


# ---- the outlier model: PTQ breaks, QAT repairs -----------------------------------------------------------


def test_ptq_loses_accuracy_and_qat_recovers_it(digits: dict, outlier_run) -> None:
    acc = outlier_run.metrics["accuracy"]
    assert acc["fp32"]["top1"] == pytest.approx(digits["fp32_acc"], abs=0.01) and acc["fp32"]["top1"] > 0.97
    assert acc["ptq"]["top1"] < 0.3  # minmax per-tensor range: 30 of 32 channels round to zero
    assert acc["qat"]["top1"] > 0.88 and acc["qat"]["top1"] - acc["ptq"]["top1"] > 0.6
    epochs = outlier_run.metrics["training"]["epochs"]
    assert epochs[0]["val_top1"] < 0.3 and outlier_run.metrics["training"]["best_epoch"] >= 1


def test_initial_ranges_come_from_the_trtq_calibrator(digits: dict, outlier_run) -> None:
    amax = outlier_run.metrics["calibration"]["amax"]
    # independent reference: max |x| of the FP32 model's conv2 input over the same calibration subset
    from trtq.data import load_data

    ds = load_data(str(digits["train"]), limit=RUN["calib_samples"], seed=0)
    seen = []
    net = copy.deepcopy(digits["outlier"]).eval()
    net.conv2[0].register_forward_pre_hook(lambda _m, a: seen.append(a[0].abs().max().item()))
    with torch.no_grad():
        for x, _ in ds.iter_batches(32):
            net(torch.from_numpy(x))
    assert amax["/conv1/conv1.2/Relu_output_0"] == pytest.approx(max(seen), rel=1e-6)
    # one range per tensor the plan quantizes (the global-pool input included)
    assert set(amax) == {
        "input",
        "/stem/stem.2/Relu_output_0",
        "/conv1/conv1.2/Relu_output_0",
        "/pool/MaxPool_output_0",
        "/conv3/conv3.2/Relu_output_0",
    }


def test_export_matches_fake_quant_torch_and_ptq_placement(outlier_run) -> None:
    from trtq.finetune.graph import check_placement, qdq_layout
    from trtq.placement import plan_qdq

    check = outlier_run.metrics["export_check"]
    assert check["top1_agreement"] >= 0.99 and check["samples"] == 597
    # after QAT this model leans on the two outlier channels, whose int8 step is ~10: float-rounding noise of
    # the BatchNorm fold (1e-7 relative) flips a few of their roundings, hence a visible but small error
    assert check["max_abs_logit_error"] < 0.05 * check["max_abs_logit"]
    # the residual Add input and the global-pool input train with output quantizers: nothing export-only
    outputs = {o["tensor"]: o["module"] for o in outlier_run.metrics["output_quantizers"]}
    assert outputs == {"/stem/stem.2/Relu_output_0": "stem.2", "/conv3/conv3.2/Relu_output_0": "conv3.2"}
    assert outlier_run.metrics["export_only"] == {} and outlier_run.metrics["export"]["added_at_export"] == {}
    qat_graph = onnx.load(outlier_run.artifacts["model.qat.onnx"])
    fp32 = onnx.load(outlier_run.artifacts["model.onnx"])
    ops = [n.op_type for n in qat_graph.graph.node]
    assert "BatchNormalization" not in ops and "Cast" not in ops
    plan = plan_qdq(fp32)
    layout = qdq_layout(qat_graph)
    assert set(layout.activations) == set(plan.activations)  # same tensors as PTQ, one pair each
    assert ops.count("QuantizeLinear") == len(plan.activations) + len(plan.weights)
    assert check_placement(qat_graph, fp32, plan).matches
    # a pair removed from the graph is caught
    broken = onnx.ModelProto()
    broken.CopyFrom(qat_graph)
    q = next(
        n
        for n in broken.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] == "/pool/MaxPool_output_0"
    )
    dq = next(n for n in broken.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    for n in broken.graph.node:
        for i, name in enumerate(n.input):
            if name == dq.output[0]:
                n.input[i] = q.input[0]
    broken.graph.node.remove(q)
    broken.graph.node.remove(dq)
    bad = check_placement(broken, fp32, plan)
    assert not bad.matches and bad.missing == ["/pool/MaxPool_output_0"]


def test_artifacts_and_handoff_run_folder(outlier_run) -> None:
    out = outlier_run.out_dir
    for name in ("model.onnx", "model.ptq.onnx", "model.qat.onnx", "metrics.json", "training_curves.png"):
        assert (out / name).is_file(), name
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = torch.load(str(out / "checkpoints" / "best.pt"), weights_only=True)
    assert any(k.endswith("input_quantizer._amax") for k in state)
    run = outlier_run.build
    assert run.out_dir == out / "run"
    assert (out / "run" / "model.int8.onnx").read_bytes() == (out / "model.qat.onnx").read_bytes()
    assert (out / "run" / "model.trt.onnx").is_file() == HAS_TYPED
    assert run.placement.qat_check["matches"]
    report = (out / "run" / "report.md").read_text()
    section = report.split("## QAT\n", 1)[1].split("\n## ", 1)[0]
    acc = outlier_run.metrics["accuracy"]
    for key in ("fp32", "ptq", "qat"):
        assert f"{100 * acc[key]['top1']:.2f}%" in section
    assert "matches PTQ" in section and "qat_curves.png" in section
    assert json.loads((out / "run" / "report.json").read_text())["qat"]["accuracy"] == acc


def test_build_from_qat_reads_settings_from_the_graph_and_flags_foreign_placement(
    outlier_run, digits, tmp_path: Path
) -> None:
    from trtq.finetune import read_qat_metadata
    from trtq.pipeline import build_from_qat

    qat_path = outlier_run.artifacts["model.qat.onnx"]
    meta = read_qat_metadata(onnx.load(qat_path))
    assert meta["calib"] == "minmax" and meta["placement"]["exclude_nodes"] == []
    res = build_from_qat(
        qat_path, None, str(digits["val"]), tmp_path / "run", typed_graph=False, build_engine=False
    )
    assert res.validation.value("int8", "top1_accuracy") == pytest.approx(
        outlier_run.metrics["accuracy"]["qat"]["top1"]
    )
    # the PTQ graph is a valid Q/DQ graph too, but another placement than a plan excluding conv2
    from trtq.placement import PlacementConfig

    other = PlacementConfig(exclude_nodes=("/conv2/conv2.0/Conv",))
    with pytest.raises(TrtqError, match="placement differs"):
        build_from_qat(qat_path, None, str(digits["val"]), tmp_path / "strict", placement=other, strict=True,
                       typed_graph=False, build_engine=False)  # fmt: skip
    lax = build_from_qat(qat_path, None, str(digits["val"]), tmp_path / "lax", placement=other,
                         typed_graph=False, build_engine=False)  # fmt: skip
    assert lax.placement.qat_check["extra"] == ["/conv1/conv1.2/Relu_output_0"]
    assert "differs from PTQ" in (tmp_path / "lax" / "report.md").read_text()


# ---- determinism, CLI, user training function ------------------------------------------------------------


def test_cli_reproduces_the_api_run_with_the_same_seed(digits: dict, outlier_run, tmp_path: Path) -> None:
    from trtq.cli import main

    out = tmp_path / "cli"
    argv = [
        "qat", "--model", "trtq.demo:DigitsNet", "--checkpoint", str(digits["outlier_sd"]),
        "--train-data", str(digits["train"]), "--val-data", str(digits["val"]), "--out", str(out),
        "--calib", "minmax", "--epochs", "2", "--lr", "0.01", "--train-samples", "800", "--calib-samples", "256",
        "--threads", "1", "--no-build", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    mine = json.loads((out / "metrics.json").read_text())
    ref = json.loads((outlier_run.out_dir / "metrics.json").read_text())
    for m in (mine, ref):
        m.pop("timings_s")
    assert mine == ref
    assert (out / "model.qat.onnx").read_bytes() == (outlier_run.out_dir / "model.qat.onnx").read_bytes()
    assert not (out / "run").exists()


def test_user_train_fn_gets_the_fake_quant_model(digits: dict, tmp_path: Path) -> None:
    import trtq

    calls = []

    def train_fn(model, ctx):
        quantizers = [m for n, m in model.named_modules() if n.endswith("input_quantizer") and m.is_enabled]
        calls.append((len(quantizers), ctx.device.type, ctx.out_dir))
        return {"my_metric": 1.5}

    res = trtq.qat(
        digits["model"], None, None, tmp_path / "fn", calib_data=str(digits["val"]), calib_samples=128,
        train_fn=train_fn, handoff=False, threads=1,
    )  # fmt: skip
    assert calls == [(4, "cpu", tmp_path / "fn")]
    assert res.metrics["training"]["user_metrics"] == {"my_metric": 1.5}
    # nothing trained: the QAT graph is the PTQ graph
    qat_graph, ptq_graph = (
        onnx.load(res.artifacts["model.qat.onnx"]),
        onnx.load(res.artifacts["model.ptq.onnx"]),
    )
    del qat_graph.metadata_props[:]
    assert qat_graph.SerializeToString(deterministic=True) == ptq_graph.SerializeToString(deterministic=True)


# ---- training-loop controls -------------------------------------------------------------------------------


def test_bn_freeze_quant_delay_and_default_lr(digits: dict) -> None:
    from trtq.data import load_data
    from trtq.export import export_onnx, resolve_model
    from trtq.finetune import TrainConfig, calibrate_inputs, quantize_model
    from trtq.finetune.train import fit
    from trtq.placement import plan_qdq

    assert TrainConfig().resolved_lr() == pytest.approx(0.1 * 32 / 256 / 10)
    assert TrainConfig(optimizer="adamw").resolved_lr() == pytest.approx(1e-4)
    assert TrainConfig(fp32_lr=0.5, lr=None).resolved_lr() == pytest.approx(0.05)
    ds = load_data(str(digits["val"]), limit=96, seed=0)
    fp32 = export_onnx(resolve_model(digits["model"]), next(ds.iter_batches(2))[0]).model
    qm = quantize_model(digits["model"], fp32, plan_qdq(fp32))
    calibrate_inputs(qm, (x for x, _ in ds.iter_batches(32)), "minmax")
    bn = dict(qm.model.named_modules())["stem.1"]
    states, recal = [], []

    def set_q(on: bool) -> None:
        states.append(on)
        qm.set_quantization(on)

    means = {}
    cfg = TrainConfig(epochs=3, freeze_bn_epoch=1, quant_delay_epochs=1, lr=0.01, batch_size=32)

    class Spy:
        def __call__(self) -> None:
            recal.append(True)
            means["after_epoch_1"] = bn.running_mean.clone()
            calibrate_inputs(qm, (x for x, _ in ds.iter_batches(32)), "minmax")

    hist = fit(qm.model, ds, ds, cfg, device="cpu", set_quantization=set_q, recalibrate=Spy())
    assert [r.quantized for r in hist.records] == [False, False, True, True]
    assert [r.bn_frozen for r in hist.records[1:]] == [False, True, True]
    assert recal == [True] and states[0] is False and states[-1] is True
    assert hist.best_epoch >= 2  # an FP32 epoch is never the one exported
    torch.testing.assert_close(bn.running_mean, means["after_epoch_1"])  # frozen from epoch index 1


def test_bad_input_is_refused_with_a_clear_message(digits: dict, tmp_path: Path) -> None:
    import trtq

    ts = tmp_path / "m.ts"
    torch.jit.save(torch.jit.trace(digits["model"].eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    unlabeled = tmp_path / "x.npy"
    np.save(unlabeled, np.zeros((8, 1, 8, 8), np.float32))
    train, val = str(digits["train"]), str(digits["val"])
    cases = [
        ((str(ts), train, val), {}, "TorchScript"),
        ((digits["model"], str(unlabeled), val), {}, "no labels"),
        ((digits["model"], train, val), {"optimizer": "lion"}, "--optimizer"),
        ((digits["model"], train, val), {"epochs": 2, "quant_delay_epochs": 2}, "--quant-delay-epochs"),
        ((digits["model"], train, val), {"calib": "kl"}, "--calib"),
        ((digits["model"], train, val), {"exclude": [".*"]}, "nothing to train"),
    ]
    for i, (args, kw, match) in enumerate(cases):
        with pytest.raises(UsageError, match=match):
            trtq.qat(*args, tmp_path / f"out{i}", handoff=False, threads=1, **kw)


def test_cli_build_from_qat_hands_the_qat_graph_to_the_build_path(
    outlier_run, digits, tmp_path: Path
) -> None:
    from trtq.cli import main

    qat_path = outlier_run.artifacts["model.qat.onnx"]
    code = main(["build", "--from-qat", str(qat_path), "--eval-data", str(digits["val"]), "--out",
                 str(tmp_path / "run"), "--no-typed", "--quiet"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "run" / "model.int8.onnx").read_bytes() == Path(qat_path).read_bytes()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["qat"]["accuracy"] == outlier_run.metrics["accuracy"]
    assert main(["build", "--from-qat", str(qat_path), "--out", str(tmp_path / "r2"), "--quiet"]) == 2
