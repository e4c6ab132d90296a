"""trtq's Q/DQ placement against NVIDIA ModelOpt 0.47's INT8 ONNX quantizer on four torchvision architectures.

Both tools quantize the same exported ONNX (legacy exporter, opset 17, dynamic batch, BatchNorm folded, random
init). The sets of tensors that get Q/DQ are compared; every difference must be one of the documented kinds in
docs/placement.md ("Differences from ModelOpt"), and the test pins how many of each kind every model has.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.placement.modelopt import identity_aliases, modelopt_int8, modelopt_quantized
from tests.zoo import export_model
from trtq.placement import plan_qdq

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs" / "placement.md"


#: zoo model -> input resolution (random init, exported by the zoo's legacy export)
MODELS = {"resnet18": 64, "mobilenet_v2": 64, "efficientnet_b0": 64, "tiny_vit": 64}

# (model -> difference kind -> count). Kinds are explained in docs/placement.md.
EXPECTED = {
    "resnet18": {"modelopt:flatten-before-fp-head": 1, "modelopt:maxpool-input": 1},
    "mobilenet_v2": {"modelopt:flatten-before-fp-head": 1},
    "efficientnet_b0": {"modelopt:flatten-before-fp-head": 1},
    "tiny_vit": {
        "modelopt:layernorm-after-dropped-add-input": 2,
        "modelopt:gemm-output-into-residual-add": 2,
    },
}


def _export(name: str, path: Path, make_model) -> Path:
    res = MODELS[name]
    export_model(
        make_model(name), np.random.default_rng(0).standard_normal((1, 3, res, res)).astype(np.float32), path
    )
    return path


def _classify(tensor: str, readers: list[onnx.NodeProto], fp32: onnx.ModelProto, mo_nodes: set[str]) -> str:
    """Name the documented kind of a tensor ModelOpt quantizes and trtq does not (or 'unexplained')."""
    producer = {o: n for n in fp32.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in fp32.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    ops = {r.op_type for r in readers}
    if ops == {"Flatten"}:
        head = [c for r in readers for c in consumers.get(r.output[0], [])]
        if head and all(c.op_type in ("Gemm", "MatMul") and c.name not in mo_nodes for c in head):
            return "modelopt:flatten-before-fp-head"
    if ops == {"MaxPool"}:
        return "modelopt:maxpool-input"
    p = producer.get(tensor)
    if ops == {"LayerNormalization"} and p is not None and p.op_type == "Add":
        return "modelopt:layernorm-after-dropped-add-input"
    if ops == {"Add"} and p is not None and p.op_type == "Add":
        bias_src = [producer.get(i) for i in p.input if i in producer]
        if any(s is not None and s.op_type in ("MatMul", "Gemm") for s in bias_src):
            return "modelopt:gemm-output-into-residual-add"
    return "unexplained"


def _mo_quantized_nodes(mo: onnx.ModelProto) -> set[str]:
    """Weighted nodes whose weight input is dequantized in ModelOpt's output."""
    dq_out = {n.output[0] for n in mo.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in mo.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[0] in dq_out}


@pytest.mark.parametrize("name", list(MODELS))
def test_placement_matches_modelopt_up_to_documented_differences(name, tmp_path, make_model):
    path = _export(name, tmp_path / f"{name}.onnx", make_model)
    fp32 = onnx.load(str(path))
    res = MODELS[name]
    data = np.random.default_rng(0).standard_normal((1, 3, res, res)).astype(np.float32)
    mo = modelopt_int8(path, {fp32.graph.input[0].name: data}, tmp_path / f"{name}.mo.onnx")
    mo_set = modelopt_quantized(mo, identity_aliases(fp32))
    plan = plan_qdq(fp32)
    ours = set(plan.activations) | set(plan.weights)

    assert len(ours & set(mo_set)) >= 10  # the comparison is about real, agreeing placements
    trtq_only = sorted(ours - set(mo_set))
    assert trtq_only == [], f"trtq quantizes tensors ModelOpt does not: {trtq_only}"
    mo_nodes = _mo_quantized_nodes(mo)
    kinds = Counter(_classify(t, mo_set[t], fp32, mo_nodes) for t in set(mo_set) - ours)
    assert dict(kinds) == EXPECTED[name]


def test_every_difference_kind_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for kinds in EXPECTED.values():
        for kind in kinds:
            assert f"`{kind}`" in text, f"{kind} is not explained in {DOCS}"
