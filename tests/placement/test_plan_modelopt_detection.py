"""trtq's Q/DQ placement against NVIDIA ModelOpt 0.47's INT8 ONNX quantizer on detectors.

The demo detector (`trtq.demo_detect.DigitsDetector`: PAN neck with an Upsample and Concats, anchor-free head,
`cat(boxes, sigmoid(scores))`) and an Ultralytics-v8-style detector with DFL are exported (random init) and
quantized by both tools; the sets of tensors that get Q/DQ are compared, every difference must be one of the
kinds docs/placement.md explains ("Differences from ModelOpt"), and the count of each kind is pinned per model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from trtq.placement import plan_qdq

DOCS = Path(__file__).resolve().parents[2] / "docs" / "placement.md"

#: zoo graph -> input side
MODELS = {"digits_detector": 96, "v8_dfl_detector": 32}

EXPECTED = {
    "digits_detector": {"modelopt:detection-prediction-conv": 8, "modelopt:resize-input": 1},
    "v8_dfl_detector": {"modelopt:detection-prediction-conv": 8, "modelopt:dfl-conv": 2},
}


def _modelopt(m: onnx.ModelProto, size: int, tmp: Path) -> onnx.ModelProto:
    from modelopt.onnx.quantization import quantize

    src, out = tmp / "m.onnx", tmp / "m.mo.onnx"
    onnx.save(m, str(src))
    data = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    quantize(str(src), quantize_mode="int8", calibration_data={m.graph.input[0].name: data},
             calibration_method="max", high_precision_dtype="fp32", calibration_eps=["cpu"], log_level="ERROR",
             output_path=str(out))  # fmt: skip
    return onnx.load(str(out))


def _quantized(mo: onnx.ModelProto, fp32: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor (weights by their initializer) -> the nodes that read its DequantizeLinear output in ModelOpt's graph."""
    inits = {t.name for t in fp32.graph.initializer}
    aliases = {
        n.output[0]: n.input[0] for n in fp32.graph.node if n.op_type == "Identity" and n.input[0] in inits
    }
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in mo.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    out = {}
    for n in mo.graph.node:
        if n.op_type == "QuantizeLinear":
            dq = readers[n.output[0]][0]
            out[aliases.get(n.input[0], n.input[0])] = readers.get(dq.output[0], [])
    return out


def _classify(tensor: str, readers: list[onnx.NodeProto], plan) -> str:
    """The documented kind of a tensor ModelOpt quantizes and trtq does not (or 'unexplained')."""
    kept = {d.node: d for d in plan.decisions if d.rule == "DetectionHead"}
    names = {r.name for r in readers}
    if names and names <= set(kept):
        return (
            "modelopt:dfl-conv"
            if all("DFL" in kept[n].reason for n in names)
            else "modelopt:detection-prediction-conv"
        )
    if {r.op_type for r in readers} == {"Resize", "Concat"}:
        return "modelopt:resize-input"
    return "unexplained"


@pytest.mark.parametrize("name", list(MODELS))
def test_detector_placement_matches_modelopt_up_to_documented_differences(name, tmp_path, onnx_graph):
    fp32 = onnx_graph(name)
    mo = _quantized(_modelopt(fp32, MODELS[name], tmp_path), fp32)
    plan = plan_qdq(fp32)
    ours = set(plan.activations) | set(plan.weights)
    assert len(ours & set(mo)) >= 15  # the backbone, the neck's Concats, the head's 3x3 convs agree
    assert sorted(ours - set(mo)) == [], "trtq quantizes tensors ModelOpt does not"
    kinds = Counter(_classify(t, mo[t], plan) for t in set(mo) - ours)
    assert dict(kinds) == EXPECTED[name]


def test_every_detector_difference_kind_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for kinds in EXPECTED.values():
        for kind in kinds:
            assert f"`{kind}`" in text, f"{kind} is not explained in {DOCS}"
