"""Detector graphs for the detection placement rules: the demo detector, an Ultralytics-v8 head with DFL, a head
with TopK/GatherElements post-processing, and torchvision's SSDLite (random init).

Each builder seeds its own weights, so a graph is the same in every test that asks for it.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn as nn

from tests.zoo.registry import graph, model

__all__ = ["V8DflDetector", "TopKHead", "NmsHead"]


def _conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2), nn.SiLU())


class V8DflDetector(nn.Module):
    """Ultralytics' v8 head on two levels: per level `cat(box 4x16 bins, class logits)`, the levels joined, split,
    DFL (Softmax over 16 bins, a fixed `[1, 16, 1, 1]` conv), dist2bbox against anchors, times the strides, and
    `cat(boxes, sigmoid(scores))`; a neck with an Upsample and a Concat. Input (N, 3, 32, 32), 3 classes."""

    def __init__(self, classes: int = 3, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max, self.classes = reg_max, classes
        self.p3 = nn.Sequential(_conv(3, 16, 3, 2), _conv(16, 32, 3, 2), _conv(32, 32, 3, 2))  # stride 8
        self.p4 = _conv(32, 32, 3, 2)  # stride 16
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.fuse = _conv(64, 32)
        self.cv2 = nn.ModuleList(
            nn.Sequential(_conv(32, 32), nn.Conv2d(32, 4 * reg_max, 1)) for _ in range(2)
        )
        self.cv3 = nn.ModuleList(nn.Sequential(_conv(32, 32), nn.Conv2d(32, classes, 1)) for _ in range(2))
        self.dfl = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)
        anchors, strides = [], []
        for s, n in ((8, 4), (16, 2)):
            ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
            anchors.append(torch.stack([xs.flatten(), ys.flatten()]))
            strides.append(torch.full((1, n * n), float(s)))
        self.register_buffer("anchors", torch.cat(anchors, 1)[None])
        self.register_buffer("strides", torch.cat(strides, 1)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.p3(x)
        p4 = self.p4(p3)
        n3 = self.fuse(torch.cat([self.up(p4), p3], 1))
        feats = [torch.cat([self.cv2[i](f), self.cv3[i](f)], 1) for i, f in enumerate((n3, p4))]
        b = x.shape[0]
        y = torch.cat([f.view(b, 4 * self.reg_max + self.classes, -1) for f in feats], 2)
        box, cls = y.split((4 * self.reg_max, self.classes), 1)
        a = box.shape[2]
        dist = self.dfl(box.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)).view(b, 4, a)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        dbox = torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * self.strides
        return torch.cat([dbox, cls.sigmoid()], 1)


class TopKHead(nn.Module):
    """A conv head whose graph ends in post-processing: the 5 best anchors by score (TopK), their boxes and scores
    gathered (GatherElements) and scaled. Input (N, 3, 16, 16); outputs boxes (N, 5, 4) and scores (N, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(3, 16), _conv(16, 32, 3, 2))
        self.box = nn.Conv2d(32, 4, 1)
        self.score = nn.Conv2d(32, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        boxes = self.box(f).flatten(2).transpose(1, 2)  # (N, A, 4)
        scores = self.score(f).flatten(1).sigmoid()  # (N, A)
        top, idx = scores.topk(5, dim=1)
        picked = boxes.gather(1, idx[..., None].expand(-1, -1, 4))
        return picked * 2.0 + 1.0, top


class NmsHead(nn.Module):
    """One image's boxes decoded from a conv head (Exp sizes around a fixed grid), scores through a Sigmoid,
    torchvision's `nms` (ONNX NonMaxSuppression) and the kept boxes gathered. Input (1, 3, 16, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _conv(3, 16, 3, 2)
        self.box = nn.Conv2d(16, 4, 1)
        self.score = nn.Conv2d(16, 1, 1)
        from torchvision.ops import nms  # imported here, not while tracing

        self.nms = nms

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        size = self.box(f)[0].flatten(1).T.exp() * 4.0  # (A, 4)
        centre = torch.arange(size.shape[0], dtype=torch.float32)[:, None].repeat(1, 2) * 2.0
        boxes = torch.cat([centre - size[:, :2], centre + size[:, 2:]], 1)
        scores = self.score(f)[0].flatten().sigmoid()
        keep = self.nms(boxes, scores, 0.5)
        return boxes[keep], scores[keep]


@model("digits_detector")
def digits_detector(seed: int = 0) -> nn.Module:
    """The demo's DigitsDetector (trtq.demo_detect), random init: (N, 3, 96, 96) -> (N, 14, 180)."""
    from trtq.demo_detect import DigitsDetector

    torch.manual_seed(seed)
    return DigitsDetector().eval()


@model("v8_dfl_detector")
def v8_dfl_detector(seed: int = 0) -> nn.Module:
    """An Ultralytics-v8-style detector with DFL (V8DflDetector), random init: (N, 3, 32, 32) -> (N, 7, 20)."""
    torch.manual_seed(seed)
    return V8DflDetector().eval()


def _export(module: nn.Module, size: int, outputs: tuple[str, ...]) -> onnx.ModelProto:
    from tests.zoo.models import export_model

    sample = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    return export_model(module, sample, input_names=["images"], output_names=outputs)


@graph("digits_detector")
def digits_detector_onnx(seed: int = 0) -> onnx.ModelProto:
    """The demo detector exported (legacy exporter, opset 17, dynamic batch): images -> output0 (N, 14, 180)."""
    return _export(digits_detector(seed), 96, ("output0",))


@graph("v8_dfl_detector")
def v8_dfl_detector_onnx(seed: int = 0) -> onnx.ModelProto:
    """V8DflDetector exported: images (N, 3, 32, 32) -> output0 (N, 7, 20)."""
    return _export(v8_dfl_detector(seed), 32, ("output0",))


@graph("topk_head")
def topk_head_onnx(seed: int = 0) -> onnx.ModelProto:
    """TopKHead exported: images (N, 3, 16, 16) -> boxes (N, 5, 4), scores (N, 5)."""
    torch.manual_seed(seed)
    return _export(TopKHead().eval(), 16, ("boxes", "scores"))


@graph("nms_head")
def nms_head_onnx(seed: int = 0) -> onnx.ModelProto:
    """NmsHead exported (static batch 1): images (1, 3, 16, 16) -> boxes (K, 4), scores (K,) after NMS."""
    from tests.zoo.models import export_model

    torch.manual_seed(seed)
    sample = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    return export_model(NmsHead().eval(), sample, input_names=["images"], output_names=["boxes", "scores"],
                        dynamic=None)  # fmt: skip
