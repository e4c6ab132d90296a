"""PyTorch vs ONNX Runtime: the parity check every export ends with, and the dynamic sequence axis it proves.

`check_parity` compares outputs within a tolerance; `check_other_length` runs a shorter token sequence to show the
exported sequence axis is really dynamic; `sequence_inputs` says which inputs have that axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from trtq.errors import TrtqError
from trtq.export.samples import flatten_outputs

if TYPE_CHECKING:
    from trtq.export.sources import ModelSource

__all__ = ["check_other_length", "check_parity", "ort_run", "sequence_inputs"]


def check_parity(
    spec: str, reference: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float, atol: float
) -> float:
    """Compare every PyTorch output with ONNX Runtime's; raise when any differs beyond the tolerance.

    Each output passes when max |ref - got| <= atol + rtol * max |ref| over its finite values; NaN/Inf both
    produce are left for calibration to report by tensor name.

    Args:
        spec: the model, for the message.
        reference: PyTorch's outputs, in order.
        got: ONNX Runtime's outputs, in the same order.
        rtol, atol: the tolerance.

    Returns:
        The largest absolute difference over all outputs.

    Raises:
        TrtqError: the output counts or shapes differ, the two disagree on which values are NaN/Inf, or an
            output differs beyond the tolerance.
    """
    if len(reference) != len(got):
        raise TrtqError(f"export of {spec}: {len(got)} outputs in ONNX vs {len(reference)} in PyTorch")
    worst = 0.0
    for r, g in zip(reference, got):
        r = np.asarray(r).astype(np.float32)
        if r.shape != g.shape:
            raise TrtqError(f"export of {spec}: output shape {g.shape} in ONNX vs {r.shape} in PyTorch")
        finite = np.isfinite(r)
        if not np.array_equal(finite, np.isfinite(g)):
            raise TrtqError(
                f"export of {spec}: ONNX Runtime and PyTorch disagree on which outputs are NaN/Inf"
            )
        diff = float(np.max(np.abs(r[finite] - g[finite]))) if finite.any() else 0.0
        worst = max(worst, diff)
        bound = atol + rtol * float(np.max(np.abs(r[finite]))) if finite.any() else atol
        if diff > bound:
            raise TrtqError(
                f"export of {spec}: ONNX Runtime and PyTorch disagree, max abs error {diff:.3g} > "
                f"{bound:.3g}; the model may use ops the exporter mis-translates"
            )
    return worst


def ort_run(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model) as runner:
        out = runner.infer(dict(feed))
        return [out[n] for n in runner.output_names()]


def sequence_inputs(feed: Mapping[str, np.ndarray]) -> list[str]:
    """The inputs whose axis 1 the export makes the dynamic "sequence": integer inputs of rank >= 2.

    Token ids, attention masks, token types and positions are `[batch, sequence]` integers; image and other
    floating-point inputs keep their static non-batch dims.
    """
    return [n for n, a in feed.items() if a.dtype.kind in "iub" and a.ndim >= 2]


def check_other_length(
    source: ModelSource,
    module: Any,
    onnx_model: onnx.ModelProto,
    feed: Mapping[str, np.ndarray],
    sequence: Sequence[str],
    rtol: float,
    atol: float,
) -> float:
    """Parity again on the sample cut to a shorter sequence: proves the exported sequence axis is dynamic."""
    import torch

    length = int(feed[sequence[0]].shape[1])
    if length < 2:
        return 0.0
    short = {n: (a[:, : length // 2] if n in sequence else a) for n, a in feed.items()}
    with torch.no_grad():
        ref = flatten_outputs(module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in short.values())))
    try:
        got = ort_run(onnx_model, short)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrtqError(
            f"export of {source.spec}: the ONNX graph does not run on a shorter sequence ({first}); the model "
            "fixes its sequence length while tracing"
        ) from None
    return check_parity(f"{source.spec} (sequence {length // 2})", [r.numpy() for r in ref], got, rtol, atol)
