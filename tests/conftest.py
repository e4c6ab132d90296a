"""Shared fixtures: the zoo's models and graphs (tests/zoo), real data (scikit-learn digits), image folders, and
a fake TensorRT. Anything trained or exported is built once per session.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import zoo

pytest_plugins = ["tests.sensitivity.fixtures"]


@pytest.fixture(scope="session")
def make_model() -> Callable[..., Any]:
    """`make_model(name, **kw)`: a new torch model from the zoo (eval mode, seeded)."""
    return zoo.make_model


@pytest.fixture(scope="session")
def onnx_graph() -> Callable[..., Any]:
    """`onnx_graph(name, **kw)`: a fresh copy of a zoo ONNX graph (`onnx.ModelProto`)."""
    return zoo.onnx_graph


@pytest.fixture(scope="session")
def graph_file() -> Callable[..., Path]:
    """`graph_file(name, path, **kw)`: a zoo ONNX graph written to `path`."""
    return zoo.graph_file


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """`image_folder(name="images", classes=2, per_class=3, size=40, mode="RGB")`: random PNGs in class folders."""

    def make(name: str = "images", **kwargs: Any) -> Path:
        return zoo.make_image_folder(tmp_path / name, **kwargs)

    return make


@pytest.fixture(scope="session")
def digits() -> zoo.Digits:
    """scikit-learn's digits: `.images` (1797, 8, 8) uint8, `.labels`, `.x(n)` normalised like the demo."""
    return zoo.digits()


@pytest.fixture(scope="session")
def trained_digits() -> Callable[..., tuple]:
    """`trained_digits(epochs=12)`: (trained DigitsNet, val accuracy, val images, val labels), trained once."""
    return zoo.trained_digits


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory, digits: zoo.Digits) -> Path:
    """Real data that ships with scikit-learn: 256 digits as (N, 1, 8, 8), normalised like the demo, with labels."""
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(path, x=digits.x(256), y=digits.labels[:256])
    return path


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory: pytest.TempPathFactory, digits: zoo.Digits) -> tuple[Path, Path, Path]:
    """A DigitsNet trained 6 epochs (TorchScript), 256 calibration samples (.npy) and 300 labelled eval samples."""
    import torch

    root = tmp_path_factory.mktemp("digits_model")
    model, _, val_imgs, val_labels = zoo.trained_digits(epochs=6)
    ts = root / "digits.ts"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(ts))
    np.save(root / "calib.npy", digits.x(256))
    np.savez(root / "val.npz", x=zoo.normalise_digits(val_imgs[:300]), y=val_labels[:300])
    return ts, root / "calib.npy", root / "val.npz"


@pytest.fixture(scope="session")
def untrained_digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained DigitsNet (seed 0) as TorchScript and 16 random samples (.npy)."""
    import torch

    root = tmp_path_factory.mktemp("tiny")
    ts = root / "net.ts"
    torch.jit.save(torch.jit.trace(zoo.make_model("digits_net"), torch.zeros(1, 1, 8, 8)), str(ts))
    data = root / "data.npy"
    np.save(data, np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32))
    return ts, data


@pytest.fixture
def fake_tensorrt(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """`fake_tensorrt(version="11.4.0")`: install tests/trt_stub's recording stand-in as `tensorrt`; returns it.

    The fake's names are checked against the real bindings (tests/engines/test_compat_contract.py); tests using it
    pin what trtq asks TensorRT to do, never what TensorRT does with it.
    """
    from tests.trt_stub.fake_tensorrt import make_fake
    from trtq.engines import cuda

    def install(version: str = "11.4.0") -> Any:
        mod = make_fake(version)
        monkeypatch.setitem(sys.modules, "tensorrt", mod)
        # a stand-in GPU: the CUDA driver probe answers one device (trtq.engines.cuda is tested on its own)
        monkeypatch.setattr(cuda, "probe_driver", lambda: cuda.CudaDriver(True, 0, 1, (13, 0)))
        return mod

    return install
