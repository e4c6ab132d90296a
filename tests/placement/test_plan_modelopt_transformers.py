"""trtq's Q/DQ placement against NVIDIA ModelOpt 0.47's INT8 ONNX quantizer on transformers.

A Hugging Face BERT (2 layers, random init) exported by `trtq export` (two int64 inputs, dynamic batch and
sequence) and a Hugging Face ViT are quantized by both tools; the sets of tensors that get Q/DQ are compared and
every difference must be one of the kinds docs/placement.md explains ("Differences from ModelOpt"), with the
count pinned per model. (The torchvision ViT is compared in tests/placement/test_plan_modelopt.py.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.placement.modelopt import modelopt_int8, modelopt_quantized
from tests.transformer_models import hf_bert_folder, token_data
from trtq.export import export_onnx
from trtq.placement import plan_qdq

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs" / "placement.md"

EXPECTED = {
    "hf_bert": {"modelopt:gemm-output-into-residual-add": 4, "modelopt:attention-scores-into-mask-add": 2},
    "hf_vit": {"modelopt:gemm-output-into-residual-add": 3, "modelopt:layernorm-after-dropped-add-input": 3},
}


def _hf_vit(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128)  # fmt: skip
    ViTModel(cfg, add_pooling_layer=False).eval().save_pretrained(str(folder))
    return folder


def _export(name: str, tmp: Path) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    if name == "hf_bert":
        feed = token_data(2, padded=True, seed=0)
        return export_onnx(hf_bert_folder(tmp / name), feed).model, feed
    feed = {"pixel_values": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    return export_onnx(_hf_vit(tmp / name), feed).model, feed


def _classify(tensor: str, readers: list[onnx.NodeProto], fp32: onnx.ModelProto) -> str:
    producer = {o: n for n in fp32.graph.node for o in n.output}
    ops = {r.op_type for r in readers}
    p = producer.get(tensor)
    if ops == {"LayerNormalization"} and p is not None and p.op_type == "Add":
        return "modelopt:layernorm-after-dropped-add-input"
    if ops == {"Add"} and p is not None:
        if p.op_type == "Add" and any(
            producer.get(i) is not None and producer[i].op_type in ("MatMul", "Gemm") for i in p.input
        ):
            return "modelopt:gemm-output-into-residual-add"
        if p.op_type == "MatMul" and not any(i in {t.name for t in fp32.graph.initializer} for i in p.input):
            return "modelopt:attention-scores-into-mask-add"
    return "unexplained"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_transformer_placement_matches_modelopt_up_to_documented_differences(name, tmp_path):
    fp32, feed = _export(name, tmp_path)
    mo = modelopt_quantized(modelopt_int8(fp32, {k: v[:1] for k, v in feed.items()}, tmp_path / "m.mo.onnx"))
    plan = plan_qdq(fp32)
    ours = set(plan.activations) | set(plan.weights)
    assert len(ours & set(mo)) >= 20
    assert sorted(ours - set(mo)) == [], "trtq quantizes tensors ModelOpt does not"
    kinds = Counter(_classify(t, mo[t], fp32) for t in set(mo) - ours)
    assert dict(kinds) == EXPECTED[name]


def test_every_transformer_difference_kind_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for kinds in EXPECTED.values():
        for kind in kinds:
            assert f"`{kind}`" in text, f"{kind} is not explained in {DOCS}"
