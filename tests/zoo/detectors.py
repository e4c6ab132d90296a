"""Tiny detectors and segmenters for the task tests, and the labelled image folders they are scored on.

`tiny_yolo` is a small conv net with a YOLOv8-style head: output `[batch, 4 + classes, anchors]`, the box branch
(cx, cy, w, h in input pixels, decoded on an 8x8 grid) concatenated with Sigmoid(class branch). `fixed_boxes`
outputs the same head for any image: boxes fixed in input pixels, so labels made by mapping them back through
the letterbox give FP32 an mAP of exactly 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tests.zoo.registry import model

__all__ = [
    "TinyYolo",
    "FixedBoxes",
    "TinySegmenter",
    "make_detection_folder",
    "make_mask_folder",
    "letterbox_inverse",
    "FIXED_BOXES",
]

#: fixed_boxes' detections in input pixels of a 32x32 input: (x1, y1, x2, y2, class, score)
FIXED_BOXES = (
    (4.0, 6.0, 14.0, 18.0, 0, 0.9),
    (16.0, 10.0, 28.0, 26.0, 1, 0.8),
    (8.0, 20.0, 20.0, 30.0, 2, 0.7),
)


class TinyYolo(torch.nn.Module):
    """Conv stem to stride 4, a box branch and a class branch; output [batch, 4 + classes, (size / 4) ** 2]."""

    def __init__(self, classes: int = 3, size: int = 32, width: int = 16) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(2 * width, 2 * width, 3, padding=1), torch.nn.SiLU(),
        )  # fmt: skip
        self.box = torch.nn.Conv2d(2 * width, 4, 1)
        self.cls = torch.nn.Conv2d(2 * width, classes, 1)
        g = size // 4
        ys, xs = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
        self.register_buffer("grid", torch.stack([xs, ys]).reshape(1, 2, -1).float() + 0.5)
        self.stride = 4.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.stem(x)
        b = self.box(f).flatten(2)
        xy = (self.grid + torch.tanh(b[:, :2])) * self.stride
        wh = torch.exp(b[:, 2:].clamp(-4, 2)) * self.stride * 2
        return torch.cat([xy, wh, torch.sigmoid(self.cls(f).flatten(2))], dim=1)


class FixedBoxes(torch.nn.Module):
    """The YOLOv8 head of `FIXED_BOXES` for every image (plus 13 low-scoring anchors), through a real conv."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        head = torch.zeros(4 + classes, 16)
        head[4:] = 1e-4
        for a, (x1, y1, x2, y2, c, s) in enumerate(FIXED_BOXES):
            head[:4, a] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
            head[4 + c, a] = s
        head[:4, len(FIXED_BOXES) :] = torch.tensor([16.0, 16.0, 2.0, 2.0])[:, None]
        # the second conv is wide enough to be quantized (Q/DQ in the INT8 graph), its output weighted by 0
        self.conv = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3)
        )
        self.register_buffer("head", head[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head + 0.0 * self.conv(x).mean(dim=(1, 2, 3)).reshape(-1, 1, 1)


@model("tiny_yolo")
def tiny_yolo(classes: int = 3, size: int = 32, seed: int | None = 0) -> torch.nn.Module:
    """A YOLOv8-style detector [batch, 4 + classes, anchors] on (N, 3, size, size), random init."""
    if seed is not None:
        torch.manual_seed(seed)
    return TinyYolo(classes, size).eval()


@model("fixed_boxes")
def fixed_boxes(classes: int = 3, seed: int | None = 0) -> torch.nn.Module:
    """The same three boxes (input pixels of a 32x32 input) for every image, as a YOLOv8 head."""
    if seed is not None:
        torch.manual_seed(seed)
    return FixedBoxes(classes).eval()


def letterbox_inverse(box: tuple[float, ...], w: int, h: int, size: int) -> list[float]:
    """A box in letterboxed input pixels -> original image pixels (Ultralytics' arithmetic, written again)."""
    r = min(size / w, size / h)
    nw, nh = round(w * r), round(h * r)
    left, top = (size - nw) // 2, (size - nh) // 2
    x1, y1, x2, y2 = box[:4]
    return [(x1 - left) * w / nw, (y1 - top) * h / nh, (x2 - left) * w / nw, (y2 - top) * h / nh]


def make_detection_folder(
    root: Path,
    sizes: tuple[tuple[int, int], ...] = ((48, 32), (32, 40), (64, 64), (40, 24)),
    fmt: str = "coco",
    input_size: int = 32,
    boxes: tuple[tuple[float, ...], ...] = FIXED_BOXES,
) -> Path:
    """Random PNG images of the given (width, height) with `boxes` (input pixels) mapped back as their labels,
    in COCO (`instances.json`) or YOLO (`STEM.txt`) form; returns `root`."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i, (w, h) in enumerate(sizes):
        name = f"img_{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(root / name)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        lines = []
        for b in boxes:
            x1, y1, x2, y2 = letterbox_inverse(b, w, h, input_size)
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(b[4]) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})  # fmt: skip
            lines.append(
                f"{int(b[4])} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            )
        if fmt == "yolo":
            (root / f"img_{i}.txt").write_text("\n".join(lines) + "\n")
    if fmt == "coco":
        cats = [{"id": c + 1, "name": f"class_{c}"} for c in range(3)]
        (root / "instances.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats})
        )
    return root


class TinySegmenter(torch.nn.Module):
    """Conv stem, a 1x1 class head and 2x nearest upsampling: [batch, classes, H, W] scores on (N, 3, H, W)."""

    def __init__(self, classes: int = 3, width: int = 8) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, classes, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(self.body(x), scale_factor=2.0, mode="nearest")


@model("tiny_segmenter")
def tiny_segmenter(classes: int = 3, seed: int | None = 0) -> torch.nn.Module:
    """Per-pixel class scores [batch, classes, H, W] (stride-2 convs, nearest upsampling), random init."""
    if seed is not None:
        torch.manual_seed(seed)
    return TinySegmenter(classes).eval()


def make_mask_folder(root: Path, count: int = 4, size: tuple[int, int] = (40, 32), classes: int = 3) -> Path:
    """Random PNG images (width, height) with PNG label masks in `masks/` (random rectangles, some 255)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(root / f"img_{i}.png")
        mask = np.zeros((h, w), np.uint8)
        for c in range(1, classes):
            x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            mask[y0 : y0 + h // 2, x0 : x0 + w // 2] = c
        mask[:2, :2] = 255
        Image.fromarray(mask, mode="L").save(root / "masks" / f"img_{i}.png")
    return root


@model("outlier_yolo")
def outlier_yolo(classes: int = 3, seed: int | None = 0) -> torch.nn.Module:
    """tiny_yolo whose head input has one channel at 1000 that the head ignores: a per-tensor INT8 scale for it
    (minmax) rounds the other channels to zero, so INT8 loses the boxes unless the head convs stay FP16."""
    net = tiny_yolo(classes, seed=seed)
    with torch.no_grad():
        last = net.stem[4]
        last.weight[0] = 0.0
        last.bias[0] = 1000.0
        net.box.weight.mul_(4.0)  # boxes and scores that vary from image to image
        net.cls.weight.mul_(4.0)
        net.box.weight[:, 0] = 0.0
        net.cls.weight[:, 0] = 0.0
    return net.eval()
