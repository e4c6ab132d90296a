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

The plan also quantizes tensors for readers that are not modules with weights: the residual input of an
Add TensorRT fuses into a convolution, the input of a pooling that continues an INT8 chain. Such a tensor
gets an *output* quantizer on the module call that produces it (found by value: the call whose output
equals the tensor in the FP32 ONNX graph; for a convolution whose BatchNorm the export folded, that is the
BatchNorm call), provided every reader of the tensor reads it quantized in the PTQ graph. Then the training
graph computes what the deployed graph computes; a conv reading the same tensor re-quantizes it with the
same scale, which changes nothing. Tensors without such a call (produced by a functional op in a
`forward`) are quantized at export only (`trtq.finetune.graph.align_to_plan`).
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

__all__ = [
    "QuantTarget",
    "OutputTarget",
    "QATModel",
    "quantize_model",
    "calibrate_inputs",
    "module_for_node",
    "plan_targets",
]

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


@dataclass(frozen=True)
class OutputTarget:
    """A module call whose output trains with a per-tensor quantizer.

    Attributes:
        module: qualified module name.
        call: which call of that module within one forward pass (0 = first).
        tensor: the ONNX tensor that output is.
    """

    module: str
    call: int
    tensor: str


class _OutputQuantizers:
    """Forward hooks that fake-quantize (or, while calibrating, record) chosen module-call outputs."""

    def __init__(self, model: Any, targets: list[OutputTarget]) -> None:
        import torch.nn as nn
        from modelopt.torch.quantization.config import QuantizerAttributeConfig
        from modelopt.torch.quantization.nn import TensorQuantizer

        self.targets = targets
        self.quantizers = nn.ModuleList(
            TensorQuantizer(QuantizerAttributeConfig(num_bits=8, axis=None)) for _ in targets
        )
        model.add_module("trtq_output_quantizers", self.quantizers)  # moves with .to(), saved in state dicts
        self.by_call = {(t.module, t.call): i for i, t in enumerate(targets)}
        self.calls: dict[str, int] = {}
        self.recording: dict[str, np.ndarray] | None = None
        modules = dict(model.named_modules())
        model.register_forward_pre_hook(lambda *_: self.calls.clear())
        for name in sorted({t.module for t in targets}):
            modules[name].register_forward_hook(self._hook(name))

    def _hook(self, name: str) -> Any:
        def hook(_mod: Any, _args: tuple, output: Any) -> Any:
            k = self.calls[name] = self.calls.get(name, -1) + 1
            i = self.by_call.get((name, k))
            if i is None:
                return None
            if self.recording is not None:
                self.recording.setdefault(
                    self.targets[i].tensor, output.detach().float().cpu().numpy().copy()
                )
            return self.quantizers[i](output)

        return hook


@dataclass
class QATModel:
    """A model wrapped for quantization-aware training.

    Attributes:
        model: the ModelOpt-quantized copy of the user's module (the user's module is left untouched).
        targets: the modules that carry enabled quantizers, in graph order.
        plan: the PTQ placement plan the targets were taken from.
        outputs: module calls whose outputs are quantized (plan tensors with non-weighted readers).
        export_only: plan tensors no quantizer simulates in training -> why (quantized at export).
        amax: activation tensor -> amax of its quantizers (set by `calibrate_inputs`).
    """

    model: Any
    targets: list[QuantTarget]
    plan: QDQPlan
    outputs: list[OutputTarget] = field(default_factory=list)
    export_only: dict[str, str] = field(default_factory=dict)
    amax: dict[str, float] = field(default_factory=dict)
    _hooks: _OutputQuantizers | None = None

    def quantizers(self) -> Iterable[tuple[QuantTarget, Any, Any]]:
        """(target, input quantizer, weight quantizer) for every target."""
        modules = dict(self.model.named_modules())
        for t in self.targets:
            m = modules[t.module]
            yield t, m.input_quantizer, m.weight_quantizer

    def all_quantizers(self) -> list[Any]:
        """Every enabled-by-trtq quantizer: inputs and weights of the targets, then the output quantizers."""
        qs = [q for _, iq, wq in self.quantizers() for q in (iq, wq)]
        return qs + (list(self._hooks.quantizers) if self._hooks else [])

    def set_quantization(self, enabled: bool) -> None:
        """Turn every quantizer on (fake quantization) or off (FP32), e.g. for a quantization delay."""
        for q in self.all_quantizers():
            q.enable() if enabled else q.disable()


