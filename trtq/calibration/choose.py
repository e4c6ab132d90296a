"""Choosing a calibration method (`--calib all`): the one whose Q/DQ model is most faithful to FP32.

Each method's thresholds become a Q/DQ model that runs in ONNX Runtime (Q/DQ executed as written) on held-out
batches; its outputs are scored against the FP32 outputs with a registered metric (`trtq.metrics`; cosine
similarity by default, see docs/calibration.md for why). Ties within 1e-6 are broken by the mean squared error,
then by the order the methods were computed in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx

from trtq.calibration.result import Calibration
from trtq.calibration.run import load_model
from trtq.errors import UsageError
from trtq.metrics import get_metric

__all__ = ["choose_method", "model_digest", "TIE_BREAK_METRIC"]

#: Second key of the choice (lower is better).
TIE_BREAK_METRIC = "mse"


def choose_method(
    calibration: Calibration,
    quantize_fn: Callable[[dict[str, float]], onnx.ModelProto],
    heldout: Iterable[Mapping[str, np.ndarray]] | Callable[[], Iterable[Mapping[str, np.ndarray]]],
    *,
    reference_model: onnx.ModelProto | str | os.PathLike | None = None,
    reference_outputs: Sequence[Mapping[str, np.ndarray]] | Mapping[str, np.ndarray] | None = None,
    methods: Sequence[str] | None = None,
    metric: str = "cosine",
    threads: int | None = None,
    targets: object = None,
    keep: dict | None = None,
    keep_budget: int | None = None,
) -> tuple[str, dict[str, dict[str, float]]]:
    """Pick the method whose Q/DQ model is most faithful to FP32 on held-out batches.

    Args:
        calibration: thresholds for one or more methods; its `method` and `scores` are updated.
        quantize_fn: builds the Q/DQ model from a tensor -> amax dict.
        heldout: held-out feed dicts (not the calibration batches), iterated once per method; or a function that
            returns them afresh (then no batch is held: each is decoded, run and dropped).
        reference_model: the FP32 model, to compute reference outputs (unless `reference_outputs` is given).
        reference_outputs: FP32 outputs for each held-out batch, in order, or already joined on axis 0.
        methods: methods to compare (default: all in the calibration).
        metric: the registered metric that decides (higher or lower is better as the metric says).
        threads: ONNX Runtime intra-op threads.
        targets: the held-out samples' targets, for task metrics (`--choose-metric map50_95` on detection data).
        keep: a dict to fill with the chosen method's run: "method", "digest" (`model_digest` of its Q/DQ model) and
            "outputs" (its outputs on the held-out samples, joined), so a later pass of that same model over data
            that holds these samples need not run them again. Left empty when the outputs are over `keep_budget`
            bytes (default `trtq.runners.onnxrt.OUTPUT_BUDGET`): only the best so far is held while scoring.

    Returns:
        (best method, method -> {metric: value} for the deciding metric, "mse", and "top1_agreement" where the
        outputs are classifier logits).
    """
    from trtq.runners import OnnxRuntimeRunner
    from trtq.runners.onnxrt import INFER_SAMPLES, PartRunner
    from trtq.validate import joined_outputs

    deciding, tie = get_metric(metric), get_metric(TIE_BREAK_METRIC)
    if callable(heldout):
        feeds = heldout
    else:
        held = [dict(b) for b in heldout]
        feeds = lambda: held  # noqa: E731
    if not any(True for _ in feeds()):
        raise UsageError("choose_method needs at least one held-out batch")

    def run(model: onnx.ModelProto, name: str) -> list[dict[str, np.ndarray]]:
        with OnnxRuntimeRunner(model, threads=threads, name=name) as runner:
            names = list(runner.input_metadata())
            parts = PartRunner(
                runner, 0, max_samples=INFER_SAMPLES
            )  # a few samples per call: less ORT memory
            return [parts.infer({n: b[n] for n in names}) for b in feeds()]

    if reference_outputs is None:
        if reference_model is None:
            raise UsageError("choose_method needs the FP32 model or its reference outputs")
        reference_outputs = run(load_model(reference_model), "fp32")
    if isinstance(reference_outputs, Mapping):
        ref = {k: np.asarray(v) for k, v in reference_outputs.items()}
    else:
        batches = sum(1 for _ in feeds())
        if len(reference_outputs) != batches:
            raise UsageError(f"{len(reference_outputs)} reference outputs for {batches} held-out batches")
        ref = joined_outputs(reference_outputs)
    reported = [deciding, tie]
    agreement = get_metric("top1_agreement")
    if agreement.usable(ref, None) and agreement not in reported:
        reported.append(agreement)
    scores: dict[str, dict[str, float]] = {}
    order: dict[str, int] = {}

    def key(m: str) -> tuple:
        return (
            round(deciding.sort_key(scores[m][deciding.name]), 6),
            tie.sort_key(scores[m][tie.name]),
            order[m],
        )

    from trtq.runners.onnxrt import OUTPUT_BUDGET

    budget = OUTPUT_BUDGET if keep_budget is None else keep_budget
    kept: dict | None = (
        None  # the best so far (the key is a total order, so the running minimum is the minimum)
    )
    for m in methods or calibration.methods:
        model = quantize_fn(calibration.amax_for(m))
        out = joined_outputs(run(model, f"qdq-{m}"))  # one session alive at a time
        order[m] = len(order)
        scores[m] = {x.name: x(ref, out, targets) for x in reported}
        if keep is not None and (kept is None or key(m) < key(kept["method"])):
            small = sum(int(v.nbytes) for v in out.values()) <= budget
            kept = {"method": m, "digest": model_digest(model), "outputs": out} if small else {"method": m}
        del out, model
    best = min(scores, key=key)
    calibration.method = best
    calibration.scores = scores
    if keep is not None and kept is not None and "outputs" in kept:
        keep.update(kept)
    return best, scores


def model_digest(model: onnx.ModelProto) -> str | None:
    """sha256 of the serialized model: equal for the same graph, weights and scales (None above protobuf's 2 GB)."""
    import hashlib

    from trtq.onnx_io import is_large

    if is_large(model):  # no digest, so nothing is taken as the same model
        return None
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
