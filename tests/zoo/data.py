"""Data the tests run on: scikit-learn's digits (real, offline), image folders written on the fly, activation samples.

The digits arrays are computed here the way `trtq.demo` prepares them (grey levels 0..16 -> 0..255, then
(x / 255 - 0.5) / 0.5), so the tests do not reach into the demo's private helpers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Digits",
    "digits",
    "normalise_digits",
    "trained_digits",
    "make_image_folder",
    "ACTIVATION_KINDS",
    "activation_samples",
]


@dataclass(frozen=True)
class Digits:
    """scikit-learn's 1797 digits: uint8 images (N, 8, 8) and int64 labels."""

    images: np.ndarray
    labels: np.ndarray

    def x(self, n: int | None = None) -> np.ndarray:
        """The first `n` images normalised like the demo, as (n, 1, 8, 8) float32."""
        return normalise_digits(self.images[:n])


def normalise_digits(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 8, 8) -> float32 (N, 1, 8, 8) in [-1, 1], the demo model's input."""
    return ((images.astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]


@functools.cache
def digits() -> Digits:
    """The whole digits set (what `trtq.demo` trains and calibrates on)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    imgs.setflags(write=False)
    labels = d.target.astype(np.int64)
    labels.setflags(write=False)
    return Digits(imgs, labels)


@functools.cache
def trained_digits(epochs: int = 12, seed: int = 0) -> tuple[object, float, np.ndarray, np.ndarray]:
    """`trtq.demo.train_digits(seed, epochs)`, trained once per process: (model, val accuracy, val images, labels).

    The model is shared: a test that changes it must change a `copy.deepcopy` of it.
    """
    from trtq.demo import train_digits

    return train_digits(seed=seed, epochs=epochs)


def make_image_folder(
    root: Path, classes: int = 2, per_class: int = 3, size: int = 40, mode: str = "RGB"
) -> Path:
    """Write `classes` sub-folders `class_<i>` of `per_class` random PNG images (size x size+8); returns `root`."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            chans = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
            arr = rng.integers(0, 256, size=(size, size + 8, chans), dtype=np.uint8)
            img = Image.fromarray(arr[:, :, 0] if chans == 1 else arr, mode=mode)
            img.save(d / f"img_{i}.png")
    return root


#: The activation distributions of `activation_samples()`.
ACTIVATION_KINDS = ("bimodal", "conv_out", "laplace", "relu_normal", "relu_out", "student_t3")


@functools.cache
def activation_samples(n: int = 200_000) -> dict[str, np.ndarray]:
    """float32 activations to calibrate: heavy-tailed (Student-t 3, Laplace), bimodal, ReLU-like, and the signed
    pre-activations (conv_out) and post-ReLU outputs (relu_out) of the zoo's `two_convs` on 16 random 32x32 images."""
    import torch

    from tests.zoo.models import two_convs

    rng = np.random.default_rng(0)
    out = {
        "student_t3": rng.standard_t(3, n),
        "laplace": rng.laplace(size=n),
        "bimodal": np.concatenate([rng.normal(-3, 0.5, n // 2), rng.normal(5, 1, n // 2)]),
        "relu_normal": np.maximum(rng.standard_normal(n), 0),
    }
    net = two_convs()
    x = torch.randn(16, 3, 32, 32)  # drawn right after the seeded construction, as before
    with torch.no_grad():
        pre = net(x)
    out.update({"conv_out": pre.numpy().ravel(), "relu_out": torch.relu(pre).numpy().ravel()})
    samples = {k: v.astype(np.float32) for k, v in out.items()}
    for v in samples.values():
        v.setflags(write=False)
    assert tuple(sorted(samples)) == ACTIVATION_KINDS
    return samples
