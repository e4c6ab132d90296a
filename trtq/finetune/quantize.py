"""Wrap a PyTorch model with ModelOpt fake quantizers exactly where trtq's Q/DQ plan puts them.

Each module the plan quantizes (`trtq.finetune.targets.plan_targets`) gets:

- a weight quantizer: int8, symmetric, per output channel (axis 0 for Conv and Linear, 1 for
  ConvTranspose), amax = max |w| per channel recomputed at every step (what `trtq.qdq.weight_scales`
  computes for PTQ);
- an input quantizer: int8, symmetric, per tensor, amax from a trtq calibrator (the user's method) fed
  with the module's FP32 input activations, batch by batch (`trtq.finetune.calibrate.calibrate_inputs`).

Every other quantizer ModelOpt inserts (BatchNorm, pooling, outputs, excluded layers) is disabled, so layers
the user or the sensitivity analysis keep in FP16 train unquantized. Plan tensors with non-weighted readers
get output quantizers (`trtq.finetune.outputs`).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import UsageError
from trtq.finetune.outputs import OutputQuantizers, OutputTarget, find_output_targets
from trtq.finetune.targets import QuantTarget, plan_targets
from trtq.placement import QDQPlan

__all__ = ["QATModel", "quantize_model"]


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
        output_quantizers: the hooks that quantize `outputs` (None when there are none).
    """

    model: Any
    targets: list[QuantTarget]
    plan: QDQPlan
    outputs: list[OutputTarget] = field(default_factory=list)
    export_only: dict[str, str] = field(default_factory=dict)
    amax: dict[str, float] = field(default_factory=dict)
    output_quantizers: OutputQuantizers | None = field(default=None, repr=False)

    def quantizers(self) -> Iterable[tuple[QuantTarget, Any, Any]]:
        """(target, input quantizer, weight quantizer) for every target."""
        modules = dict(self.model.named_modules())
        for t in self.targets:
            m = modules[t.module]
            yield t, m.input_quantizer, m.weight_quantizer

    def activation_quantizers(self) -> list[tuple[str, Any]]:
        """(activation tensor, quantizer) for every input and output quantizer, in that order."""
        pairs = [(t.tensor, iq) for t, iq, _ in self.quantizers()]
        if self.output_quantizers is not None:
            pairs += [(o.tensor, q) for o, q in zip(self.outputs, self.output_quantizers.quantizers)]
        return pairs

    def all_quantizers(self) -> list[Any]:
        """Every enabled-by-trtq quantizer: inputs and weights of the targets, then the output quantizers."""
        qs = [q for _, iq, wq in self.quantizers() for q in (iq, wq)]
        return qs + (list(self.output_quantizers.quantizers) if self.output_quantizers else [])

    def set_quantization(self, enabled: bool) -> None:
        """Turn every quantizer on (fake quantization) or off (FP32), e.g. for a quantization delay."""
        for q in self.all_quantizers():
            q.enable() if enabled else q.disable()


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

    Raises:
        UsageError: a quantized layer cannot be simulated (see `plan_targets`).
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
    outputs, qm.export_only = find_output_targets(qm, fp32, sample)
    if outputs:
        qm.outputs = outputs
        qm.output_quantizers = OutputQuantizers(model, outputs)
    return qm
