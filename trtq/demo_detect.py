"""The offline detection demo: scenes of scikit-learn digits and a small anchor-free detector trained on them.

Scenes are grey canvases (`SCENE_SIZE` square, RGB) with one to four of scikit-learn's 8x8 handwritten digits
pasted at random positions and scales, each with its tight box; the digits of the held-out scenes are digits
the training scenes never show. `DigitsDetector` is a two-level (stride 8 and 16) anchor-free detector with
SiLU activations, a neck with an Upsample and two Concats, and an Ultralytics-v8-style output `[batch, 4 + 10,
anchors]`: boxes (cx, cy, w, h in input pixels, decoded in the graph from per-anchor distances) and the class
scores (Sigmoid) joined by one final Concat, the structure where INT8 hurts a detector. Training is
deterministic on the CPU (fixed seeds, one thread, deterministic algorithms).

The demo's folders and the `trtq demo --task detect` run are in `trtq.demo_detect_run`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "SCENE_SIZE",
    "NUM_CLASSES",
    "STRIDES",
    "Scenes",
    "make_scenes",
    "DigitsDetector",
    "TrainSettings",
    "train_detector",
    "detector_loss",
    "scenes_tensor",
]

#: Side of a scene in pixels (square, so the letterbox of `--preset yolo` at this size is the identity).
SCENE_SIZE = 96
NUM_CLASSES = 10
#: Strides of the detector's two output levels.
STRIDES = (8, 16)


@dataclass
class Scenes:
    """Scenes and their boxes: `images` uint8 `[n, H, W, 3]`; per scene `boxes` `[k, 4]` (x1, y1, x2, y2 in
    pixels) and `labels` `[k]` (digit class)."""

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]


def _digit_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as 0..1 floats, and the indices of the training and held-out digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(seed).permutation(len(d.images))
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64), order


def _resize(digit: np.ndarray, side: int) -> np.ndarray:
    """An 8x8 digit in 0..1 scaled to `side` x `side` (bilinear, through PIL: the same on every machine)."""
    from PIL import Image

    img = Image.fromarray(np.rint(digit * 255).astype(np.uint8), mode="L")
    return np.asarray(img.resize((side, side), Image.BILINEAR), dtype=np.float32) / 255.0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def make_scenes(count: int, *, held_out: bool = False, seed: int = 0, size: int = SCENE_SIZE) -> Scenes:
    """`count` scenes, the same for the same arguments on every machine.

    Args:
        count: number of scenes.
        held_out: use the 597 digits the training scenes never show (for calibration-free evaluation).
        seed: the scene seed (the digit split is fixed by seed 0, like `trtq.demo`).
        size: canvas side in pixels.
    """
    digits, targets, order = _digit_split(0)
    pool = order[1200:] if held_out else order[:1200]
    rng = np.random.default_rng([seed, 1 if held_out else 0])
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    all_boxes, all_labels = [], []
    for s in range(count):
        canvas = np.full((size, size, 3), rng.uniform(20, 70), dtype=np.float32)
        canvas += rng.normal(0, 6, (size, size, 1)).astype(np.float32)
        boxes: list[np.ndarray] = []
        labels: list[int] = []
        for _ in range(int(rng.integers(1, 5))):
            side = int(rng.integers(14, 37))
            i = int(rng.choice(pool))
            patch = _resize(digits[i], side)
            x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
            ys, xs = np.nonzero(patch > 0.25)
            box = np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1], np.float32)
            if any(_iou(box, b) > 0.1 for b in boxes):
                continue
            colour = rng.uniform(150, 255, 3).astype(np.float32)
            region = canvas[y0 : y0 + side, x0 : x0 + side]
            region[:] = region * (1 - patch[..., None]) + colour * patch[..., None]
            boxes.append(box)
            labels.append(int(targets[i]))
        images[s] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        all_boxes.append(np.stack(boxes).astype(np.float32))
        all_labels.append(np.array(labels, dtype=np.int64))
    return Scenes(images, all_boxes, all_labels)


def _conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


class DigitsDetector(nn.Module):
    """A small anchor-free detector: input `[batch, 3, 96, 96]` RGB / 255, output `[batch, 4 + 10, 180]`.

    Backbone to strides 8 (P3) and 16 (P4); a PAN neck (lateral conv, nearest Upsample, Concat, a strided
    conv back down, Concat); per level a box branch (four distances to the box sides, Softplus times the
    stride) and a class branch (logits). The forward pass decodes boxes to cx, cy, w, h in pixels and joins
    them with Sigmoid(class logits) in one Concat, as Ultralytics' v8 heads do.
    """

    def __init__(self, size: int = SCENE_SIZE, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        c1, c2, c3, c4 = 16, 32, 48, 64
        self.stem = _conv(3, c1, 3, 2)
        self.layer2 = nn.Sequential(_conv(c1, c2, 3, 2), _conv(c2, c2))
        self.layer3 = nn.Sequential(_conv(c2, c3, 3, 2), _conv(c3, c3))
        self.layer4 = nn.Sequential(_conv(c3, c4, 3, 2), _conv(c4, c4))
        self.lateral = _conv(c4, c3, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse3 = _conv(2 * c3, c3)
        self.down = _conv(c3, c3, 3, 2)
        self.fuse4 = _conv(2 * c3, c4)
        self.box = nn.ModuleList(nn.Sequential(_conv(c, c3), nn.Conv2d(c3, 4, 1)) for c in (c3, c4))
        self.cls = nn.ModuleList(nn.Sequential(_conv(c, c3), nn.Conv2d(c3, num_classes, 1)) for c in (c3, c4))
        centres, strides = [], []
        for s in STRIDES:
            n = size // s
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            centres.append(torch.stack([xs.flatten(), ys.flatten()]).float().add(0.5).mul(s))
            strides.append(torch.full((1, n * n), float(s)))
        self.register_buffer("anchors", torch.cat(centres, 1)[None], persistent=False)  # [1, 2, A]
        self.register_buffer("strides", torch.cat(strides, 1)[None], persistent=False)  # [1, 1, A]

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-anchor side distances in pixels `[b, 4, A]` (left, top, right, bottom) and class logits."""
        p3 = self.layer3(self.layer2(self.stem(x)))
        p4 = self.layer4(p3)
        lat = self.lateral(p4)
        n3 = self.fuse3(torch.cat([self.up(lat), p3], 1))
        n4 = self.fuse4(torch.cat([self.down(n3), lat], 1))
        dist = torch.cat([self.box[i](f).flatten(2) for i, f in enumerate((n3, n4))], 2)
        logits = torch.cat([self.cls[i](f).flatten(2) for i, f in enumerate((n3, n4))], 2)
        return F.softplus(dist) * self.strides, logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist, logits = self.raw(x)
        lt, rb = dist[:, :2], dist[:, 2:]
        centre = self.anchors + (rb - lt) / 2
        return torch.cat([centre, lt + rb, logits.sigmoid()], 1)


