"""Wrap a PyTorch model with ModelOpt fake quantizers exactly where trtq's Q/DQ plan puts them.

The plan (`trtq.placement.plan_qdq` on the FP32 export) names ONNX nodes; the legacy exporter names a node
after the module scope it came from (`/layer1/layer1.0/conv1/Conv` -> module `layer1.0.conv1`), so each
quantized Conv/ConvTranspose/Gemm/MatMul node maps back to one torch module. Those modules get:

- a weight quantizer: int8, symmetric, per output channel (axis 0 for Conv and Linear, 1 for
  ConvTranspose), amax = max |w| per channel recomputed at every step (what `trtq.qdq.weight_scales`
  computes for PTQ);
- an input quantizer: int8, symmetric, per tensor, amax from a trtq calibrator (the user's method) fed
  with the module's FP32 input activations, batch by batch.

Every other quantizer ModelOpt inserts (BatchNorm, pooling, outputs, excluded layers) is disabled, so layers
the user or the sensitivity analysis keep in FP16 train unquantized.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import UsageError
from trtq.placement import QDQPlan, normalize
from trtq.qdq import MIN_SCALE

__all__ = ["QuantTarget", "QATModel", "quantize_model", "calibrate_inputs", "module_for_node"]

#: ONNX op type -> torch module classes (by name) that export to it.
_MODULE_KINDS = {
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


@dataclass
class QATModel:
    """A model wrapped for quantization-aware training.

    Attributes:
        model: the ModelOpt-quantized copy of the user's module (the user's module is left untouched).
        targets: the modules that carry enabled quantizers, in graph order.
        plan: the PTQ placement plan the targets were taken from.
        amax: activation tensor -> amax of the input quantizers reading it (set by `calibrate_inputs`).
    """

    model: Any
    targets: list[QuantTarget]
    plan: QDQPlan
    amax: dict[str, float] = field(default_factory=dict)

    def quantizers(self) -> Iterable[tuple[QuantTarget, Any, Any]]:
        """(target, input quantizer, weight quantizer) for every target."""
        modules = dict(self.model.named_modules())
        for t in self.targets:
            m = modules[t.module]
            yield t, m.input_quantizer, m.weight_quantizer

    def set_quantization(self, enabled: bool) -> None:
        """Turn every target's quantizers on (fake quantization) or off (FP32), e.g. for a quantization delay."""
        for _, iq, wq in self.quantizers():
            for q in (iq, wq):
                q.enable() if enabled else q.disable()


def module_for_node(node_name: str, modules: Mapping[str, Any], op_type: str) -> str | None:
    """The qualified name of the module an exported ONNX node came from, or None.

    The legacy exporter names nodes `/<scope>/<scope>/.../<OpType>`; a scope is either a module's full
    name (`layer1.0`, it has a dot) or a child name relative to the previous scope (`conv1`).

    Args:
        node_name: the ONNX node name.
        modules: qualified name -> module (from `named_modules()`).
        op_type: the node's op type; the module must be of a class that exports to it.
    """
    parts = [p for p in node_name.split("/") if p][:-1]
    if not parts:
        return None
    full = ""
    for part in parts:
        full = part if ("." in part or not full) else f"{full}.{part}"
    kinds = _MODULE_KINDS.get(op_type, ())
    for candidate in (full, parts[-1]):
        mod = modules.get(candidate)
        if mod is not None and any(type(mod).__name__ == k or _is_kind(mod, k) for k in kinds):
            return candidate
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
        if node is None or node.op_type not in _MODULE_KINDS:
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


