"""The export check: the fake-quant PyTorch model against its exported Q/DQ graph, on the same data.

The graph runs in ONNX Runtime with Q/DQ executed as written (what TensorRT's numerics follow); the PyTorch
outputs are the reference and the metric registry (`trtq.metrics`) scores the graph: top-1 agreement (for
classifier outputs), max and mean absolute error.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

__all__ = ["ExportCheck", "torch_vs_onnx"]


@dataclass
class ExportCheck:
    """The fake-quant PyTorch model against its exported graph (ONNX Runtime, Q/DQ executed as written).

    Attributes:
        samples: samples compared.
        max_abs_logit_error: largest absolute output difference (`max_abs_error` metric).
        mean_abs_logit_error: mean absolute output difference (`mean_abs_error` metric).
        max_abs_logit: largest absolute PyTorch output (the scale the errors compare with).
        top1_agreement: share of samples with the same top-1 class (`top1_agreement` metric), for
            classifier outputs (N, K); None otherwise.
    """

    samples: int
    max_abs_logit_error: float
    mean_abs_logit_error: float
    max_abs_logit: float
    top1_agreement: float | None = None

    def to_json(self) -> dict[str, Any]:
        """metrics.json's "export_check" (no `top1_agreement` key for non-classifiers)."""
        out: dict[str, Any] = {
            "samples": self.samples,
            "max_abs_logit_error": self.max_abs_logit_error,
            "mean_abs_logit_error": self.mean_abs_logit_error,
            "max_abs_logit": self.max_abs_logit,
        }
        if self.top1_agreement is not None:
            out["top1_agreement"] = self.top1_agreement
        return out

    def __getitem__(self, key: str) -> Any:
        """Deprecated dict access (`torch_vs_onnx` returned a dict before 0.2); use the attributes."""
        warnings.warn(
            "ExportCheck[key] is deprecated and will be removed in 0.3.0; use its attributes or to_json()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.to_json()[key]


def torch_vs_onnx(
    model: Any, graph: onnx.ModelProto, batches: Iterable[tuple[np.ndarray, Any]], device: Any = "cpu"
) -> ExportCheck:
    """Run the fake-quant torch model and the Q/DQ graph (ONNX Runtime, as written) on the same batches.

    Args:
        model: the fake-quant torch model (run in eval mode; its mode is restored).
        graph: its exported Q/DQ graph.
        batches: (input batch, anything) pairs, e.g. `DataSource.iter_batches`.
        device: where the torch model runs.

    Returns:
        The errors and, for classifier outputs, the top-1 agreement, each computed by the metric registry
        with the PyTorch outputs as the reference.
    """
    from trtq.metrics import get_metric

    reference, outputs, samples = _run_both(model, graph, batches, device)
    if not reference:
        return ExportCheck(samples, 0.0, 0.0, 0.0)
    agreement = get_metric("top1_agreement")
    return ExportCheck(
        samples=samples,
        max_abs_logit_error=get_metric("max_abs_error")(reference, outputs),
        mean_abs_logit_error=get_metric("mean_abs_error")(reference, outputs),
        max_abs_logit=max((float(np.abs(v).max()) for v in reference.values() if v.size), default=0.0),
        top1_agreement=agreement(reference, outputs) if agreement.usable(reference, None) else None,
    )


def _run_both(
    model: Any, graph: onnx.ModelProto, batches: Iterable[tuple[np.ndarray, Any]], device: Any
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """(torch outputs, ONNX Runtime outputs) by output name over all batches, and the sample count."""
    import torch

    from trtq.export import flatten_outputs, onnx_input_shape
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    input_name, _ = onnx_input_shape(graph)
    ref: dict[str, list[np.ndarray]] = {}
    got: dict[str, list[np.ndarray]] = {}
    samples = 0
    was_training = model.training
    model.eval()
    try:
        with OnnxRuntimeRunner(graph) as runner, torch.no_grad():
            names = runner.output_names()
            for x, _ in batches:
                torch_out = flatten_outputs(model(torch.from_numpy(x).to(device)))
                onnx_out = runner.infer({input_name: x})
                for name, value in zip(names, torch_out):
                    ref.setdefault(name, []).append(value.float().cpu().numpy())
                    got.setdefault(name, []).append(onnx_out[name])
                samples += len(x)
    finally:
        model.train(was_training)
    cat = {n: np.concatenate(v) for n, v in ref.items()}, {n: np.concatenate(v) for n, v in got.items()}
    return cat[0], cat[1], samples
