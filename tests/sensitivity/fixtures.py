"""Models and thresholds the sensitivity and fallback tests share (a pytest plugin: tests/conftest.py loads it).

- `digits_eval`: the trained demo DigitsNet (12 epochs), 256 validation images and their labels;
- `demo`: it exported, thresholds at 0.3x max |x| (INT8 clips hard and loses accuracy);
- `outlier`: the zoo's `digits_outlier` exported (one huge outlier channel before `/conv2/conv2.0/Conv`) with
  max |x| thresholds, and `outlier_ranking`, its sensitivity analysis;
- `resnet`: a randomly initialised torchvision resnet18 (10 classes) at 32x32 with max |x| thresholds.

Thresholds come from `minmax_amax`, an independent calibration (ONNX Runtime extra outputs, numpy max).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trtq.runners.onnxrt import OnnxRuntimeRunner

__all__ = ["OUTLIER_LAYER", "minmax_amax", "run_all"]

#: The layer whose input carries the outlier channel in `digits_outlier`.
OUTLIER_LAYER = "/conv2/conv2.0/Conv"


def minmax_amax(
    fp32: onnx.ModelProto, x: np.ndarray, tensors: list[str], scale: float = 1.0
) -> dict[str, float]:
    """Independent calibration: max |x| of each activation over the data (ONNX Runtime extra outputs)."""
    amax: dict[str, float] = {}
    with OnnxRuntimeRunner(fp32, extra_outputs=[t for t in tensors if t != "input"]) as r:
        for i in range(0, len(x), 64):
            out = r.infer({"input": x[i : i + 64]})
            out["input"] = x[i : i + 64]
            for t in tensors:
                amax[t] = max(amax.get(t, 0.0), float(np.abs(out[t]).max()))
    return {t: v * scale for t, v in amax.items()}


def run_all(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The first output of `model` on all of `x` (batches of 64, ONNX Runtime, Q/DQ as written)."""
    with OnnxRuntimeRunner(model) as r:
        return np.concatenate(
            [next(iter(r.infer({"input": x[i : i + 64]}).values())) for i in range(0, len(x), 64)]
        )


@pytest.fixture(scope="session")
def digits_eval(trained_digits):
    """(trained DigitsNet, 256 validation images, their labels)."""
    from tests.zoo import normalise_digits

    model, _, images, labels = trained_digits(12)
    return model, normalise_digits(images[:256]), labels[:256]


@pytest.fixture(scope="session")
def demo(digits_eval):
    """The demo model exported, with thresholds at 0.3x max |x|: INT8 clips hard and loses accuracy."""
    from trtq.export import export_onnx
    from trtq.placement import normalize, plan_qdq

    model, x, y = digits_eval
    fp32 = normalize(export_onnx(model, x[:2]).model)
    plan = plan_qdq(fp32)
    return fp32, minmax_amax(fp32, x, plan.activations, scale=0.3), x, y


@pytest.fixture(scope="session")
def outlier(digits_eval, make_model):
    """The demo model with a huge outlier channel at the input of one convolution (same FP32 function)."""
    import torch

    from trtq.export import export_onnx
    from trtq.placement import normalize, plan_qdq

    model, x, _ = digits_eval
    net = make_model("digits_outlier")
    with torch.no_grad():
        assert torch.allclose(net(torch.from_numpy(x)), model(torch.from_numpy(x)), atol=1e-3)
    fp32 = normalize(export_onnx(net, x[:2]).model)
    plan = plan_qdq(fp32)
    return fp32, minmax_amax(fp32, x, plan.activations), x


@pytest.fixture(scope="session")
def outlier_ranking(outlier):
    from trtq.progress import set_quiet
    from trtq.sensitivity import analyze_sensitivity

    fp32, amax, x = outlier
    set_quiet(True)
    try:
        return analyze_sensitivity(fp32, amax, x, batch_size=64, alone_int8=True)
    finally:
        set_quiet(False)


@pytest.fixture(scope="session")
def resnet(make_model):
    """A randomly initialised torchvision resnet18 (10 classes) at 32x32, exported, with max |x| thresholds."""
    from trtq.export import export_onnx
    from trtq.placement import normalize, plan_qdq

    net = make_model("resnet18", num_classes=10)
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    fp32 = normalize(export_onnx(net, x[:2]).model)
    return fp32, minmax_amax(fp32, x, plan_qdq(fp32).activations), x
