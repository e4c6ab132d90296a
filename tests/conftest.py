"""Shared fixtures: small real data (scikit-learn digits) and image folders made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_image_folder(
    root: Path, classes: int = 2, per_class: int = 3, size: int = 40, mode: str = "RGB"
) -> Path:
    """Write `classes` sub-folders of random images; returns `root`."""
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


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real data that ships with scikit-learn: digits as (N, 1, 8, 8), normalised like the demo, with labels."""
    from trtq.demo import _digits_uint8, _normalise

    imgs, labels = _digits_uint8()
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(path, x=_normalise(imgs[:256]), y=labels[:256])
    return path
