"""Activation samples the calibrator tests threshold: the zoo's `activation_samples()` (tests/zoo/data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import zoo


@pytest.fixture(scope="session")
def samples() -> dict[str, np.ndarray]:
    """name -> 200 000 float32 activations (Student-t 3, Laplace, bimodal, ReLU-like, a conv net's real ones)."""
    return zoo.activation_samples()