def quantize_model(module: Any, fp32: onnx.ModelProto, plan: QDQPlan) -> QATModel:
    """A copy of `module` with ModelOpt quantizers on the layers `plan` quantizes, all others disabled.

    Input quantizers have no amax yet: call `calibrate_inputs` before training or exporting.

    Args:
        module: the user's FP32 `torch.nn.Module` (not modified).
        fp32: its FP32 ONNX export (the graph `plan` was made for).
        plan: `trtq.placement.plan_qdq(fp32, config)`.
    """
    import modelopt.torch.quantization as mtq

    targets = plan_targets(module, fp32, plan)
    model = copy.deepcopy(module)
    quant_cfg: list[dict[str, Any]] = [{"quantizer_name": "*", "enable": False}]
    for t in targets:
        quant_cfg.append(
            {"quantizer_name": f"{t.module}.weight_quantizer", "cfg": {"num_bits": 8, "axis": t.weight_axis}}
        )
        quant_cfg.append(
            {"quantizer_name": f"{t.module}.input_quantizer", "cfg": {"num_bits": 8, "axis": None}}
        )
    with contextlib.redirect_stdout(io.StringIO()):  # ModelOpt prints "Inserted N quantizers"
        model = mtq.quantize(model, {"quant_cfg": quant_cfg, "algorithm": None}, forward_loop=None)
    qm = QATModel(model=model, targets=targets, plan=plan)
    for t, iq, wq in qm.quantizers():
        if not (iq.is_enabled and wq.is_enabled):  # pragma: no cover - ModelOpt contract
            raise UsageError(f"ModelOpt did not quantize module {t.module!r}")
    return qm


def calibrate_inputs(
    qm: QATModel,
    batches: Iterable[np.ndarray],
    method: str = "entropy",
    *,
    percentile: float = 99.99,
    device: Any = "cpu",
) -> dict[str, float]:
    """Set every input quantizer's amax from a trtq calibrator fed with the FP32 input activations.

    Quantizers are off while the data runs (the activations are the FP32 model's, as in PTQ) and the model
    is in eval mode. A tensor read by several quantized modules is collected once and all its quantizers
    get the same amax, so the export has one Q/DQ pair per tensor, as PTQ has.

    Args:
        qm: from `quantize_model`.
        batches: float32 NCHW input batches.
        method: a registered trtq calibration method ("entropy", "minmax", "percentile", "mse").
        percentile: the percentile method's percentile.
        device: where the model runs.

    Returns:
        Activation tensor name -> amax (also stored in `qm.amax`).
    """
    import torch

    from trtq.calibrators import canonical_method, get_calibrator

    name = canonical_method(method)
    kwargs: dict[str, Any] = {"percentile": percentile} if name == "percentile" else {}
    try:
        calibrator = get_calibrator(name, **kwargs)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None

    modules = dict(qm.model.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = []
    for t in qm.targets:

        def hook(_mod: Any, args: tuple, tensor: str = t.tensor) -> None:
            if tensor not in seen:
                seen[tensor] = args[0].detach().float().cpu().numpy()

        handles.append(modules[t.module].register_forward_pre_hook(hook))
    was_training = qm.model.training
    qm.set_quantization(False)
    qm.model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                seen.clear()
                qm.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device))
                calibrator.collect(dict(seen))
    finally:
        for h in handles:
            h.remove()
        qm.set_quantization(True)
        qm.model.train(was_training)
    amax = calibrator.compute_amax()
    missing = [t.tensor for t in qm.targets if t.tensor not in amax]
    if missing:
        raise UsageError(f"calibration saw no data for tensor {missing[0]!r}; is the calibration data empty?")
    for t, iq, _ in qm.quantizers():
        value = float(amax[t.tensor])
        if not np.isfinite(value):
            raise UsageError(
                f"amax of tensor {t.tensor!r} is {value}; check the calibration data for NaN/Inf"
            )
        # the same floor trtq.qdq puts on PTQ scales (smallest positive FP16)
        iq.amax = torch.tensor(max(value, 127.0 * MIN_SCALE), dtype=torch.float32, device=device)
    qm.amax = {t.tensor: float(amax[t.tensor]) for t in qm.targets}
    return dict(qm.amax)
