"""What the calibration tests calibrate: the activations of the zoo's tiny_cnn and seeded random batches for it."""

from __future__ import annotations

import numpy as np
import onnx

__all__ = ["activations", "batches"]


def activations(model: onnx.ModelProto) -> list[str]:
    """The input and every Relu / Flatten output of the model (the tensors these tests calibrate)."""
    return ["x"] + [n.output[0] for n in model.graph.node if n.op_type in ("Relu", "Flatten")]


def batches(n: int = 6, bs: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`n` feed dicts {"x": (bs, 3, 16, 16) standard normal}."""
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((bs, 3, 16, 16)).astype(np.float32)} for _ in range(n)]
