"""Export a fake-quant model to the Q/DQ ONNX graph PTQ would produce, and check it against PyTorch.

Steps (`export_qat_onnx`):

1. weight quantizers get a fixed amax = max |w| per output channel of the current weights for the export
   (training recomputes it every step; the exporter needs a constant);
2. the legacy TorchScript exporter (`dynamo=False`: the dynamo exporter fails on fake-quant modules) writes
   ModelOpt's QuantizeLinear/DequantizeLinear pairs, with the same input/output names as `trtq.export`;
3. `trtq.placement.normalize`, no-op Casts dropped, BatchNorm folded into the convolutions (exactly, see
   `trtq.finetune.graph`), re-quantization with an identical scale dropped, duplicate pairs on one tensor merged;
4. pairs the plan wants on non-weighted consumers (residual Add inputs, pooling) are added
   (`trtq.finetune.graph.align_to_plan`), calibrated with the user's method on the fine-tuned graph where no
   trained quantizer covers the tensor;
5. `check_placement` against the PTQ graph of the FP32 export.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import TrtqError
from trtq.finetune.graph import (
    PlacementCheck,
    align_to_plan,
    check_placement,
    collapse_requantization,
    drop_noop_casts,
    fold_batchnorm,
    merge_duplicate_qdq,
)
from trtq.finetune.quantize import QATModel
from trtq.placement import normalize

__all__ = ["QATExport", "export_qat_onnx", "graph_amax", "torch_vs_onnx"]


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
        return {
            "placement": self.check.to_json(),
            "folded_batchnorms": self.folded_batchnorms,
            "merged_duplicate_pairs": self.merged_pairs,
            "dropped_noop_casts": self.dropped_casts,
            "collapsed_requantizations": self.collapsed_pairs,
            "added_at_export": self.added,
            "nodes": len(self.model.graph.node),
        }


def graph_amax(
    model: onnx.ModelProto, tensors: list[str], batches: Iterable[np.ndarray], method: str, percentile: float
) -> dict[str, float]:
    """Calibrate `tensors` of an ONNX graph (Q/DQ executed as written) with a trtq calibrator."""
    from trtq.calibrators import canonical_method, get_calibrator
    from trtq.export import onnx_input_shape
    from trtq.runners.onnxrt import OnnxRuntimeRunner, expose_tensors

    name = canonical_method(method)
    calibrator = get_calibrator(name, **({"percentile": percentile} if name == "percentile" else {}))
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


def export_qat_onnx(
    qm: QATModel,
    sample: np.ndarray,
    fp32: onnx.ModelProto,
    *,
    calib_batches: Callable[[], Iterable[np.ndarray]],
    method: str = "entropy",
    percentile: float = 99.99,
    opset: int = 17,
) -> QATExport:
    """Export the fake-quant model to a Q/DQ graph with PTQ's placement (see the module doc).

    Args:
        qm: the quantized model (its input quantizers calibrated).
        sample: an input batch (fixes the non-batch dimensions; the batch axis is dynamic).
        fp32: the FP32 export the plan was made for (reference for the placement check).
        calib_batches: returns calibration batches; used only for pairs no trained quantizer covers.
        method, percentile: the calibration method for those pairs.
        opset: ONNX opset (>= 13 for per-channel Q/DQ).
    """
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
    graph = normalize(onnx.load_from_string(buf.getvalue()))
    graph, dropped = drop_noop_casts(graph)
    graph, folded = fold_batchnorm(graph)
    graph, collapsed = collapse_requantization(graph)
    graph, merged = merge_duplicate_qdq(graph)
    added: dict[str, float] = {}

    def amax_for(tensors: list[str]) -> Mapping[str, float]:
        values = graph_amax(graph, tensors, calib_batches(), method, percentile)
        added.update({t: float(values[t]) for t in tensors})
        return values

    graph, _ = align_to_plan(graph, qm.plan, amax_for)
    graph = normalize(graph)
    onnx.checker.check_model(graph, full_check=True)
    check = check_placement(graph, fp32, qm.plan)
    return QATExport(graph, check, folded, merged, dropped, collapsed, added)


def torch_vs_onnx(
    model: Any, graph: onnx.ModelProto, batches: Iterable[tuple[np.ndarray, Any]], device: Any = "cpu"
) -> dict[str, float]:
    """Run the fake-quant torch model and the Q/DQ graph (ONNX Runtime, as written) on the same batches.

    Returns:
        top1_agreement (for (N, K) outputs), max/mean absolute logit error, max |logit|, samples.
    """
    import torch

    from trtq.export import flatten_outputs, onnx_input_shape
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    input_name, _ = onnx_input_shape(graph)
    was_training = model.training
    model.eval()
    agree = total = 0
    classifier = False
    max_err = sum_err = max_ref = 0.0
    count = 0
    try:
        with OnnxRuntimeRunner(graph) as runner, torch.no_grad():
            first = runner.output_names()[0]
            for x, _ in batches:
                ref = flatten_outputs(model(torch.from_numpy(x).to(device)))[0].float().cpu().numpy()
                got = runner.infer({input_name: x})[first]
                diff = np.abs(ref.astype(np.float64) - got)
                max_err = max(max_err, float(diff.max()))
                sum_err += float(diff.sum())
                count += diff.size
                max_ref = max(max_ref, float(np.abs(ref).max()))
                if ref.ndim == 2 and ref.shape[1] > 1:
                    classifier = True
                    agree += int(np.sum(ref.argmax(1) == got.argmax(1)))
                total += len(x)
    finally:
        model.train(was_training)
    out = {
        "samples": total,
        "max_abs_logit_error": max_err,
        "mean_abs_logit_error": sum_err / max(count, 1),
        "max_abs_logit": max_ref,
    }
    if classifier:
        out["top1_agreement"] = agree / max(total, 1)
    return out