def _scope_path(node_name: str) -> str:
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
        node_name: the ONNX node name (see `_scope_path` for how scopes map to modules).
        modules: qualified name -> module (from `named_modules()`).
        op_type: the node's op type; the module must be of a class that exports to it.
    """
    full = _scope_path(node_name)
    if not full:
        return None
    kinds = _MODULE_KINDS.get(op_type, ())
    for candidate in (full, full.rsplit(".", 1)[-1]):
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


def quantize_model(
    module: Any, fp32: onnx.ModelProto, plan: QDQPlan, sample: np.ndarray | None = None
) -> QATModel:
    """A copy of `module` with ModelOpt quantizers on the layers `plan` quantizes, all others disabled.

    Activation quantizers have no amax yet: call `calibrate_inputs` before training or exporting.

    Args:
        module: the user's FP32 `torch.nn.Module` (not modified).
        fp32: its FP32 ONNX export (the graph `plan` was made for).
        plan: `trtq.placement.plan_qdq(fp32, config)`.
        sample: an input batch, used to find the module calls that produce the plan's other tensors
            (output quantizers); None quantizes those tensors at export only.
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
    outputs, qm.export_only = _output_targets(qm, fp32, sample)
    if outputs:
        qm.outputs = outputs
        qm._hooks = _OutputQuantizers(model, outputs)
    return qm


def _output_targets(
    qm: QATModel, fp32: onnx.ModelProto, sample: np.ndarray | None
) -> tuple[list[OutputTarget], dict[str, str]]:
    """Module calls producing the plan tensors that input quantizers do not cover (see the module doc)."""
    graph = normalize(fp32).graph
    readers: dict[str, set[str]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, set()).add(n.name)
    covered = {t.node for t in qm.targets}
    wanted: dict[str, str] = {}
    export_only: dict[str, str] = {}
    for t in qm.plan.activations:
        consumers = set(qm.plan.consumers.get(t, []))
        if not consumers or consumers <= covered:
            continue
        others = readers.get(t, set()) - consumers
        if others:
            export_only[t] = f"also read unquantized by {sorted(others)[0]}"
        else:
            wanted[t] = ""
    if not wanted:
        return [], export_only
    if sample is None:
        return [], {**export_only, **dict.fromkeys(wanted, "no sample to locate its module")}
    values = _onnx_values(fp32, list(wanted), sample)
    calls = _trace_calls(qm, sample)
    modules = dict(qm.model.named_modules())
    producers = {o: n.name for n in graph.node for o in n.output}
    found: list[OutputTarget] = []
    for t in wanted:
        ref = values[t]
        tol = 1e-4 * max(float(np.abs(ref).max()), 1.0)
        hits = [c for c in calls if c[2].shape == ref.shape and np.allclose(c[2], ref, rtol=1e-3, atol=tol)]
        named = _module_call(producers.get(t, ""), modules)
        by_name = [c for c in hits if (c[0], c[1]) == named]
        if by_name:
            hits = by_name
        if not hits:
            export_only[t] = "produced by a functional op, not a module call"
        elif len({c[3] for c in hits}) > 1:
            export_only[t] = "several module calls produce equal values"
        else:
            name, call = hits[0][0], hits[0][1]  # innermost (hooks fire child first; a container returns it)
            found.append(OutputTarget(name, call, t))
    return found, export_only


