"""Output quantizers: fake quantization on module-call outputs the plan quantizes for non-weighted readers.

The plan also quantizes tensors for readers that are not modules with weights: the residual input of an
Add TensorRT fuses into a convolution, the input of a pooling that continues an INT8 chain. Such a tensor
gets an *output* quantizer on the module call that produces it (found by value: the call whose output
equals the tensor in the FP32 ONNX graph; for a convolution whose BatchNorm the export folded, that is the
BatchNorm call), provided every reader of the tensor reads it quantized in the PTQ graph. Then the training
graph computes what the deployed graph computes; a conv reading the same tensor re-quantizes it with the
same scale, which changes nothing. Tensors without such a call (produced by a functional op in a
`forward`) are quantized at export only (`trtq.finetune.passes.align_to_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from trtq.finetune.targets import module_call
from trtq.placement import normalize

if TYPE_CHECKING:
    from trtq.finetune.quantize import QATModel

__all__ = ["OutputTarget", "OutputQuantizers", "find_output_targets"]


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


class OutputQuantizers:
    """Forward hooks that fake-quantize (or, while calibrating, record) chosen module-call outputs.

    Args:
        model: the quantized model; the quantizers become its sub-module `trtq_output_quantizers`, so they
            move with `.to()` and are saved in state dicts.
        targets: the calls to quantize.

    Attributes:
        quantizers: one ModelOpt `TensorQuantizer` per target (int8, per tensor).
        recording: while not None, each hooked call also stores its FP32 output here (tensor -> array).
    """

    def __init__(self, model: Any, targets: list[OutputTarget]) -> None:
        import torch.nn as nn
        from modelopt.torch.quantization.config import QuantizerAttributeConfig
        from modelopt.torch.quantization.nn import TensorQuantizer

        self.targets = targets
        self.quantizers = nn.ModuleList(
            TensorQuantizer(QuantizerAttributeConfig(num_bits=8, axis=None)) for _ in targets
        )
        model.add_module("trtq_output_quantizers", self.quantizers)
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


def _wanted(qm: QATModel, graph: onnx.GraphProto) -> tuple[list[str], dict[str, str]]:
    """Plan tensors input quantizers do not cover: (those every reader reads quantized, the others -> why)."""
    readers: dict[str, set[str]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, set()).add(n.name)
    covered = {t.node for t in qm.targets}
    wanted: list[str] = []
    export_only: dict[str, str] = {}
    for t in qm.plan.activations:
        consumers = set(qm.plan.consumers.get(t, []))
        if not consumers or consumers <= covered:
            continue
        others = readers.get(t, set()) - consumers
        if others:
            export_only[t] = f"also read unquantized by {sorted(others)[0]}"
        else:
            wanted.append(t)
    return wanted, export_only


def find_output_targets(
    qm: QATModel, fp32: onnx.ModelProto, sample: np.ndarray | None
) -> tuple[list[OutputTarget], dict[str, str]]:
    """The module calls producing the plan tensors that input quantizers do not cover (see the module doc).

    Args:
        qm: the quantized model (its targets and plan).
        fp32: the FP32 export the plan was made for.
        sample: an input batch the FP32 graph and the model run on to match values; None = no matching.

    Returns:
        (output targets, plan tensor -> why it is quantized at export only).
    """
    graph = normalize(fp32).graph
    wanted, export_only = _wanted(qm, graph)
    if not wanted:
        return [], export_only
    if sample is None:
        return [], {**export_only, **dict.fromkeys(wanted, "no sample to locate its module")}
    values = _onnx_values(fp32, wanted, sample)
    calls = _trace_calls(qm, sample)
    modules = dict(qm.model.named_modules())
    producers = {o: n.name for n in graph.node for o in n.output}
    found: list[OutputTarget] = []
    for t in wanted:
        ref = values[t]
        tol = 1e-4 * max(float(np.abs(ref).max()), 1.0)
        hits = [c for c in calls if c[2].shape == ref.shape and np.allclose(c[2], ref, rtol=1e-3, atol=tol)]
        named = module_call(producers.get(t, ""), modules)
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
