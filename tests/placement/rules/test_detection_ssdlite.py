"""Structure test: torchvision's SSDLite (MobileNetV3 backbone, post-processing in the graph), randomly
initialised, exports and builds: placement (the detection rules find its TopK/GatherND post-processing), Q/DQ
insertion, calibration and validation through ONNX Runtime.

About 45 s on the 2-core CI machine (export 8 s, placement's symbolic shape inference 14 s, the build 20 s), so it
is marked slow. Three classes instead of 91 keep the per-class post-processing the exporter unrolls small.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from tests.zoo import export_model

pytestmark = pytest.mark.slow


class _Outputs(torch.nn.Module):
    """torchvision's list of dicts for one image as three tensors (boxes, scores, labels)."""

    def __init__(self, detector: torch.nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.detector(x)[0]
        return out["boxes"], out["scores"], out["labels"]


def test_ssdlite_exports_plans_quantizes_and_runs(tmp_path):
    import torchvision

    import trtq

    torch.manual_seed(0)
    detector = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3
    ).eval()
    rng = np.random.default_rng(0)
    path = tmp_path / "ssdlite.onnx"
    export_model(_Outputs(detector), rng.random((1, 3, 96, 96), dtype=np.float32), path,
                 input_names=["images"], output_names=["boxes", "scores", "labels"], dynamic=None)  # fmt: skip
    result = trtq.build(str(path), calib_data=rng.random((2, 3, 96, 96), dtype=np.float32), out=tmp_path / "run",
                        calib="minmax", batch_size=1)  # fmt: skip

    plan = json.loads((tmp_path / "run" / "placement.json").read_text())
    convs = {n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"}
    assert (
        set(plan["quantized_nodes"]) == convs
    )  # every convolution of backbone, extra layers and head is INT8
    post = {d["op_type"] for d in plan["decisions"] if d["rule"] == "DetectionPostprocess"}
    assert {"TopK", "GatherND", "Softmax", "Exp"} <= post  # score softmax, box decoding, top-k, gathers
    assert not any(d["quantized"] for d in plan["decisions"] if d["rule"] == "DetectionPostprocess")
    int8 = onnx.load(str(tmp_path / "run" / "model.int8.onnx"))
    quantize = sum(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    assert quantize == len(plan["activations"]) + len(plan["weights"])
    assert set(result.validation.candidates) == {
        "int8",
        "typed",
    }  # ONNX Runtime ran the Q/DQ graphs against FP32