def _module_call(node_name: str, modules: Mapping[str, Any]) -> tuple[str, int] | None:
    """(module, call index) from an exported node's scope; repeated calls get `_1`, `_2`... (`relu_1`)."""
    full = _scope_path(node_name)
    if not full:
        return None
    if full in modules:
        return full, 0
    head, _, suffix = full.rpartition("_")
    if suffix.isdigit() and head in modules:
        return head, int(suffix)
    return None


def _onnx_values(model: onnx.ModelProto, tensors: list[str], sample: np.ndarray) -> dict[str, np.ndarray]:
    from trtq.export import onnx_input_shape
    from trtq.runners.onnxrt import OnnxRuntimeRunner, expose_tensors

    name, _ = onnx_input_shape(model)
    with OnnxRuntimeRunner(expose_tensors(model, tensors)) as runner:
        out = runner.infer({name: np.ascontiguousarray(sample, dtype=np.float32)})
    return {t: out[t] for t in tensors}


def _trace_calls(qm: QATModel, sample: np.ndarray) -> list[tuple[str, int, np.ndarray, int]]:
    """(module, call index, output value, output object id) of every tensor-returning module call, FP32."""
    import torch

    calls: list[tuple[str, int, np.ndarray, int]] = []
    counts: dict[str, int] = {}
    keep: list[Any] = []  # outputs stay alive so object ids stay unique
    handles = []
    for name, mod in qm.model.named_modules():
        if not name or "quantizer" in name.rsplit(".", 1)[-1] or name.startswith("trtq_output_quantizers"):
            continue

        def hook(_m: Any, _a: tuple, out: Any, name: str = name) -> None:
            k = counts[name] = counts.get(name, -1) + 1
            if isinstance(out, torch.Tensor):
                keep.append(out)
                calls.append((name, k, out.detach().float().cpu().numpy().copy(), id(out)))

        handles.append(mod.register_forward_hook(hook))
    was_training = qm.model.training
    qm.set_quantization(False)
    qm.model.eval()
    try:
        device = next(qm.model.parameters()).device
        with torch.no_grad():
            qm.model(torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32)).to(device))
    finally:
        for h in handles:
            h.remove()
        qm.set_quantization(True)
        qm.model.train(was_training)
    return calls


def calibrate_inputs(
    qm: QATModel,
    batches: Iterable[np.ndarray],
    method: str = "entropy",
    *,
    percentile: float = 99.99,
    device: Any = "cpu",
) -> dict[str, float]:
    """Set every activation quantizer's amax from a trtq calibrator fed with the FP32 activations.

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
                seen[tensor] = args[0].detach().float().cpu().numpy().copy()

        handles.append(modules[t.module].register_forward_pre_hook(hook))
    was_training = qm.model.training
    qm.set_quantization(False)
    qm.model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                seen.clear()
                if qm._hooks:
                    qm._hooks.recording = seen
                qm.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device))
                calibrator.collect(dict(seen))
    finally:
        if qm._hooks:
            qm._hooks.recording = None
        for h in handles:
            h.remove()
        qm.set_quantization(True)
        qm.model.train(was_training)
    amax = calibrator.compute_amax()
    pairs = [(t.tensor, iq) for t, iq, _ in qm.quantizers()]
    if qm._hooks:
        pairs += [(o.tensor, q) for o, q in zip(qm.outputs, qm._hooks.quantizers)]
    for tensor, q in pairs:
        if tensor not in amax:
            raise UsageError(f"calibration saw no data for tensor {tensor!r}; is the calibration data empty?")
        value = float(amax[tensor])
        if not np.isfinite(value):
            raise UsageError(f"amax of tensor {tensor!r} is {value}; check the calibration data for NaN/Inf")
        # the same floor trtq.qdq puts on PTQ scales (smallest positive FP16)
        q.amax = torch.tensor(max(value, 127.0 * MIN_SCALE), dtype=torch.float32, device=device)
    qm.amax = {tensor: float(amax[tensor]) for tensor, _ in pairs}
    return dict(qm.amax)