def _xyxy(anchors: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """[A, 2] centres and [A, 4] distances -> [A, 4] boxes x1, y1, x2, y2."""
    return torch.cat([anchors - dist[:, :2], anchors + dist[:, 2:]], 1)


def detector_loss(
    model: DigitsDetector, images: torch.Tensor, boxes: list[torch.Tensor], labels: list[torch.Tensor]
) -> torch.Tensor:
    """The training loss: anchors inside a box and near its centre are its positives (the smallest box wins);
    GIoU on their boxes, and BCE on the class scores with the predicted box's IoU as the positive target."""
    from torchvision.ops import box_iou, generalized_box_iou_loss

    dist, logits = model.raw(images)
    anchors, strides = model.anchors[0].T, model.strides[0, 0]
    target = torch.zeros_like(logits)
    box_losses, positives = [], 0
    for b in range(len(images)):
        gt = boxes[b]
        centre = (gt[:, :2] + gt[:, 2:]) / 2
        inside = ((anchors[:, None] > gt[None, :, :2]) & (anchors[:, None] < gt[None, :, 2:])).all(2)
        near = ((anchors[:, None] - centre[None]).abs() < 1.5 * strides[:, None, None]).all(2)
        area = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[None].expand(len(anchors), -1)
        cost = torch.where(inside & near, area, torch.full_like(area, float("inf")))
        best, which = cost.min(1)
        pos = torch.isfinite(best)
        if not pos.any():
            continue
        pred = _xyxy(anchors[pos], dist[b, :, pos].T)
        matched = gt[which[pos]]
        box_losses.append(generalized_box_iou_loss(pred, matched, reduction="sum"))
        iou = box_iou(pred.detach(), matched).diagonal().clamp(0)
        target[b, labels[b][which[pos]], pos.nonzero()[:, 0]] = iou
        positives += int(pos.sum())
    norm = max(positives, 1)
    cls_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / norm
    return cls_loss + 2.0 * torch.stack(box_losses).sum() / norm


@dataclass
class TrainSettings:
    """How the demo detector is trained: scenes, epochs, batch, learning rate, seed."""

    scenes: int = 2000
    epochs: int = 10
    batch: int = 32
    lr: float = 4e-3
    seed: int = 0

    def key(self) -> str:
        """A name for these settings (the weights cache is keyed by it)."""
        return f"s{self.scenes}-e{self.epochs}-b{self.batch}-lr{self.lr:g}-seed{self.seed}"


def scenes_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 `[n, H, W, 3]` -> float `[n, 3, H, W]` RGB / 255 (what `--preset yolo` feeds the model)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def train_detector(settings: TrainSettings, progress: Any = None) -> tuple[DigitsDetector, float]:
    """Train `DigitsDetector` deterministically on `settings.scenes` training scenes.

    Args:
        settings: the training budget and seed.
        progress: optional callable `progress(done, total)` called after each step.

    Returns:
        The model in eval mode and the training time in seconds.
    """
    from trtq.progress import track

    scenes = make_scenes(settings.scenes, seed=settings.seed)
    x = scenes_tensor(scenes.images)
    boxes = [torch.from_numpy(b) for b in scenes.boxes]
    labels = [torch.from_numpy(v) for v in scenes.labels]
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)  # bitwise-reproducible training
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    try:
        torch.manual_seed(settings.seed)
        model = DigitsDetector()
        steps = settings.epochs * ((len(x) + settings.batch - 1) // settings.batch)
        opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=settings.lr, total_steps=steps, pct_start=0.15
        )
        gen = torch.Generator().manual_seed(settings.seed)
        model.train()
        done = 0
        for epoch in range(settings.epochs):
            perm = torch.randperm(len(x), generator=gen).tolist()
            batches = range(0, len(x), settings.batch)
            for i in track(batches, f"training the demo detector, epoch {epoch + 1}/{settings.epochs}"):
                b = perm[i : i + settings.batch]
                loss = detector_loss(model, x[b], [boxes[j] for j in b], [labels[j] for j in b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                done += 1
                if progress is not None:
                    progress(done, steps)
        model.eval()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return model, time.perf_counter() - start
