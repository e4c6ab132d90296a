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

from tests.placement.modelopt import identity_aliases, modelopt_int8, modelopt_quantized
from trtq.placement import plan_qdq

DOCS = Path(__file__).resolve().parents[2] / "docs" / "placement.md"

#: zoo graph -> input side
MODELS = {"digits_detector": 96, "v8_dfl_detector": 32}

EXPECTED = {
    "digits_detector": {"modelopt:detection-prediction-conv": 8, "modelopt:resize-input": 1},
    "v8_dfl_detector": {"modelopt:detection-prediction-conv": 8, "modelopt:dfl-conv": 2},
}


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
    size = MODELS[name]
    data = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    mo = modelopt_quantized(
        modelopt_int8(fp32, {fp32.graph.input[0].name: data}, tmp_path / "m.mo.onnx"), identity_aliases(fp32)
    )
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
