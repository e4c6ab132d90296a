"""`trtq.finetune.targets`: from the exporter's node names back to the torch modules."""

from __future__ import annotations

import pytest
import torch

from trtq.errors import UsageError
from trtq.finetune.targets import module_call, module_for_node, plan_targets


def test_module_for_node_follows_the_exporters_scope_names() -> None:
    inner = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    net = torch.nn.Module()
    net.layer1 = torch.nn.Sequential(torch.nn.Module())
    net.layer1[0].conv1 = torch.nn.Conv2d(3, 8, 3)
    net.layer1[0].downsample = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1))
    net.stem = inner
    net.head = torch.nn.Linear(8, 2)
    modules = dict(net.named_modules())
    assert module_for_node("/layer1/layer1.0/conv1/Conv", modules, "Conv") == "layer1.0.conv1"
    assert (
        module_for_node("/layer1/layer1.0/downsample/downsample.0/Conv", modules, "Conv")
        == "layer1.0.downsample.0"
    )
    assert module_for_node("/stem/stem.0/Conv", modules, "Conv") == "stem.0"
    assert module_for_node("/head/Gemm", modules, "Gemm") == "head"
    assert module_for_node("/stem/stem.1/Relu", modules, "Conv") is None  # not a weighted module
    assert module_for_node("/Conv", modules, "Conv") is None  # functional call: no scope
    # repeated calls of one module are numbered by the exporter
    assert module_call("/stem/stem.1_1/Relu", modules) == ("stem.1", 1)
    assert module_call("/stem/stem.1/Relu", modules) == ("stem.1", 0)


class _Functional(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8, 1, 3, 3))

    def forward(self, x):
        return torch.nn.functional.conv2d(x, self.w).flatten(1)


def test_a_quantized_node_without_a_module_is_refused_naming_it() -> None:
    from trtq.export import export_onnx, resolve_model
    from trtq.placement import PlacementConfig, plan_qdq

    net = _Functional().eval()
    fp32 = export_onnx(resolve_model(net), torch.zeros(2, 1, 8, 8).numpy()).model
    plan = plan_qdq(fp32, PlacementConfig(disable_rules=("SmallConv",)))
    with pytest.raises(UsageError, match="cannot map ONNX node '/Conv'.*--exclude"):
        plan_targets(net, fp32, plan)
