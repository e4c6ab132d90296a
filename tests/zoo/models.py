"""Tiny torch models the tests build, quantize and export, and `export_model`, the one export they share.

Each builder seeds torch itself (`seed=None` keeps the caller's random state, for tests that build several
models from one seed in a row), so the same arguments give the same weights in every test.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.zoo.registry import model

__all__ = ["export_model", "FeaturesAndTokens", "ThreeOutputs"]


def _seed(seed: int | None) -> None:
    if seed is not None:
        torch.manual_seed(seed)


@model("tiny_cnn")
def tiny_cnn(widths: tuple[int, int] = (8, 8), classes: int = 10, seed: int | None = 0) -> torch.nn.Module:
    """Conv(3->w0) ReLU Conv(w0->w1) ReLU, global average pool, Linear(w1->classes); inputs (N, 3, 16, 16)."""
    _seed(seed)
    w0, w1 = widths
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, w0, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(w0, w1, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(w1, classes),
    )


@model("two_convs")
def two_convs(seed: int | None = 0) -> torch.nn.Module:
    """Conv(3->16) ReLU Conv(16->16), 3x3 same padding: signed pre-activations for calibrator tests."""
    _seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1)
    )


@model("digits_net")
def digits_net(seed: int | None = 0) -> torch.nn.Module:
    """The demo's DigitsNet (conv stem, residual block, max pool, conv, linear), random init; (N, 1, 8, 8)."""
    from trtq.demo import DigitsNet

    _seed(seed)
    return DigitsNet()


@model("resnet18")
def resnet18(num_classes: int = 1000, seed: int | None = 0) -> torch.nn.Module:
    """torchvision resnet18, random init (residual Adds, max pool, a Gemm head)."""
    import torchvision

    _seed(seed)
    return torchvision.models.resnet18(num_classes=num_classes)


@model("mobilenet_v2")
def mobilenet_v2(seed: int | None = 0) -> torch.nn.Module:
    """torchvision mobilenet_v2, random init (depthwise convs, ReLU6)."""
    import torchvision

    _seed(seed)
    return torchvision.models.mobilenet_v2()


@model("efficientnet_b0")
def efficientnet_b0(seed: int | None = 0) -> torch.nn.Module:
    """torchvision efficientnet_b0, random init (SiLU, squeeze-excitation)."""
    import torchvision

    _seed(seed)
    return torchvision.models.efficientnet_b0()


@model("tiny_vit")
def tiny_vit(seed: int | None = 0) -> torch.nn.Module:
    """torchvision VisionTransformer: 64x64 images, 16x16 patches, 2 layers, 4 heads, width 64, 10 classes."""
    from torchvision.models.vision_transformer import VisionTransformer

    _seed(seed)
    return VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    )


class FeaturesAndTokens(torch.nn.Module):
    """Two inputs: float features (N, 4) and int64 token ids (N, 6) through an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 4)
        self.proj = torch.nn.Linear(4, 3)

    def forward(self, features: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        return self.proj(features + self.embed(token_ids).mean(1))


@model("features_and_tokens")
def features_and_tokens(seed: int | None = 0) -> torch.nn.Module:
    """Two inputs, float features (N, 4) and int64 token ids (N, 6) in [0, 50), one output (N, 3)."""
    _seed(seed)
    return FeaturesAndTokens()


class ThreeOutputs(torch.nn.Module):
    """x -> (2x, {"sum": x.sum(1), "max": x.amax(1)}): nested outputs."""

    def forward(self, x: torch.Tensor) -> tuple:
        return x * 2, {"sum": x.sum(1), "max": x.amax(1)}


@model("three_outputs")
def three_outputs() -> torch.nn.Module:
    """No weights: x (N, K) -> (2x, {"sum": sum over axis 1, "max": max over axis 1}), three outputs nested."""
    return ThreeOutputs()


def export_model(
    module: torch.nn.Module,
    sample: np.ndarray | torch.Tensor | Sequence[Any],
    path: str | Path | None = None,
    *,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] | None = ("logits",),
    dynamic: str | None = "batch",
    opset: int = 17,
) -> Any:
    """The legacy (TorchScript) ONNX export the tests compare against; returns the `onnx.ModelProto`.

    Args:
        module: the model (exported in eval mode).
        sample: one example input (array or tensor), or a sequence of them for several inputs.
        path: also write the file here.
        input_names, output_names: graph I/O names (`output_names=None`: the exporter's own).
        dynamic: the name of a dynamic batch axis on every input and output, or None for a static graph.
        opset: ONNX opset.
    """
    import onnx

    samples = sample if isinstance(sample, (list, tuple)) else [sample]
    args = tuple(torch.as_tensor(np.asarray(s)) if not isinstance(s, torch.Tensor) else s for s in samples)
    names = list(input_names) + list(output_names or [])
    axes: Mapping[str, Any] | None = {n: {0: dynamic} for n in names} if dynamic else None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args if len(args) > 1 else args[0],
            buf,
            input_names=list(input_names),
            output_names=None if output_names is None else list(output_names),
            dynamic_axes=axes,
            dynamo=False,
            opset_version=opset,
        )
    proto = onnx.load_from_string(buf.getvalue())
    if path is not None:
        Path(path).write_bytes(buf.getvalue())
    return proto


@model("digits_outlier")
def digits_outlier(scale: float = 1000.0, epochs: int = 12) -> torch.nn.Module:
    """The trained DigitsNet made sensitive at `/conv2/conv2.0/Conv`: BatchNorm channel 0 of conv1 scaled by `scale`
    before its ReLU, conv2 reading that channel `scale` times weaker (the same function; one huge outlier channel)."""
    import copy

    from tests.zoo.data import trained_digits

    net = copy.deepcopy(trained_digits(epochs)[0])
    with torch.no_grad():
        bn = net.conv1[1]
        bn.weight[0] *= scale
        bn.bias[0] *= scale
        net.conv2[0].weight[:, 0] /= scale
    return net
