"""`trtq build` end to end on real data (scikit-learn digits) and on a torchvision CNN with an image folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.conftest import make_image_folder
from trtq.pipeline import build


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A trained DigitsNet (TorchScript), 256 calibration samples and 300 labelled eval samples."""
    from trtq.demo import _digits_uint8, _normalise, train_digits

    root = tmp_path_factory.mktemp("digits_model")
    model, _, val_imgs, val_labels = train_digits(epochs=6)
    ts = root / "digits.ts"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(ts))
    imgs, _ = _digits_uint8()
    np.save(root / "calib.npy", _normalise(imgs[:256]))
    np.savez(root / "val.npz", x=_normalise(val_imgs[:300]), y=val_labels[:300])
    return ts, root / "calib.npy", root / "val.npz"


def _dq_fed(model: onnx.ModelProto) -> set[str]:
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {
        n.name
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm") and n.input[0] in dq_out and n.input[1] in dq_out
    }


def test_digits_build_end_to_end(digits_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ts, calib, val = digits_model
    res = build(str(ts), calib_data=calib, eval_data=val, out=tmp_path / "run", calib="entropy")
    for name in ("model.onnx", "calibration.json", "calibration.cache", "model.int8.onnx", "model.trt.onnx",
                 "report.json", "report.md"):  # fmt: skip
        assert (tmp_path / "run" / name).is_file(), name
    int8 = onnx.load(str(tmp_path / "run" / "model.int8.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    # every Conv/Gemm reads weight and input through DQ, unless placement says why not
    skipped = {s["node"] for s in res.placement.skipped}
    weighted = {n.name for n in int8.graph.node if n.op_type in ("Conv", "Gemm")}
    assert weighted - skipped == _dq_fed(int8)
    assert len(_dq_fed(int8)) >= 4
    val = res.validation
    fp32_top1, int8_top1 = val.value("fp32", "top1_accuracy"), val.value("int8", "top1_accuracy")
    assert fp32_top1 > 0.9  # real accuracy of a trained model on held-out digits
    assert abs(fp32_top1 - int8_top1) <= 0.02
    assert val.value("int8", "top1_agreement") >= 0.97
    assert "engine" in res.engine_status and "TensorRT" in res.engine_status
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["validation"]["models"]["int8"]["top1_accuracy"] == int8_top1
    assert report["config"]["calibration"]["method"] == "entropy"
    md = (tmp_path / "run" / "report.md").read_text()
    assert "INT8 (model.int8.onnx)" in md and f"{100 * int8_top1:.2f}%" in md
    assert not list(tmp_path.glob(".run.partial-*"))


def test_build_is_deterministic(digits_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ts, calib, val = digits_model
    for name in ("a", "b"):
        build(
            str(ts),
            calib_data=calib,
            out=tmp_path / name,
            calib="minmax",
            typed_graph=False,
            calib_samples=64,
        )
    for art in ("model.onnx", "model.int8.onnx", "calibration.json", "calibration.cache"):
        assert (tmp_path / "a" / art).read_bytes() == (tmp_path / "b" / art).read_bytes(), art


def test_resnet18_random_init_with_an_image_folder(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "imgs", classes=2, per_class=4, size=72)
    res = build("resnet18", calib_data=tmp_path / "imgs", out=tmp_path / "r18", preprocess={"size": 64,
                "resize": 72}, typed_graph=False)  # fmt: skip
    int8 = onnx.load(str(res.int8_onnx))
    assert len(_dq_fed(int8)) >= 19  # 20 convs + fc; ModelOpt-style rules may skip the 3-channel stem
    assert res.validation.samples == 8
    skipped = {s["node"]: s["rule"] for s in res.placement.skipped if s["op_type"] in ("Conv", "Gemm")}
    assert skipped == {"/fc/Gemm": "SmallOrGemv"}  # the classifier is matrix-vector at batch 1


def test_quantize_small_puts_every_conv_and_gemm_on_dq_inputs(tmp_path: Path) -> None:
    from trtq.cli import main

    make_image_folder(tmp_path / "imgs", classes=1, per_class=4, size=72)
    code = main(["build", "--model", "resnet18", "--calib-data", str(tmp_path / "imgs"), "--size", "64",
                 "--resize", "72", "--out", str(tmp_path / "r"), "--no-typed", "--quantize-small", "--quiet"])  # fmt: skip
    assert code == 0
    int8 = onnx.load(str(tmp_path / "r" / "model.int8.onnx"))
    weighted = {n.name for n in int8.graph.node if n.op_type in ("Conv", "Gemm")}
    assert len(weighted) == 21 and _dq_fed(int8) == weighted


def _graph_with_an_unquantizable_conv(path: Path) -> None:
    """Two convs; the first one's weight is computed at run time (Mul), which TensorRT cannot quantize."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), "w1")
    two = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 16, 3, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Mul", ["w1", "half"], ["w1_scaled"], name="scale_w1"),
        helper.make_node("Conv", ["x", "w1_scaled"], ["c1"], name="conv_dynamic_weight", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv_static_weight", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])], [w1, two, w2],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_onnx_with_an_unquantizable_op_is_built_and_the_op_listed(tmp_path: Path) -> None:
    _graph_with_an_unquantizable_conv(tmp_path / "m.onnx")
    np.save(tmp_path / "d.npy", np.random.default_rng(1).standard_normal((8, 16, 8, 8)).astype(np.float32))
    res = build(str(tmp_path / "m.onnx"), calib_data=tmp_path / "d.npy", out=tmp_path / "r", calib="minmax")
    skipped = {s["node"]: s for s in res.placement.skipped}
    assert "conv_dynamic_weight" in skipped and "weight" in skipped["conv_dynamic_weight"]["reason"]
    int8 = onnx.load(str(res.int8_onnx))
    assert _dq_fed(int8) == {"conv_static_weight"}
    assert "conv_dynamic_weight" in (tmp_path / "r" / "report.md").read_text()


def test_engine_step_builds_validates_and_benchmarks_where_tensorrt_is_present(
    digits_model: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring of the engine step, with TensorRT's parts replaced (no TensorRT here; see tests/test_engines_*)."""
    import trtq.benchmark as bm
    import trtq.engines as eng
    import trtq.runners as runners
    from trtq.runners import OnnxRuntimeRunner

    calls: dict[str, object] = {}

    def fake_stage(run_dir: Path, trt_onnx: Path, int8_onnx: Path, options: object, **kw: object) -> dict:
        calls["stage"] = (trt_onnx.name, int8_onnx.name, options.batch)
        (run_dir / "model.plan").write_bytes(b"serialized engine")
        (run_dir / "engine.json").write_text("{}")
        return {"precision": {"int8_layers": 4}}

    def fake_bench(artifacts: list, settings: object, out_dir: Path, **kw: object) -> dict:
        calls["bench"] = ([Path(a).name for a in artifacts], settings.batches)
        (out_dir / "bench.json").write_text("{}")
        return {"results": [{"artifact": "model.plan", "batch": 1}]}

    monkeypatch.setattr(eng, "tensorrt_status", lambda: (True, "TensorRT 11.4 (stand-in)"))
    monkeypatch.setattr(eng, "engine_stage", fake_stage)
    # the runner interface the TensorRT runner implements, served by ONNX Runtime on the INT8 graph
    monkeypatch.setattr(
        runners,
        "TensorRTRunner",
        lambda plan, **kw: OnnxRuntimeRunner(Path(plan).with_name("model.int8.onnx")),
    )
    monkeypatch.setattr(bm, "bench", fake_bench)
    ts, calib, val = digits_model
    res = build(str(ts), calib_data=calib, eval_data=val, out=tmp_path / "run", calib="minmax")
    assert calls["stage"] == ("model.trt.onnx", "model.int8.onnx", (1, 8, 32))
    assert res.engine == b"serialized engine" and (tmp_path / "run" / "model.plan").is_file()
    assert calls["bench"] == (["model.plan"], (1, 8))
    assert res.engine_info.validation.value("candidate", "top1_agreement") >= 0.97
    assert res.engine_status.startswith("built; engine vs FP32: top-1 agreement")
    assert (tmp_path / "run" / "bench.json").is_file()
