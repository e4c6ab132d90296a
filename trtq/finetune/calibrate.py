"""The initial activation ranges of a QAT model, from a trtq calibrator fed with the FP32 activations.

The same calibrator classes as `trtq build` (`trtq.calibrators`): quantizers are off while the data runs
(the activations are the FP32 model's, as in PTQ), and a tensor read by several quantized modules is
collected once, so all its quantizers get the same amax and the export has one Q/DQ pair per tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from trtq.errors import UsageError
from trtq.finetune.quantize import QATModel
from trtq.formats import MIN_SCALE

__all__ = ["make_calibrator", "calibrate_inputs"]


def make_calibrator(method: str, percentile: float = 99.99, params: Mapping[str, Any] | None = None) -> Any:
    """A trtq calibrator for `method` (a registered name or alias).

    Args:
        method: the calibration method.
        percentile: the percentile method's percentile (used by that method only).
        params: further method parameters (`trtq.config.CalibrationConfig.method_kwargs`); they win over
            `percentile`.

    Raises:
        UsageError: `method` is not registered.
    """
    from trtq.calibrators import canonical_method, get_calibrator

    name = canonical_method(method)
    kwargs: dict[str, Any] = {"percentile": percentile} if name == "percentile" else {}
    kwargs.update(params or {})
    try:
        return get_calibrator(name, **kwargs)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None


def calibrate_inputs(
    qm: QATModel,
    batches: Iterable[np.ndarray],
    method: str = "entropy",
    *,
    percentile: float = 99.99,
    params: Mapping[str, Any] | None = None,
    device: Any = "cpu",
) -> dict[str, float]:
    """Set every activation quantizer's amax from a trtq calibrator fed with the FP32 activations.

    The model runs in eval mode with its quantizers off; afterwards they are on again and the model is back
    in the mode it was in.

    Args:
        qm: from `quantize_model`.
        batches: float32 NCHW input batches.
        method: a registered trtq calibration method ("entropy", "minmax", "percentile", "mse").
        percentile: the percentile method's percentile.
        params: further method parameters (see `make_calibrator`).
        device: where the model runs.

    Returns:
        Activation tensor name -> amax (also stored in `qm.amax`).

    Raises:
        UsageError: the data is empty, or an amax is not finite (NaN/Inf in the data).
    """
    import torch

    calibrator = make_calibrator(method, percentile, params)
    _collect(qm, batches, calibrator, device)
    amax = calibrator.compute_amax()
    pairs = qm.activation_quantizers()
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


def _collect(qm: QATModel, batches: Iterable[np.ndarray], calibrator: Any, device: Any) -> None:
    """Run the FP32 model over `batches`, feeding each quantized tensor's values to `calibrator`."""
    import torch

    modules = dict(qm.model.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = []
    for t in qm.targets:

        def hook(_mod: Any, args: tuple, tensor: str = t.tensor) -> None:
            if tensor not in seen:
                seen[tensor] = args[0].detach().float().cpu().numpy().copy()

        handles.append(modules[t.module].register_forward_pre_hook(hook))
    hooks = qm.output_quantizers
    was_training = qm.model.training
    qm.set_quantization(False)
    qm.model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                seen.clear()
                if hooks is not None:
                    hooks.recording = seen
                qm.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device))
                calibrator.collect(dict(seen))
    finally:
        if hooks is not None:
            hooks.recording = None
        for h in handles:
            h.remove()
        qm.set_quantization(True)
        qm.model.train(was_training)
