"""The offline demo: a small CNN trained deterministically on scikit-learn's handwritten digits.

scikit-learn ships the UCI digits set (1797 grey 8x8 images, 10 classes), so the demo needs no network.
`prepare_demo(out)` writes, under `out`:

- `data/calib/` : 300 training images (flat folder; calibration needs no labels),
- `data/train/<digit>/` : the 1200 training images with labels (for `trtq qat`),
- `data/val/<digit>/` : 597 held-out images, one sub-folder per class (labels for accuracy),
- `digits_cnn.ts` : the trained model as TorchScript (what `trtq build --model` loads),
- `digits_cnn.pt` : its state dict (for `--model trtq.demo:DigitsNet --checkpoint ...`),

and `run_demo(out)` then runs `trtq build` on it and returns the result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "DigitsNet",
    "prepare_demo",
    "run_demo",
    "DemoFiles",
    "DemoResult",
    "DEMO_PREPROCESS",
    "demo_build_command",
]

#: Preprocessing that matches how the demo model was trained: grey 8x8, pixels / 255, mean 0.5, std 0.5.
DEMO_PREPROCESS = {"size": 8, "resize": None, "mean": (0.5,), "std": (0.5,), "channels": 1}


class DigitsNet(nn.Module):
    """The demo architecture: conv stem, a residual block, pooling, a wider conv, global pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.conv1 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.conv2(self.conv1(x)))
        x = self.conv3(self.pool(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@dataclass
class DemoFiles:
    root: Path
    model: Path
    state_dict: Path
    calib: Path
    val: Path
    train: Path
    train_seconds: float
    fp32_val_accuracy_torch: float


def _digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 -> 0..255 grey levels, exactly what the PNG files hold
    imgs = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    return imgs, d.target.astype(np.int64)


def _normalise(imgs: np.ndarray) -> np.ndarray:
    return ((imgs.astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]


def train_digits(seed: int = 0, epochs: int = 12) -> tuple[Any, float, np.ndarray, np.ndarray]:
    """Train DigitsNet deterministically; returns (model, val accuracy, val images, val labels)."""
    import time

    import torch

    imgs, labels = _digits_uint8()
    order = np.random.default_rng(seed).permutation(len(imgs))
    train_idx, val_idx = order[:1200], order[1200:]
    x = torch.from_numpy(_normalise(imgs[train_idx]))
    y = torch.from_numpy(labels[train_idx])
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise-reproducible training
    try:
        model = DigitsNet()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=3e-3, total_steps=epochs * ((len(x) + 63) // 64)
        )
        gen = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), 64):
                b = perm[i : i + 64]
                loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        with torch.no_grad():
            pred = model(torch.from_numpy(_normalise(imgs[val_idx]))).argmax(1).numpy()
        acc = float(np.mean(pred == labels[val_idx]))
        _ = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return model, acc, imgs[val_idx], labels[val_idx]


def prepare_demo(out: str | os.PathLike, seed: int = 0) -> DemoFiles:
    """Write the demo's data folders and trained model under `out` (see module doc)."""
    import time

    import torch
    from PIL import Image

    from trtq.files import atomic_path

    root = Path(out)
    start = time.perf_counter()
    model, acc, _, _ = train_digits(seed)
    train_s = time.perf_counter() - start
    imgs, labels = _digits_uint8()
    order = np.random.default_rng(seed).permutation(len(imgs))
    calib_dir, val_dir, train_dir = root / "data" / "calib", root / "data" / "val", root / "data" / "train"
    calib_dir.mkdir(parents=True, exist_ok=True)
    for rank, i in enumerate(order[:300]):
        Image.fromarray(imgs[i], mode="L").save(calib_dir / f"digit_{rank:04d}.png")
    for rank, i in enumerate(order[:1200]):  # labelled training images, for `trtq qat`
        d = train_dir / str(int(labels[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(imgs[i], mode="L").save(d / f"train_{rank:04d}.png")
    for rank, i in enumerate(order[1200:]):
        d = val_dir / str(int(labels[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(imgs[i], mode="L").save(d / f"val_{rank:04d}.png")
    ts_path, sd_path = root / "digits_cnn.ts", root / "digits_cnn.pt"
    with atomic_path(ts_path) as tmp:
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(tmp))
    with atomic_path(sd_path) as tmp:
        torch.save(model.state_dict(), str(tmp))
    return DemoFiles(root, ts_path, sd_path, calib_dir, val_dir, train_dir, train_s, acc)


def demo_build_command(files: DemoFiles, out: Path, calib: str = "entropy") -> list[str]:
    """The `trtq build` command line the demo runs (printed so users can run it themselves)."""
    p = DEMO_PREPROCESS
    return [
        "trtq", "build", "--model", str(files.model), "--calib", calib,
        "--calib-data", str(files.calib), "--eval-data", str(files.val),
        "--channels", str(p["channels"]), "--size", str(p["size"]), "--no-resize",
        "--mean", ",".join(map(str, p["mean"])), "--std", ",".join(map(str, p["std"])),
        "--out", str(out),
    ]  # fmt: skip


@dataclass
class DemoResult:
    """What `run_demo` did: the demo files, the `trtq build` result, and the command that repeats the build."""

    files: DemoFiles
    build: Any
    command: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.build.to_json(),
            "demo": {
                "train_seconds": round(self.files.train_seconds, 2),
                "torch_fp32_val_accuracy": self.files.fp32_val_accuracy_torch,
                "command": self.command,
            },
        }


def run_demo(
    out: str | os.PathLike, *, calib: str = "entropy", force: bool = False, seed: int = 0
) -> DemoResult:
    """Prepare the demo under `out/` and build it into `out/run`."""
    from trtq.data import Preprocess
    from trtq.pipeline import build
    from trtq.rundir import finish_in_place, prepare_out_dir, record

    root = prepare_out_dir(out, force, command="demo")
    record(root / "demo")  # the demo's own files, before the first one is written
    files = prepare_demo(root / "demo", seed=seed)
    pre = Preprocess(**DEMO_PREPROCESS)
    result = build(
        str(files.model), calib_data=str(files.calib), eval_data=str(files.val), out=root / "run", calib=calib,
        preprocess=pre, seed=seed,
    )  # fmt: skip
    finish_in_place(root)
    return DemoResult(files, result, demo_build_command(files, root / "run", calib))
