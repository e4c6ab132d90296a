"""Export a fake-quant model to the Q/DQ ONNX graph PTQ would produce, and check it against PyTorch.

Steps (`export_qat_onnx`):

1. weight quantizers get a fixed amax = max |w| per output channel of the current weights for the export
   (training recomputes it every step; the exporter needs a constant);
2. the legacy TorchScript exporter (`dynamo=False`: the dynamo exporter fails on fake-quant modules) writes
   ModelOpt's QuantizeLinear/DequantizeLinear pairs, with the same input/output names as `trtq.export`;
3. `trtq.placement.normalize`, no-op Casts dropped, BatchNorm folded into the convolutions (exactly, see
   `trtq.finetune.fold`), re-quantization with an identical scale dropped, duplicate pairs on one tensor merged;
4. pairs the plan wants on non-weighted consumers (residual Add inputs, pooling) are added
   (`trtq.finetune.passes.align_to_plan`), calibrated with the user's method on the fine-tuned graph where no
   trained quantizer covers the tensor;
5. `check_placement` against the PTQ graph of the FP32 export.

`trtq.finetune.check.torch_vs_onnx` then compares the graph with the fake-quant model on data.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import TrtqError
from trtq.finetune.calibrate import make_calibrator
from trtq.finetune.fold import fold_batchnorm
from trtq.finetune.layout import PlacementCheck, check_placement
from trtq.finetune.passes import align_to_plan, collapse_requantization, drop_noop_casts, merge_duplicate_qdq
from trtq.finetune.quantize import QATModel
from trtq.placement import normalize

__all__ = ["QATExport", "ExportSummary", "export_qat_onnx", "graph_amax"]


@dataclass
class QATExport:
    """The exported QAT graph and what was done to it.

    Attributes:
        model: the Q/DQ graph (BatchNorm folded, one pair per tensor, plan-aligned).
        check: its placement compared with the PTQ graph.
        folded_batchnorms, merged_pairs, dropped_casts, collapsed_pairs: what the clean-up passes did.
        added: tensors that got a Q/DQ pair at export (not simulated in training), with their amax.
    """

    model: onnx.ModelProto
    check: PlacementCheck
    folded_batchnorms: int = 0
    merged_pairs: int = 0
    dropped_casts: int = 0
    collapsed_pairs: int = 0
    added: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """metrics.json's "export": the placement check, the passes' counts, the graph's node count."""
        return ExportSummary.of(self).to_json()


@dataclass
class ExportSummary:
    """What the export did to a graph (metrics.json's "export"), without the graph itself.

    Attributes:
        placement: the graph's Q/DQ placement compared with PTQ's.
        folded_batchnorms, merged_duplicate_pairs, dropped_noop_casts, collapsed_requantizations: the passes.
        added_at_export: tensors that got a pair at export (not simulated in training) -> amax.
        nodes: node count of the graph.
    """

    placement: PlacementCheck
    folded_batchnorms: int = 0
    merged_duplicate_pairs: int = 0
    dropped_noop_casts: int = 0
    collapsed_requantizations: int = 0
    added_at_export: dict[str, float] = field(default_factory=dict)
    nodes: int = 0

    @classmethod
    def of(cls, exp: QATExport) -> ExportSummary:
        return cls(exp.check, exp.folded_batchnorms, exp.merged_pairs, exp.dropped_casts, exp.collapsed_pairs,
                   dict(exp.added), len(exp.model.graph.node))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "placement": self.placement.to_json()}


