"""From the Q/DQ plan's ONNX nodes back to the torch modules they were exported from.

The plan (`trtq.placement.plan_qdq` on the FP32 export) names ONNX nodes; the legacy exporter names a node
after the module scope it came from (`/layer1/layer1.0/conv1/Conv` -> module `layer1.0.conv1`), so each
quantized Conv/ConvTranspose/Gemm/MatMul node maps back to one torch module: a `QuantTarget`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnx

from trtq.errors import UsageError
from trtq.placement import QDQPlan, normalize

__all__ = ["MODULE_KINDS", "QuantTarget", "scope_path", "module_for_node", "module_call", "plan_targets"]

#: ONNX op type -> torch module classes (by name) that export to it.
MODULE_KINDS = {
    "Conv": ("Conv1d", "Conv2d", "Conv3d"),
    "ConvTranspose": ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
    "Gemm": ("Linear",),
    "MatMul": ("Linear",),
}


@dataclass(frozen=True)
class QuantTarget:
    """One torch module that trains with quantizers, and the ONNX names it corresponds to.

    Attributes:
        module: qualified torch module name (`layer1.0.conv1`).
        node: the ONNX node it exports to (`/layer1/layer1.0/conv1/Conv`).
        tensor: the ONNX activation tensor the node reads (its input quantizer's amax is calibrated on it).
        weight_axis: per-channel axis of the weight (the output-channel dimension).
    """

    module: str
    node: str
    tensor: str
    weight_axis: int


def scope_path(node_name: str) -> str:
    """The qualified module path of an exported node's scope (`/layer2/layer2.0/conv1/Conv` -> `layer2.0.conv1`).

    The legacy exporter names nodes `/<scope>/<scope>/.../<OpType>`, one scope per module level: the child's
    attribute name, written `<parent scope>.<index>` for children of a Sequential or ModuleList
    (`/layer2/layer2.0/downsample/downsample.0/Conv` -> `layer2.0.downsample.0`).
    """
    full, prev = "", ""
    for part in [p for p in node_name.split("/") if p][:-1]:
        rel = part[len(prev) + 1 :] if prev and part.startswith(prev + ".") else part
        full, prev = (f"{full}.{rel}" if full else rel), part
    return full


def module_for_node(node_name: str, modules: Mapping[str, Any], op_type: str) -> str | None:
    """The qualified name of the module an exported ONNX node came from, or None.

    Args:
        node_name: the ONNX node name (see `scope_path` for how scopes map to modules).
        modules: qualified name -> module (from `named_modules()`).
        op_type: the node's op type; the module must be of a class that exports to it.
    """
    full = scope_path(node_name)
    if not full:
        return None
    kinds = MODULE_KINDS.get(op_type, ())
    for candidate in (full, full.rsplit(".", 1)[-1]):
        mod = modules.get(candidate)
        if mod is not None and any(type(mod).__name__ == k or _is_kind(mod, k) for k in kinds):
            return candidate
    return None


def module_call(node_name: str, modules: Mapping[str, Any]) -> tuple[str, int] | None:
    """(module, call index) from an exported node's scope; repeated calls get `_1`, `_2`... (`relu_1`)."""
    full = scope_path(node_name)
    if not full:
        return None
    if full in modules:
        return full, 0
    head, _, suffix = full.rpartition("_")
    if suffix.isdigit() and head in modules:
        return head, int(suffix)
    return None


def _is_kind(mod: Any, kind: str) -> bool:
    import torch.nn as nn

    cls = getattr(nn, kind, None)
    return cls is not None and isinstance(mod, cls)


def _weight_axis(mod: Any) -> int:
    import torch.nn as nn

    return 1 if isinstance(mod, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0


def plan_targets(module: Any, fp32: onnx.ModelProto, plan: QDQPlan) -> list[QuantTarget]:
    """Map the plan's quantized weighted nodes to torch modules.

    Args:
        module: the FP32 torch module.
        fp32: its FP32 ONNX export (the graph `plan` was made for).
        plan: the Q/DQ plan.

    Raises:
        UsageError: a quantized node cannot be traced back to a Conv/Linear module (e.g. a functional
            `F.conv2d` call, or a module called from two places); exclude it or make it a module.
    """
    graph = normalize(fp32).graph
    nodes = {n.name: n for n in graph.node}
    inits = {t.name for t in graph.initializer}
    modules = dict(module.named_modules())
    targets: list[QuantTarget] = []
    used: dict[str, str] = {}
    for name in plan.quantized_nodes:
        node = nodes.get(name)
        if node is None or node.op_type not in MODULE_KINDS:
            continue
        if len(node.input) < 2 or node.input[1] not in inits:
            raise UsageError(
                f"QAT cannot simulate node {name!r} ({node.op_type} of two activations) with module "
                "quantizers; keep it out of INT8 with --exclude"
            )
        mod_name = module_for_node(name, modules, node.op_type)
        if mod_name is None:
            raise UsageError(
                f"QAT cannot map ONNX node {name!r} to a Conv/Linear module of the model (a functional call?); "
                "make it an nn.Module or keep it out of INT8 with --exclude"
            )
        if mod_name in used:
            raise UsageError(
                f"module {mod_name!r} is called more than once ({used[mod_name]!r} and {name!r}); QAT needs one "
                "module per quantized layer: exclude one of them"
            )
        used[mod_name] = name
        targets.append(QuantTarget(mod_name, name, node.input[0], _weight_axis(modules[mod_name])))
    if not targets:
        raise UsageError(
            "no layer of the model is quantized by the Q/DQ plan (all excluded?); nothing to train"
        )
    return targets
