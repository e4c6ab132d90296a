"""The model the calibration tests run: the zoo's tiny_cnn exported (x: (b, 3, 16, 16) -> y: (b, 10))."""

from __future__ import annotations

import pytest


@pytest.fixture
def convnet(onnx_graph):
    """The zoo's tiny_cnn exported (a fresh copy per test)."""
    return onnx_graph("tiny_cnn")
