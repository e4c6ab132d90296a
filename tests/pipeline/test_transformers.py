"""`trtq build` end to end on transformers, as a user runs it: a Hugging Face BERT folder and a small ViT from
data .npz files, and the bad inputs a user makes with token data (each a one-line error, exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.transformer_models import VOCAB, hf_bert_folder, token_data
from trtq.cli import main
from trtq.runners.onnxrt import OnnxRuntimeRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bert")
    hf_bert_folder(root / "hf_bert")
    np.savez(root / "calib.npz", **token_data(32, padded=True, seed=1))
    np.savez(root / "eval.npz", **token_data(24, padded=True, seed=2))
    return {"folder": root / "hf_bert", "calib": root / "calib.npz", "eval": root / "eval.npz", "root": root}


@pytest.fixture(scope="module")
def bert_run(bert: dict[str, Path]) -> Path:
    out = bert["root"] / "run"
    args = ["build", "--model", str(bert["folder"]), "--calib-data", str(bert["calib"]), "--eval-data",
            str(bert["eval"]), "--out", str(out), "--metric", "neighbour_overlap", "--smoothquant", "0.5",
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    return out


def _weighted_reads(model: onnx.ModelProto) -> dict[str, tuple[bool, bool]]:
    """Weighted node with a constant (Q/DQ'd) weight -> (input 0 read through DQ, weight read through DQ)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name for t in model.graph.initializer}

    def from_dq(t: str) -> bool:
        p = producer.get(t)
        return p is not None and p.op_type == "DequantizeLinear"

    def weight_like(t: str) -> bool:
        p = producer.get(t)
        return t in inits or (p is not None and p.op_type == "DequantizeLinear" and p.input[0] in producer
                              and producer[p.input[0]].input[0] in inits)  # fmt: skip

    return {
        n.name: (from_dq(n.input[0]), from_dq(n.input[1]))
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm", "Conv") and weight_like(n.input[1])
    }


def test_hugging_face_bert_folder_builds_a_valid_int8_graph(bert_run: Path, bert: dict[str, Path]) -> None:
    int8 = onnx.load(str(bert_run / "model.int8.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    inputs = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in int8.graph.input
    }
    assert inputs == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    assert [o.name for o in int8.graph.output] == ["last_hidden_state", "pooler_output"]
    assert {p.key: p.value for p in int8.metadata_props}["trtq.max_sequence"] == "64"
    reads = _weighted_reads(int8)
    assert len(reads) == 13  # 6 projections per layer x 2, the pooler
    plan = json.loads((bert_run / "report.json").read_text())["placement"]
    gemv = [s["node"] for s in plan["skipped"] if s["rule"] == "SmallOrGemv"]
    assert gemv == ["/model/pooler/dense/Gemm"]  # a matrix-vector product at batch 1, as ModelOpt decides
    assert all(a and w for node, (a, w) in reads.items() if node not in gemv), reads
    # attention's activation x activation MatMuls read DQ on both inputs (TensorRT's fused INT8 attention)
    producer = {o: n for n in int8.graph.node for o in n.output}
    attention = [
        n for n in int8.graph.node if n.op_type == "MatMul" and n.name.endswith(("self/MatMul", "MatMul_1"))
    ]
    assert len(attention) == 4
    assert all(producer[i].op_type == "DequantizeLinear" for n in attention for i in n.input)
    # LayerNorm and Softmax read no DQ
    for n in int8.graph.node:
        if n.op_type in ("LayerNormalization", "Softmax"):
            assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in n.input)
    # the graphs run at a sequence length calibration never saw, and stay close to FP32
    feed = token_data(4, 40, padded=True, seed=3)
    outs = {}
    for name in ("model.onnx", "model.int8.onnx", "model.trt.onnx"):
        with OnnxRuntimeRunner(onnx.load(str(bert_run / name))) as r:
            outs[name] = r.infer(feed)
    ref, typed = outs["model.onnx"]["last_hidden_state"], outs["model.trt.onnx"]["last_hidden_state"]
    assert np.isfinite(typed).all() and ref.shape == (4, 40, 64)
    cos = (ref * typed).sum(-1) / np.linalg.norm(ref, axis=-1) / np.linalg.norm(typed, axis=-1)
    assert cos.mean() > 0.99
    report = json.loads((bert_run / "report.json").read_text())
    metrics = report["validation"]["models"]["int8"]
    assert metrics["neighbour_overlap"] > 0.8 and metrics["cosine"] > 0.99


def test_a_smoothquant_run_repeats_stage_by_stage_from_its_files(bert_run: Path, tmp_path: Path) -> None:
    """calibration.json of a --smoothquant run refers to model.smoothquant.onnx; `trtq quantize` from the two
    files writes the run's model.int8.onnx byte for byte."""
    out = tmp_path / "again.int8.onnx"
    args = ["quantize", "--model", str(bert_run / "model.smoothquant.onnx"), "--calibration",
            str(bert_run / "calibration.json"), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert out.read_bytes() == (bert_run / "model.int8.onnx").read_bytes()


def test_small_vit_builds_with_every_weighted_op_quantized(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 3, 32, 32)).astype(np.float32),
             labels=rng.integers(0, 10, 16))  # fmt: skip
    out = tmp_path / "run"
    args = ["build", "--model", "tests.transformer_models:small_vit", "--calib-data", str(tmp_path / "calib.npz"),
            "--out", str(out), "--quantize-small", "--quiet"]  # fmt: skip
    assert main(args) == 0
    int8 = onnx.load(str(out / "model.int8.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    reads = _weighted_reads(int8)
    ops = sorted({n.op_type for n in int8.graph.node if n.name in reads})
    assert ops == ["Conv", "Gemm", "MatMul"] and len(reads) >= 10
    assert all(a and w for a, w in reads.values()), reads
    x = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    for name in ("model.int8.onnx", "model.trt.onnx"):
        with OnnxRuntimeRunner(onnx.load(str(out / name))) as r:
            assert np.isfinite(next(iter(r.infer({"input": x}).values()))).all()


def _bad(kind: str, n: int = 8) -> dict[str, np.ndarray]:
    good = token_data(n, padded=True, seed=5)
    if kind == "missing":
        return {"attention_mask": good["attention_mask"]}
    if kind == "float_ids":
        return {**good, "input_ids": good["input_ids"].astype(np.float32)}
    if kind == "too_long":
        return token_data(n, 80, padded=True, seed=5)
    if kind == "mask_shape":
        return {**good, "attention_mask": good["attention_mask"][:, :10]}
    raise AssertionError(kind)


BAD = {
    "missing": r"input_ids",
    "float_ids": r"'input_ids' holds float32 .* integers",
    "too_long": r"sequences of 80 .* position table holds 64",
    "mask_shape": r"'attention_mask' has .*10.* 'input_ids' has .*16",
}


@pytest.mark.parametrize("model", ["hf_folder", "onnx"])
@pytest.mark.parametrize("kind", list(BAD))
def test_bad_token_data_is_one_line_naming_the_input(kind, model, bert, bert_run, tmp_path, capsys):
    data = tmp_path / f"{kind}.npz"
    np.savez(data, **_bad(kind))
    source = bert["folder"] if model == "hf_folder" else bert_run / "model.onnx"
    code = main(["build", "--model", str(source), "--calib-data", str(data), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--calib-data" in err and re.search(BAD[kind], err), err
    assert not (tmp_path / "o").exists()


def test_token_ids_beyond_the_vocabulary_are_refused(bert, tmp_path, capsys):
    data = token_data(4, padded=False)
    data["input_ids"][0, 0] = VOCAB + 5
    np.savez(tmp_path / "v.npz", **data)
    code = main(["build", "--model", str(bert["folder"]), "--calib-data", str(tmp_path / "v.npz"), "--out",
                 str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and f"token id {VOCAB + 5}" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["factory", "onnx"])
def test_sentence_encoder_with_two_int64_inputs_builds_from_an_npz(source, tmp_path: Path) -> None:
    """The issue's first try: an encoder with `input_ids` and `attention_mask` (int64, [batch, sequence]) and one
    embedding per sentence, calibrated from an .npz holding one array per input."""
    from tests.transformer_models import MaskedEncoder
    from trtq.export import export_onnx

    np.savez(tmp_path / "calib.npz", **token_data(32, padded=True, seed=1))
    model = "tests.transformer_models:MaskedEncoder"
    if source == "onnx":
        model = str(tmp_path / "enc.onnx")
        export_onnx(MaskedEncoder(), token_data(2, padded=True), model)
    out = tmp_path / "run"
    args = ["build", "--model", model, "--calib-data", str(tmp_path / "calib.npz"), "--out", str(out), "--quiet",
            "--metric", "neighbour_overlap"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [i["name"] for i in report["export"]["inputs"]] == ["input_ids", "attention_mask"]
    assert {i["dtype"] for i in report["export"]["inputs"]} == {"int64"}
    int8 = report["validation"]["models"]["int8"]
    assert int8["neighbour_overlap"] > 0.8 and int8["cosine"] > 0.99
    typed = onnx.load(str(out / "model.trt.onnx"))
    got = _weighted_reads(typed)
    assert got and all(a and w for a, w in got.values())


def test_max_drop_on_neighbour_overlap_ranks_the_matmuls_and_meets_the_budget(tmp_path: Path) -> None:
    """`--metric neighbour_overlap --max-drop` on the BERT with outlier channels: the sensitivity analysis ranks
    the MatMul layers by the embedding metric and the mixed graph meets the budget."""
    folder = hf_bert_folder(tmp_path / "bert", outliers=40.0)
    np.savez(tmp_path / "calib.npz", **token_data(64, padded=True, seed=10))
    np.savez(tmp_path / "eval.npz", **token_data(64, padded=True, seed=20))
    out = tmp_path / "run"
    args = ["build", "--model", str(folder), "--calib-data", str(tmp_path / "calib.npz"), "--eval-data",
            str(tmp_path / "eval.npz"), "--calib", "minmax", "--metric", "neighbour_overlap@last_hidden_state",
            "--max-drop", "10", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    sens = json.loads((out / "sensitivity.json").read_text())
    text = json.dumps(sens)
    assert "neighbour_overlap@last_hidden_state" in text and "MatMul" in text
    report = json.loads((out / "report.json").read_text())
    value = report["validation"]["models"]["int8"]["neighbour_overlap@last_hidden_state"]
    assert value >= 0.90 - 1e-9  # FP32 is 1.0; the budget is 10 points


def test_eval_data_with_other_inputs_than_the_calibration_data_is_refused(tmp_path: Path, capsys) -> None:
    np.savez(tmp_path / "calib.npz", **token_data(8, padded=True))
    np.savez(tmp_path / "eval.npz", input_ids=token_data(8, padded=True)["input_ids"])
    code = main(["build", "--model", "tests.transformer_models:MaskedEncoder", "--calib-data",
                 str(tmp_path / "calib.npz"), "--eval-data", str(tmp_path / "eval.npz"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "--eval-data has arrays ['input_ids']" in capsys.readouterr().err


def test_hugging_face_vit_classifier_with_labels_in_the_npz(tmp_path: Path) -> None:
    """`labels` in the .npz are trtq's targets, never fed to a Hugging Face model's `labels` (which would make it
    return a loss); the classifier's `logits` get top-1 and the attention pair stays together in the fallback."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, num_labels=10)  # fmt: skip
    ViTForImageClassification(cfg).eval().save_pretrained(str(tmp_path / "vit"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "pix.npz", pixel_values=rng.standard_normal((16, 3, 32, 32)).astype(np.float32),
             labels=rng.integers(0, 10, 16))  # fmt: skip
    out = tmp_path / "run"
    args = ["build", "--model", str(tmp_path / "vit"), "--calib-data", str(tmp_path / "pix.npz"), "--out", str(out),
            "--fallback", "/model/vit/layers.0/attention/MatMul_1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["export"]["outputs"] == ["logits"]
    assert "top1_accuracy" in report["validation"]["models"]["int8"]
    int8 = onnx.load(str(out / "model.int8.onnx"))
    producer = {o: n.op_type for n in int8.graph.node for o in n.output}
    pair = [n for n in int8.graph.node if n.name.startswith("/model/vit/layers.0/attention/MatMul")]
    assert len(pair) == 2 and all(producer.get(i) != "DequantizeLinear" for n in pair for i in n.input)


def test_with_quantize_small_every_weighted_matmul_of_bert_reads_dq(
    bert: dict[str, Path], tmp_path: Path
) -> None:
    """The pooler's matrix-vector Gemm is the one default exception; `--quantize-small` takes it in too."""
    out = tmp_path / "run"
    args = ["build", "--model", str(bert["folder"]), "--calib-data", str(bert["calib"]), "--out", str(out),
            "--quantize-small", "--no-typed", "--quiet"]  # fmt: skip
    assert main(args) == 0
    int8 = onnx.load(str(out / "model.int8.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    reads = _weighted_reads(int8)
    assert len(reads) == 13 and all(a and w for a, w in reads.values()), reads
