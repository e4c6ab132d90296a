"""The calibration pass: run the FP32 ONNX model once over the data and compute every method's amax.

`calibrate()` runs the model in ONNX Runtime with the requested activations exposed as extra outputs,
folds each batch into one shared `HistogramCollector` and drops it, then asks each requested method for
its thresholds. Memory is tensors x histogram bins, whatever the number of samples. The result is a
`Calibration` that saves to (and loads from) `calibration.json`. `choose_method()` scores the methods on
held-out data for `--calib all`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq._io import write_json
from trtq.calibrators import HistogramCollector, TensorHistogram, canonical_method
from trtq.calibrators.base import CALIBRATORS, get_calibrator
from trtq.calibrators.histogram import CollectorCalibrator, fine_bins_for
from trtq.calibrators.plot import plot_thresholds
from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION, read_trt_cache, write_trt_cache
from trtq.errors import TrtqError, UsageError
from trtq.progress import track

__all__ = [
    "Calibration",
    "calibrate",
    "choose_method",
    "calibrate_model",
    "plot_thresholds",
    "read_trt_cache",
    "write_trt_cache",
    "MIN_AMAX",
    "CALIBRATION_FORMAT",
]

#: amax given to a tensor that was exactly zero on all calibration data: the smallest amax whose
#: scale (amax / 127) is still a normal FP16 number, so FP16-typed Q/DQ scales stay valid.
MIN_AMAX = 127.0 * 2.0**-14

CALIBRATION_FORMAT = "trtq.calibration/1"

_SUMMARY_QUANTILES = (0.5, 0.99, 0.999, 0.9999, 0.99999)


@dataclass
class Calibration:
    """Per-tensor thresholds for one or more calibration methods, plus what they were computed from.

    Attributes:
        methods: methods computed, in the order requested.
        amax: method -> tensor -> amax (clipping threshold; int8 scale = amax / 127).
        stats: tensor -> summary statistics (min, max, absmax, mean, std, count, zero_fraction, histogram).
        method: the method whose thresholds `amax_for()` returns by default.
        warnings: notes a person should read (dead tensors clamped, ...).
        settings: how the thresholds were computed (batches, bins, percentile).
        scores: method -> fidelity scores from `choose_method`, if it ran.
        histograms: tensor -> collected histogram (in memory only; used by plots, not saved).
    """

    methods: list[str]
    amax: dict[str, dict[str, float]]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    method: str = ""
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] | None = None
    histograms: dict[str, TensorHistogram] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.method and self.methods:
            self.method = self.methods[0]

    @property
    def tensors(self) -> list[str]:
        """Tensor names, in calibration order."""
        return list(self.amax[self.methods[0]]) if self.methods else []

    def amax_for(self, method: str | None = None) -> dict[str, float]:
        """tensor -> amax for `method` (default: the chosen method).

        Raises:
            UsageError: the method was not computed.
        """
        m = canonical_method(method or self.method)
        if m not in self.amax:
            raise UsageError(
                f"calibration method {m!r} was not computed (have: {', '.join(self.methods)}); "
                f"rerun calibration with it"
            )
        return dict(self.amax[m])

    @classmethod
    def from_amax(cls, amax: Mapping[str, float], method: str = "external", **settings: Any) -> Calibration:
        """Wrap thresholds from elsewhere (a TensorRT calibration cache, a user file) as a Calibration."""
        values = {str(k): float(v) for k, v in amax.items()}
        for name, v in values.items():
            if not (math.isfinite(v) and v > 0):
                raise UsageError(f"amax of tensor {name!r} is {v}; it must be a finite positive number")
        return cls(methods=[method], amax={method: values}, method=method, settings=dict(settings))

    def to_dict(self) -> dict[str, Any]:
        """The calibration.json content: readable, and ordered the same way for the same inputs."""
        tensors: dict[str, Any] = {}
        for name in self.tensors:
            tensors[name] = {
                "amax": {m: self.amax[m][name] for m in self.methods},
                **({"stats": self.stats[name]} if name in self.stats else {}),
            }
        return {
            "format": CALIBRATION_FORMAT,
            "method": self.method,
            "methods": list(self.methods),
            "settings": self.settings,
            "warnings": list(self.warnings),
            "scores": self.scores,
            "tensors": tensors,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write calibration.json atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, *, expect_tensors: Iterable[str] | None = None) -> Calibration:
        """Read a calibration.json written by `save`.

        Args:
            path: the file.
            expect_tensors: tensors the caller needs thresholds for; a file lacking any is refused.

        Raises:
            UsageError: missing, corrupt, from another tool, or lacking expected tensors.
        """
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"calibration file {p} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(
                f"calibration file {p} is not valid JSON ({e}); recreate it with trtq calibrate"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
            raise UsageError(
                f"{p} is not a trtq calibration file (expected format {CALIBRATION_FORMAT!r}); "
                "recreate it with trtq calibrate"
            )
        try:
            methods = [str(m) for m in doc["methods"]]
            amax: dict[str, dict[str, float]] = {m: {} for m in methods}
            stats: dict[str, dict[str, Any]] = {}
            for name, entry in doc["tensors"].items():
                for m in methods:
                    v = float(entry["amax"][m])
                    if not (math.isfinite(v) and v > 0):
                        raise ValueError(f"amax {v} of tensor {name!r} is not a finite positive number")
                    amax[m][name] = v
                if "stats" in entry:
                    stats[name] = dict(entry["stats"])
            cal = cls(
                methods=methods,
                amax=amax,
                stats=stats,
                method=str(doc.get("method") or (methods[0] if methods else "")),
                warnings=[str(w) for w in doc.get("warnings", [])],
                settings=dict(doc.get("settings") or {}),
                scores=doc.get("scores"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(
                f"calibration file {p} is malformed ({e}); recreate it with trtq calibrate"
            ) from None
        if not methods or cal.method not in methods:
            raise UsageError(f"calibration file {p} names no usable method; recreate it with trtq calibrate")
        if expect_tensors is not None:
            missing = [t for t in expect_tensors if t not in amax[methods[0]]]
            if missing:
                raise UsageError(
                    f"calibration file {p} has no amax for {len(missing)} tensor(s) of this model "
                    f"(first: {missing[0]!r}); it was made for another model or plan: recalibrate"
                )
        return cal


def _load_model(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    p = Path(model)
    if not p.is_file():
        raise UsageError(f"model {p} does not exist; pass the FP32 .onnx file to calibrate")
    try:
        return onnx.load(str(p))
    except Exception as e:  # onnx raises several protobuf/decode errors
        raise UsageError(
            f"model {p} is not a readable ONNX file ({type(e).__name__}); re-export it"
        ) from None


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
            "abs_quantiles": {f"{q:g}": rec.quantile(q) for q in _SUMMARY_QUANTILES},
        },
    }


def calibrate(
    model: onnx.ModelProto | str | os.PathLike,
    batches: Iterable[Mapping[str, np.ndarray]],
    tensors: Sequence[str],
    methods: Sequence[str] = ("entropy",),
    *,
    num_batches: int | None = None,
    percentile: float = 99.99,
    num_bins: int = 2048,
    threads: int | None = None,
) -> Calibration:
    """Compute per-tensor amax for every method in `methods` from one pass of the FP32 model.

    Args:
        model: the FP32 ONNX model (ModelProto or path).
        batches: feed dicts (input name -> array); extra keys (labels, ...) are ignored.
        tensors: activation tensors to calibrate (graph inputs or node outputs).
        methods: registered method names ("entropy", "minmax"/"max", "percentile", "mse"), or "all".
        num_batches: stop after this many batches (default: all).
        percentile: percentile for the "percentile" method.
        num_bins: histogram bins for the threshold searches.
        threads: ONNX Runtime intra-op threads (default: its choice).

    Returns:
        The thresholds of every method; `method` is the first one requested.

    Raises:
        UsageError: unknown method or tensor, missing model input, no data.
        TrtqError: an activation holds NaN/Inf (names the tensor and the batch index).
    """
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    wanted = _resolve_methods(methods)
    proto = _load_model(model)
    tensors = list(tensors)
    if not tensors:
        raise UsageError("no tensors to calibrate; pass the activations the Q/DQ plan quantizes")
    from_input, from_graph = _check_tensors(proto, tensors)
    calibrators = _make_calibrators(wanted, num_bins=num_bins, percentile=percentile)
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
    runner = OnnxRuntimeRunner(proto, extra_outputs=from_graph, threads=threads, name="calibration")
    with runner:
        meta = runner.input_metadata()
        input_names = list(meta)
        for index, feed in enumerate(track(batches, "calibrating", total=total)):
            missing = [n for n in input_names if n not in feed]
            if missing:
                raise UsageError(
                    f"calibration batch {index} has no input {missing[0]!r} (it has: {', '.join(map(str, feed))})"
                )
            model_feed = {n: np.asarray(feed[n], dtype=meta[n][0]) for n in input_names}
            outputs = runner.infer(model_feed) if from_graph else {}
            activations = {t: (model_feed[t] if t in model_feed else outputs[t]) for t in tensors}
            del outputs
            collector.collect(activations, batch_index=index)  # NaN/Inf -> NonFiniteActivation (TrtqError)
            del activations
            seen += 1
    if seen == 0:
        raise UsageError("the calibration data yielded no batches; check --calib-data")

    amax: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    dead = [t for t in tensors if collector[t].absmax == 0.0]
    for t in dead:
        notes.append(
            f"tensor {t!r} was exactly zero on all calibration data; amax clamped to {MIN_AMAX:.6g} "
            "(a dead activation: consider whether the calibration data exercises this path)"
        )
    for m, cal in calibrators.items():
        raw = cal.compute_amax()
        amax[m] = {t: (float(raw[t]) if raw[t] > 0 else MIN_AMAX) for t in tensors}
    return Calibration(
        methods=list(wanted),
        amax=amax,
        stats={t: _summary(collector[t], num_bins) for t in tensors},
        method=wanted[0],
        warnings=notes,
        settings={
            "batches": seen,
            "num_bins": num_bins,
            "fine_bins": collector.fine_bins,
            "percentile": percentile,
        },
        histograms={t: collector[t] for t in tensors},
    )


def _resolve_methods(methods: Sequence[str] | str) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    names: list[str] = []
    for m in methods:
        group = ["entropy", "minmax", "percentile", "mse"] if m == "all" else [canonical_method(m)]
        for name in group:
            if name not in CALIBRATORS:
                raise UsageError(
                    f"unknown calibration method {m!r}; choose from {', '.join(sorted(CALIBRATORS))} or all"
                )
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError("no calibration method given")
    return names


def _make_calibrators(
    methods: Sequence[str], *, num_bins: int, percentile: float
) -> dict[str, CollectorCalibrator]:
    """One calibrator per method, all reading one collector (histograms only if some method needs them)."""
    classes = {m: CALIBRATORS[m] for m in methods}
    needs_hist = any(getattr(c, "needs_histogram", True) for c in classes.values())
    collector = HistogramCollector(fine_bins_for(num_bins), histograms=needs_hist)
    out: dict[str, CollectorCalibrator] = {}
    for m in methods:
        kwargs: dict[str, Any] = {"collector": collector, "num_bins": num_bins}
        if m == "percentile":
            kwargs["percentile"] = percentile
        cal = get_calibrator(m, **kwargs)
        if not isinstance(cal, CollectorCalibrator):
            raise TrtqError(
                f"calibrator {m!r} does not read a shared collector; it cannot join a one-pass run"
            )
        out[m] = cal
    return out


def choose_method(
    calibration: Calibration,
    quantize_fn: Callable[[dict[str, float]], onnx.ModelProto],
    heldout: Iterable[Mapping[str, np.ndarray]],
    *,
    reference_model: onnx.ModelProto | str | os.PathLike | None = None,
    reference_outputs: Sequence[Mapping[str, np.ndarray]] | None = None,
    methods: Sequence[str] | None = None,
    threads: int | None = None,
) -> tuple[str, dict[str, dict[str, float]]]:
    """Pick the method whose Q/DQ model is most faithful to FP32 on held-out batches.

    Each method's thresholds go through `quantize_fn` (amax dict -> Q/DQ ModelProto); the Q/DQ model runs
    in ONNX Runtime with Q/DQ executed as written, and its outputs are compared with the FP32 outputs.
    Score: mean per-sample cosine similarity of all graph outputs (higher is better); ties within 1e-6
    are broken by the lower mean squared error, then by the order of `calibration.methods`. Top-1
    agreement is reported too for 2-D outputs (classifier logits). See docs/calibration.md for why.

    Args:
        calibration: thresholds for one or more methods; its `method` and `scores` are updated.
        quantize_fn: builds the Q/DQ model from a tensor -> amax dict.
        heldout: held-out feed dicts (not the calibration batches); iterated once per method.
        reference_model: the FP32 model, to compute reference outputs (unless `reference_outputs` is given).
        reference_outputs: FP32 outputs for each held-out batch, in order.
        methods: methods to compare (default: all in the calibration).
        threads: ONNX Runtime intra-op threads.

    Returns:
        (best method, method -> {"cosine", "mse", and "top1_agreement" where it applies}).
    """
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    batches = [dict(b) for b in heldout]
    if not batches:
        raise UsageError("choose_method needs at least one held-out batch")
    if reference_outputs is None:
        if reference_model is None:
            raise UsageError("choose_method needs the FP32 model or its reference outputs")
        with OnnxRuntimeRunner(_load_model(reference_model), threads=threads, name="fp32") as fp32:
            names = list(fp32.input_metadata())
            reference_outputs = [fp32.infer({n: b[n] for n in names}) for b in batches]
    if len(reference_outputs) != len(batches):
        raise UsageError(f"{len(reference_outputs)} reference outputs for {len(batches)} held-out batches")
    scores: dict[str, dict[str, float]] = {}
    for m in [canonical_method(x) for x in (methods or calibration.methods)]:
        qmodel = quantize_fn(calibration.amax_for(m))
        with OnnxRuntimeRunner(qmodel, threads=threads, name=f"qdq-{m}") as runner:
            names = list(runner.input_metadata())
            outs = [runner.infer({n: b[n] for n in names}) for b in batches]
        scores[m] = _fidelity(reference_outputs, outs)
    order = {m: i for i, m in enumerate(scores)}
    best = min(scores, key=lambda m: (-round(scores[m]["cosine"], 6), scores[m]["mse"], order[m]))
    calibration.method = best
    calibration.scores = scores
    return best, scores


def _fidelity(
    refs: Sequence[Mapping[str, np.ndarray]], outs: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, float]:
    cos: list[np.ndarray] = []
    sq: list[float] = []
    nel = 0
    agree: list[np.ndarray] = []
    for ref, out in zip(refs, outs):
        for name, r in ref.items():
            r = np.asarray(r, dtype=np.float64)
            o = np.asarray(out[name], dtype=np.float64)
            rr = r.reshape(r.shape[0], -1) if r.ndim > 1 else r.reshape(1, -1)
            oo = o.reshape(rr.shape)
            num = (rr * oo).sum(axis=1)
            den = np.linalg.norm(rr, axis=1) * np.linalg.norm(oo, axis=1)
            cos.append(
                np.where(den > 0, num / np.where(den > 0, den, 1.0), (np.abs(rr - oo).max(axis=1) == 0) * 1.0)
            )
            sq.append(float(((rr - oo) ** 2).sum()))
            nel += rr.size
            if r.ndim == 2 and r.shape[1] > 1:
                agree.append(r.argmax(axis=1) == o.argmax(axis=1))
    result = {"cosine": float(np.concatenate(cos).mean()), "mse": sum(sq) / max(nel, 1)}
    if agree:
        result["top1_agreement"] = float(np.concatenate(agree).mean())
    return result


def calibrate_model(
    model: onnx.ModelProto | str | os.PathLike,
    calib_data: Any,
    out: str | os.PathLike,
    *,
    methods: Sequence[str] | str = ("entropy",),
    tensors: Sequence[str] | str = "auto",
    placement: Any = None,
    preprocess: Any = "imagenet",
    limit: int | None = 512,
    batch_size: int = 32,
    seed: int = 0,
    eval_data: Any = None,
    eval_limit: int | None = None,
    percentile: float = 99.99,
    trt_cache: str | os.PathLike | None = None,
    trt_version: tuple[int, int, int] = DEFAULT_CACHE_VERSION,
    plots: str | os.PathLike | None = None,
    force: bool = False,
) -> Calibration:
    """Calibrate an FP32 ONNX file from a data source and write calibration.json (what `trtq calibrate` does).

    Args:
        model: the FP32 ONNX model.
        calib_data: anything `trtq.data.load_data` opens (image folder, .npy/.npz, array, iterable).
        out: calibration.json to write.
        methods: method names or "all".
        tensors: "auto" (the activations trtq's Q/DQ placement quantizes) or explicit tensor names.
        placement: a `trtq.placement.PlacementConfig` for "auto".
        preprocess: preprocessing for image folders (a `trtq.data.Preprocess` or preset name).
        limit: reproducible subset of the calibration data (None = all).
        batch_size: batch size of the pass.
        seed: seed of the subsets.
        eval_data: held-out data; with several methods and "auto" tensors, the most faithful method is
            chosen on it (`choose_method`); without it the first method stays chosen.
        eval_limit: subset of the held-out data.
        percentile: for the percentile method.
        trt_cache: also write a TensorRT calibration cache of the chosen method here.
        trt_version: TensorRT version for the cache header.
        plots: folder for threshold plots of the 4 most disagreeing tensors (several methods only).
        force: overwrite existing output files.
    """
    from trtq._io import check_writable
    from trtq.data import load_data
    from trtq.placement import normalize, plan_qdq

    check_writable(out, force)
    if trt_cache is not None:
        check_writable(trt_cache, force)
    proto = normalize(_load_model(model))
    inputs = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1:
        raise UsageError(
            f"the model has {len(inputs)} inputs; calibration from a data folder needs exactly one"
        )
    plan = None
    if isinstance(tensors, str):
        if tensors != "auto":
            tensors = [t.strip() for t in tensors.split(",") if t.strip()]
        else:
            plan = plan_qdq(proto, placement)
            tensors = list(plan.activations)
            if not tensors:
                raise UsageError(
                    "the Q/DQ placement quantizes no activation in this model; nothing to calibrate"
                )
    data = load_data(calib_data, preprocess, limit=limit, seed=seed, what="--calib-data")
    cal = calibrate(
        proto,
        data.feeds(inputs[0], batch_size),
        list(tensors),
        methods,
        num_batches=data.num_batches(batch_size),
        percentile=percentile,
    )
    if len(cal.methods) > 1 and eval_data is not None:
        if plan is None:
            cal.warnings.append("method not chosen: choosing needs --tensors auto (the Q/DQ plan)")
        else:
            from trtq.qdq import insert_qdq

            held = load_data(eval_data, preprocess, limit=eval_limit, seed=seed, what="--eval-data")
            choose_method(
                cal,
                lambda a: insert_qdq(proto, plan, a),
                list(held.feeds(inputs[0], batch_size)),
                reference_model=proto,
            )
    cal.save(out)
    if trt_cache is not None:
        algo = "MinMaxCalibration" if cal.method == "minmax" else "EntropyCalibration2"
        write_trt_cache(trt_cache, cal.amax_for(), trt_version=trt_version, algorithm=algo)
    if plots is not None and len(cal.methods) > 1:
        cal.settings["plots"] = [str(p) for p in plot_thresholds(cal, 4, plots)]
    return cal