def graph_amax(
    model: onnx.ModelProto,
    tensors: list[str],
    batches: Iterable[np.ndarray],
    method: str,
    percentile: float = 99.99,
    params: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Calibrate `tensors` of an ONNX graph (Q/DQ executed as written) with a trtq calibrator.

    Raises:
        TrtqError: a tensor got no finite amax.
    """
    from trtq.export import onnx_input_shape
    from trtq.runners.onnxrt import OnnxRuntimeRunner, expose_tensors

    calibrator = make_calibrator(method, percentile, params)
    input_name, _ = onnx_input_shape(model)
    with OnnxRuntimeRunner(expose_tensors(model, tensors)) as runner:
        for x in batches:
            out = runner.infer({input_name: np.ascontiguousarray(x, dtype=np.float32)})
            calibrator.collect({t: out[t] for t in tensors})
    amax = calibrator.compute_amax()
    for t in tensors:
        if t not in amax or not np.isfinite(amax[t]):
            raise TrtqError(f"could not calibrate tensor {t!r} of the QAT graph (amax {amax.get(t)})")
    return amax


def _set_weight_amax(qm: QATModel, frozen: bool) -> None:
    """Fix each weight quantizer's amax to max |w| per channel (the exporter needs it), or back to dynamic."""
    import torch

    modules = dict(qm.model.named_modules())
    for t in qm.targets:
        mod = modules[t.module]
        if not frozen:
            mod.weight_quantizer.reset_amax()
            continue
        w = mod.weight.detach()
        dims = [d for d in range(w.ndim) if d != t.weight_axis]
        mod.weight_quantizer.amax = w.abs().amax(dim=dims, keepdim=True).to(torch.float32)


def _output_names(model: Any, x: Any) -> list[str]:
    import torch

    from trtq.export import flatten_outputs

    with torch.no_grad():
        n = len(flatten_outputs(model(x)))
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


def _torch_export(qm: QATModel, sample: np.ndarray, opset: int) -> onnx.ModelProto:
    """Steps 1-2 of the module doc: the legacy exporter's graph of the fake-quant model, in eval mode."""
    import torch

    model = qm.model  # exported in place: the output quantizers' hooks belong to this instance
    was_training = model.training
    model.eval()
    _set_weight_amax(qm, frozen=True)
    try:
        device = next(model.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32)).to(device)
        out_names = _output_names(model, x)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (x,),
                buf,
                input_names=["input"],
                output_names=out_names,
                opset_version=opset,
                dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in out_names}},
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
                dynamo=False,
            )
    finally:
        _set_weight_amax(qm, frozen=False)
        model.train(was_training)
    return onnx.load_from_string(buf.getvalue())


def export_qat_onnx(
    qm: QATModel,
    sample: np.ndarray,
    fp32: onnx.ModelProto,
    *,
    calib_batches: Callable[[], Iterable[np.ndarray]],
    method: str = "entropy",
    percentile: float = 99.99,
    params: Mapping[str, Any] | None = None,
    opset: int = 17,
) -> QATExport:
    """Export the fake-quant model to a Q/DQ graph with PTQ's placement (see the module doc).

    Args:
        qm: the quantized model (its input quantizers calibrated).
        sample: an input batch (fixes the non-batch dimensions; the batch axis is dynamic).
        fp32: the FP32 export the plan was made for (reference for the placement check).
        calib_batches: returns calibration batches; used only for pairs no trained quantizer covers.
        method, percentile, params: the calibration method (and its parameters) for those pairs.
        opset: ONNX opset (>= 13 for per-channel Q/DQ).
    """
    graph = normalize(_torch_export(qm, sample, opset))
    graph, dropped = drop_noop_casts(graph)
    graph, folded = fold_batchnorm(graph)
    graph, collapsed = collapse_requantization(graph)
    graph, merged = merge_duplicate_qdq(graph)
    added: dict[str, float] = {}

    def amax_for(tensors: list[str]) -> Mapping[str, float]:
        values = graph_amax(graph, tensors, calib_batches(), method, percentile, params)
        added.update({t: float(values[t]) for t in tensors})
        return values

    graph, _ = align_to_plan(graph, qm.plan, amax_for)
    graph = normalize(graph)
    onnx.checker.check_model(graph, full_check=True)
    check = check_placement(graph, fp32, qm.plan)
    return QATExport(graph, check, folded, merged, dropped, collapsed, added)
