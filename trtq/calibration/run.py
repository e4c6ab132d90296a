"""The calibration pass: run the FP32 ONNX model once over the data and compute every method's amax.

`calibrate()` runs the model in ONNX Runtime with the requested activations exposed as extra outputs, folds
each batch into one shared `HistogramCollector` and drops it, then asks each requested method for its
thresholds. Memory is tensors x histogram bins, whatever the number of samples.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq.calibration.result import Calibration
from trtq.calibrators import (
    CALIBRATORS,
    NUM_BINS,
    CollectorCalibrator,
    HistogramCollector,
    TensorHistogram,
    fine_bins_for,
    get_calibrator,
    method_params,
)
from trtq.errors import TrtqError, UsageError
from trtq.formats import QuantFormat, get_format
from trtq.progress import track
from trtq.runners.onnxrt import PartRunner

__all__ = [
    "calibrate",
    "resolve_methods",
    "make_calibrators",
    "load_model",
    "SUMMARY_QUANTILES",
    "ACTIVATION_BUDGET",
]

SUMMARY_QUANTILES = (0.5, 0.99, 0.999, 0.9999, 0.99999)
#: Bytes of activations one calibration inference may expose (see `calibrate`'s `activation_budget`): 96 MiB is two
#: samples of efficientnet_b0's 113 planned activations (35 MiB a sample); 128 MiB (three) peaked 75 MiB higher and
#: was no faster (docs/performance.md).
ACTIVATION_BUDGET = 96 << 20


def ahead(items: Iterator[Any]) -> Iterator[Any]:
    """The items of `items`, the next one made in a background thread while the caller works on the current one (an
    ONNX Runtime inference runs while the previous part is folded; it releases the GIL). At most two items are alive:
    the caller's and the next. Exceptions are re-raised in the caller, in order."""
    import queue
    import threading

    q: queue.Queue = queue.Queue()
    slots = threading.Semaphore(2)  # the caller's item and the next one
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            it = iter(items)
            while True:
                slots.acquire()
                if stop.is_set():
                    return
                item = next(it, done)
                q.put((item, None))
                if item is done:
                    return
                del item
        except BaseException as e:  # handed to the caller
            q.put((done, e))

    worker = threading.Thread(target=produce, name="trtq-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = q.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
            del item
            slots.release()  # the caller is done with it: make the one after next
    finally:
        stop.set()
        slots.release()
        worker.join()


def load_model(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    """The model itself, or the ONNX file it names (one-line errors for missing or unreadable files)."""
    if isinstance(model, onnx.ModelProto):
        return model
    p = Path(model)
    if not p.is_file():
        raise UsageError(f"model {p} does not exist; pass the FP32 .onnx file to calibrate")
    if p.stat().st_size == 0:
        raise UsageError(f"model {p} is empty (0 bytes); re-export it")
    try:
        loaded = onnx.load(str(p))
    except Exception as e:  # onnx raises several protobuf/decode errors
        raise UsageError(
            f"model {p} is not a readable ONNX file ({type(e).__name__}); re-export it"
        ) from None
    if not loaded.HasField("graph") or not loaded.graph.node:
        raise UsageError(f"model {p} holds no ONNX graph; re-export it")
    return loaded


def _check_tensors(model: onnx.ModelProto, tensors: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split requested names into (graph inputs, intermediate tensors); refuse unknown names and weights."""
    if len(set(tensors)) != len(tensors):
        dup = next(t for t in tensors if list(tensors).count(t) > 1)
        raise UsageError(f"tensor {dup!r} is listed twice for calibration")
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = {i.name for i in g.input if i.name not in inits}
    produced = {o for n in g.node for o in n.output}
    constants = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    from_input, from_graph = [], []
    for t in tensors:
        if t in inits or t in constants:
            raise UsageError(
                f"tensor {t!r} is a weight/constant, not an activation; weights are not calibrated "
                "(their per-channel amax is max |w|)"
            )
        if t in inputs:
            from_input.append(t)
        elif t in produced:
            from_graph.append(t)
        else:
            raise UsageError(
                f"tensor {t!r} is not in the model graph; check the name (see the model in Netron)"
            )
    return from_input, from_graph


def _summary(rec: TensorHistogram, num_bins: int) -> dict[str, Any]:
    hist = rec.coarse(num_bins)
    return {
        "count": rec.count,
        "min": rec.min if rec.count else 0.0,
        "max": rec.max if rec.count else 0.0,
        "absmax": rec.absmax,
        "mean": rec.mean,
        "std": rec.std,
        "zero_fraction": 1.0 - rec.nonzero / rec.count if rec.count else 1.0,
        "histogram": {
            "bins": int(len(hist.counts)),
            "bin_width": hist.bin_width,
            "fine_bin_width": rec.fine_width,
            "abs_quantiles": {f"{q:g}": rec.quantile(q) for q in SUMMARY_QUANTILES},
        },
    }


def calibrate(
    model: onnx.ModelProto | str | os.PathLike,
    batches: Iterable[Mapping[str, np.ndarray]],
    tensors: Sequence[str],
    methods: Sequence[str] = ("entropy",),
    *,
    num_batches: int | None = None,
    params: Mapping[str, Any] | None = None,
    percentile: float | None = None,
    format: str | QuantFormat = "int8",
    threads: int | None = None,
    optional: Sequence[str] = (),
    activation_budget: int = ACTIVATION_BUDGET,
    outputs: list[dict[str, np.ndarray]] | None = None,
) -> Calibration:
    """Compute per-tensor amax for every method in `methods` from one pass of the FP32 model.

    Args:
        model: the FP32 ONNX model (ModelProto or path).
        batches: feed dicts (input name -> array); extra keys (labels, ...) are ignored.
        tensors: activation tensors to calibrate (graph inputs or node outputs).
        methods: registered method names (`trtq.calibrators.list_calibrators()`, aliases such as "max"), or "all".
        num_batches: stop after this many batches (default: all).
        params: method parameters by name (`Calibrator.params`: num_bins, start_bin, percentile, ...); each
            method takes the ones it declares.
        percentile: shortcut for `params["percentile"]`.
        format: the quantization format the thresholds are for.
        threads: ONNX Runtime intra-op threads (default: its choice).
        optional: tensors of `tensors` that are wanted but not required (the calibration cache's extra
            tensors): one that holds NaN/Inf (an attention mask's -inf) is dropped with a note instead of
            failing the run.
        activation_budget: bytes of exposed activations one ONNX Runtime call may return: a batch is run a
            few samples at a time (as many as fit, measured on its first sample) when the model's batch axis
            is dynamic. The thresholds do not depend on it (the histograms are exact and order-free). Two parts are
            alive at a time: the one being folded and the next, inferred meanwhile (`ahead`).
        outputs: a list to append each batch's graph outputs to (name -> array, the parts of a batch joined): the
            FP32 model's outputs on the calibration data, which the same inference computes anyway, so a run that
            validates on its calibration data needs no second FP32 pass.

    Returns:
        The thresholds of every method; `method` is the first one requested.

    Raises:
        UsageError: unknown method or tensor, missing model input, no data.
        TrtqError: an activation holds NaN/Inf (names the tensor and the batch index).
    """
    from trtq.runners import OnnxRuntimeRunner

    wanted = resolve_methods(methods)
    fmt = get_format(format)
    params = dict(params or {})
    if percentile is not None:
        params["percentile"] = percentile
    proto = load_model(model)
    tensors = list(tensors)
    if not tensors:
        raise UsageError("no tensors to calibrate; pass the activations the Q/DQ plan quantizes")
    from_input, from_graph = _check_tensors(proto, tensors)
    calibrators = make_calibrators(wanted, params, fmt)
    collector = calibrators[wanted[0]].collector

    if num_batches is not None:
        if num_batches < 1:
            raise UsageError(f"num_batches must be >= 1, got {num_batches}")
        batches = itertools.islice(batches, num_batches)
    total = num_batches
    if total is None:
        try:
            total = len(batches)  # type: ignore[arg-type]
        except TypeError:
            total = None

    seen = 0
    maybe = set(optional)
    notes: list[str] = []
    graph_outputs = [o.name for o in proto.graph.output]
    runner = OnnxRuntimeRunner(proto, extra_outputs=from_graph, threads=threads, name="calibration")
    with runner:
        meta = runner.input_metadata()
        input_names = list(meta)
        # a few samples per call: the exposed activations are what this pass holds (the histograms are exact and
        # order-free, so the split changes no threshold)
        parts = PartRunner(runner, activation_budget if from_graph else 0)

        def inferred() -> Iterator[tuple[int, Iterator[tuple[dict, dict]]]]:
            for index, feed in enumerate(track(batches, "calibrating", total=total)):
                missing = [n for n in input_names if n not in feed]
                if missing:
                    raise UsageError(
                        f"calibration batch {index} has no input {missing[0]!r} (it has: "
                        f"{', '.join(map(str, feed))})"
                    )
                model_feed = {n: np.asarray(feed[n], dtype=meta[n][0]) for n in input_names}
                if from_graph or outputs is not None:
                    yield from ((index, p) for p in parts.parts(model_feed))
                else:
                    yield index, (model_feed, {})

        # ONNX Runtime computes the next part while this one is folded (it releases the GIL): one part ahead
        kept: dict[str, list[np.ndarray]] = {}

        def flush() -> None:
            if outputs is not None and kept:
                outputs.append({o: v[0] if len(v) == 1 else np.concatenate(v) for o, v in kept.items()})
            kept.clear()

        for index, (part, got) in ahead(inferred()):
            if index >= seen:  # a new batch
                flush()
                seen = index + 1
            activations = {t: (part[t] if t in part else got[t]) for t in tensors}
            if outputs is not None:
                for o in graph_outputs:
                    kept.setdefault(o, []).append(np.array(got[o]))
            del got
            # NaN/Inf -> NonFiniteActivation, except in an optional tensor: that one is dropped
            for t in collector.collect(activations, batch_index=index, optional=maybe):
                tensors.remove(t)
                notes.append(f"calibration.cache leaves out {t!r}: it holds NaN or Inf (batch {index})")
            del activations, part
        flush()
    if seen == 0:
        raise UsageError("the calibration data yielded no batches; check --calib-data")

    amax: dict[str, dict[str, float]] = {}
    min_amax = fmt.min_amax
    dead = [t for t in tensors if collector[t].absmax == 0.0]
    for t in dead:
        notes.append(
            f"tensor {t!r} was exactly zero on all calibration data; amax clamped to {min_amax:.6g} "
            "(a dead activation: consider whether the calibration data exercises this path)"
        )
    for m, cal in calibrators.items():
        raw = cal.compute_amax()
        amax[m] = {t: (float(raw[t]) if raw[t] > 0 else min_amax) for t in tensors}
    return Calibration(
        methods=list(wanted),
        amax=amax,
        stats={t: _summary(collector[t], NUM_BINS) for t in tensors},
        method=wanted[0],
        warnings=notes,
        settings={
            "batches": seen,
            "fine_bins": collector.fine_bins,
            "params": {m: _method_kwargs(m, params) for m in wanted},
        },
        format=fmt.name,
        histograms={t: collector[t] for t in tensors},
    )


def resolve_methods(methods: Sequence[str] | str) -> list[str]:
    """Registered method names for names, aliases, comma-separated lists or "all" (every registered method)."""
    if isinstance(methods, str):
        methods = [methods]
    names: list[str] = []
    for text in methods:
        for m in [x.strip() for x in str(text).split(",") if x.strip()]:
            group = CALIBRATORS.names() if m == "all" else [CALIBRATORS.canonical(m)]
            for name in group:
                if name not in CALIBRATORS:
                    raise UsageError(CALIBRATORS.unknown_message(m) + ", or all")
                if name not in names:
                    names.append(name)
    if not names:
        raise UsageError("no calibration method given")
    return names


def make_calibrators(
    methods: Sequence[str], params: Mapping[str, Any], fmt: QuantFormat
) -> dict[str, CollectorCalibrator]:
    """One calibrator per method, all reading one collector (histograms only if some method needs them).

    Each method gets the parameters it declares (`Calibrator.params`) from `params`; the collector's fine
    histogram is sized for the largest `num_bins` asked for.
    """
    classes = {m: CALIBRATORS[m] for m in methods}
    needs_hist = any(getattr(c, "needs_histogram", True) for c in classes.values())
    kwargs_of = {m: _method_kwargs(m, params) for m in methods}
    num_bins = max([int(k.get("num_bins", NUM_BINS)) for k in kwargs_of.values()] or [NUM_BINS])
    collector = HistogramCollector(fine_bins_for(num_bins), histograms=needs_hist)
    out: dict[str, CollectorCalibrator] = {}
    for m in methods:
        kwargs: dict[str, Any] = {"num_bins": NUM_BINS, **kwargs_of[m], "collector": collector, "format": fmt}
        try:
            cal = get_calibrator(m, **kwargs)
        except TypeError as e:
            raise TrtqError(f"calibrator {m!r} does not take the standard arguments ({e})") from None
        if not isinstance(cal, CollectorCalibrator):
            raise TrtqError(
                f"calibrator {m!r} does not read a shared collector; it cannot join a one-pass run"
            )
        out[m] = cal
    return out


def _method_kwargs(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    declared = method_params(method)
    return {k: declared[k].convert(v, method) for k, v in params.items() if k in declared and v is not None}
