"""Validation: run artifacts on the same data through Polygraphy's Comparator and score them against FP32.

Every model runs once over the evaluation batches; each candidate is then scored against the reference with the
registered metrics that apply (`trtq.metrics`: top-1 accuracy with labels, top-1 agreement for classifier
logits, cosine, SNR, and any metric the run names), with per-output error statistics, and Polygraphy's
`SimpleCompareFunc` gives a pass/fail verdict at the tolerances asked.

A model is given as an ONNX path / ModelProto (run by Polygraphy's ONNX Runtime runner on a session that
executes Q/DQ as written), a trtq runner (e.g. the TensorRT runner), or a Polygraphy runner.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.data import DataSource
from trtq.metrics import Metric, applicable_metrics
from trtq.runners import BaseRunner

__all__ = [
    "Comparison",
    "ValidationResult",
    "compare",
    "run_models",
    "evaluate_runs",
    "polygraphy_runner",
    "output_metrics",
    "stacked_outputs",
    "model_outputs",
]


@dataclass
class Comparison:
    """One candidate against the reference.

    Attributes:
        candidate: its label ("int8", "typed", "engine", ...).
        metrics: registered metric name -> value against the reference.
        outputs: output name -> error statistics (max/mean/median abs, max relative, cosine, min cosine).
        polygraphy_pass: Polygraphy's verdict at the tolerances asked.
        samples: how many samples it was scored on, when fewer than the validation's (a reproducible subset, the
            reference restricted to the same samples); None: all of them.
    """

    candidate: str
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    polygraphy_pass: bool | None = None
    samples: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "outputs": self.outputs,
            "polygraphy_pass": self.polygraphy_pass,
        }


@dataclass
class ValidationResult:
    """Every candidate of one validation run against the reference, on the same samples.

    Attributes:
        reference: the reference's label ("fp32").
        samples: how many samples were compared.
        data: which data ("eval", "calibration (no --eval-data)", a path).
        metrics: the metrics computed, in display order (task metrics first).
        reference_metrics: each metric of the reference against itself (its accuracy; 1.0 for agreement).
        candidates: label -> comparison.
        tolerances: Polygraphy's settings.
        reused: label -> how many of its samples' outputs were not run again here but taken from an earlier run of
            the same model on them (the `--calib all` method choice runs the chosen Q/DQ model on its held-out
            samples); every sample was still run once by that model.
    """

    reference: str
    samples: int
    data: str = ""
    metrics: list[Metric] = field(default_factory=list)
    reference_metrics: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, Comparison] = field(default_factory=dict)
    tolerances: dict[str, Any] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)

    def value(self, model: str, metric: str) -> float | None:
        """A metric of `model` (the reference or a candidate label); None when not computed."""
        if model == self.reference:
            return self.reference_metrics.get(metric)
        c = self.candidates.get(model)
        return None if c is None else c.metrics.get(metric)

    def subsets(self) -> dict[str, int]:
        """label -> samples, for the candidates scored on a subset of the validation's samples."""
        return {k: c.samples for k, c in self.candidates.items() if c.samples is not None}

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "samples": self.samples,
            "data": self.data,
            "metrics": [m.to_json() for m in self.metrics],
            "models": {
                self.reference: self.reference_metrics,
                **{k: c.metrics for k, c in self.candidates.items()},
            },
            "outputs": {k: c.outputs for k, c in self.candidates.items()},
            "polygraphy": {
                **{k: c.polygraphy_pass for k, c in self.candidates.items()},
                **self.tolerances,
            },
            **({"reused_outputs": dict(self.reused)} if self.reused else {}),
            **({"samples_of": subsets} if (subsets := self.subsets()) else {}),
        }


class _AdaptedRunner:
    """Wraps a trtq BaseRunner as a Polygraphy runner (built lazily to keep polygraphy imports local)."""

    @staticmethod
    def make(runner: BaseRunner, name: str | None = None) -> Any:
        from polygraphy.backend.base import BaseRunner as PgBaseRunner
        from polygraphy.common import TensorMetadata

        class Adapted(PgBaseRunner):
            def __init__(self) -> None:
                super().__init__(name=name or runner.name)

            def activate_impl(self) -> None:
                runner.activate()

            def deactivate_impl(self) -> None:
                runner.deactivate()

            def get_input_metadata_impl(self) -> Any:
                meta = TensorMetadata()
                for name, (dtype, shape) in runner.input_metadata().items():
                    meta.add(name, dtype, shape)
                return meta

            def infer_impl(self, feed_dict: Mapping[str, np.ndarray]) -> OrderedDict:
                out = runner.infer(feed_dict)
                self.inference_time = runner.last_inference_time()
                return OrderedDict(out)

        return Adapted()


def polygraphy_runner(model: Any, name: str | None = None) -> Any:
    """A Polygraphy runner for an ONNX path/ModelProto (Q/DQ executed as written) or a trtq BaseRunner."""
    if isinstance(model, BaseRunner):
        return _AdaptedRunner.make(model, name)
    if isinstance(model, (str, os.PathLike, onnx.ModelProto)):
        import onnxruntime as ort
        from polygraphy.backend.onnxrt import OnnxrtRunner

        from trtq.onnx_io import session_input
        from trtq.runners.onnxrt import QDQ_FUSION_OPTIMIZERS, session_options

        def make_session() -> Any:
            # no arena: it would hold the largest activations of any call until the session ends, on top of the
            # resident floor (PyTorch, numba) the validate stage peaks over (docs/performance.md)
            opts = session_options(arena=False)
            if not isinstance(model, onnx.ModelProto):
                source: Any = str(model)  # a file: ONNX Runtime reads external data beside it
                return ort.InferenceSession(
                    source,
                    opts,
                    providers=["CPUExecutionProvider"],
                    disabled_optimizers=QDQ_FUSION_OPTIMIZERS,
                )
            with session_input(model) as source:
                return ort.InferenceSession(
                    source,
                    opts,
                    providers=["CPUExecutionProvider"],
                    disabled_optimizers=QDQ_FUSION_OPTIMIZERS,
                )

        label = name or (os.path.basename(str(model)) if not isinstance(model, onnx.ModelProto) else "onnx")
        return OnnxrtRunner(make_session, name=label)
    return model  # assume a Polygraphy runner already


def output_metrics(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Error statistics of one output against its reference."""
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    diff = np.abs(ref64 - got64)
    rel = diff / np.maximum(np.abs(ref64), 1e-6)
    r2, g2 = ref64.reshape(len(ref64), -1), got64.reshape(len(got64), -1)
    denom = np.linalg.norm(r2, axis=1) * np.linalg.norm(g2, axis=1)
    cos = np.where(denom > 0, np.sum(r2 * g2, axis=1) / np.maximum(denom, 1e-30), 1.0)
    return {
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "median_abs_error": float(np.median(diff)) if diff.size else 0.0,
        "max_rel_error": float(rel.max()) if rel.size else 0.0,
        "cosine_similarity": float(cos.mean()) if cos.size else 1.0,
        "min_cosine_similarity": float(cos.min()) if cos.size else 1.0,
    }


def _feed_source(
    data: DataSource | Iterable[Mapping[str, np.ndarray]] | Callable[[], Iterable[Mapping[str, np.ndarray]]],
    input_name: str | None,
    batch_size: int,
) -> Callable[[], Iterable[Mapping[str, np.ndarray]]]:
    """A function giving the feeds afresh for each model: a DataSource and a callable decode batch by batch (no
    input is held); any other iterable is read once into a list."""
    if isinstance(data, DataSource):
        if input_name is None:
            raise ValueError("input_name is required with a DataSource")
        return lambda: data.feeds(input_name, batch_size)
    if callable(data):
        return data
    held = [dict(f) for f in data]
    return lambda: held


def model_outputs(
    model: Any, feeds: Iterable[Mapping[str, np.ndarray]], name: str = "fp32"
) -> list[dict[str, np.ndarray]]:
    """One model's outputs per feed (ONNX path / ModelProto / trtq runner / Polygraphy runner): one session, the
    feeds consumed as they come, only the outputs kept."""
    iters = _run_one(polygraphy_runner(model, name), feeds, name, split=_is_onnx(model))
    return [dict(it) for it in iters]


def _is_onnx(model: Any) -> bool:
    """An ONNX model run by ONNX Runtime here (a few samples per call is then safe; an engine's optimisation
    profile may accept only the batch sizes it was built for)."""
    return isinstance(model, (str, os.PathLike, onnx.ModelProto))


def _run_one(
    runner: Any, feeds: Iterable[Mapping[str, np.ndarray]], label: str, split: bool = True
) -> list[Any]:
    from polygraphy.comparator import IterationResult

    from trtq.runners.onnxrt import INFER_SAMPLES, PartRunner

    out = []
    with runner:
        names = list(runner.get_input_metadata().keys())
        # a few samples per ONNX Runtime call: its memory for intermediate activations grows with the batch
        parts = PartRunner(runner, 0, max_samples=INFER_SAMPLES if split else None)
        for feed in feeds:
            start = time.perf_counter()
            got = parts.infer({n: feed[n] for n in names if n in feed})
            out.append(
                IterationResult(
                    outputs=OrderedDict(got), runtime=time.perf_counter() - start, runner_name=label
                )
            )
    return out


def run_models(
    models: Mapping[str, Any],
    data: DataSource | Iterable[Mapping[str, np.ndarray]] | Callable[[], Iterable[Mapping[str, np.ndarray]]],
    *,
    input_name: str | None = None,
    batch_size: int = 32,
    outputs: Mapping[str, Sequence[Mapping[str, np.ndarray]]] | None = None,
) -> Any:
    """Run each model once over the same batches, one model (one session) at a time; returns Polygraphy RunResults.

    Only outputs are kept: the batches are decoded afresh for each model from a DataSource or a callable that
    returns the feeds, so no input is held (a plain iterable of feeds is read once into a list).

    Args:
        models: label -> ONNX path / ModelProto / trtq runner / Polygraphy runner.
        data: a DataSource (needs `input_name`), a function returning the feeds, or an iterable of feed dicts.
        outputs: label -> outputs per batch already computed on the same batches (e.g. the shared FP32 reference);
            those models are not run again.
    """
    from polygraphy.comparator import IterationResult, RunResults
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.CRITICAL
    feeds = _feed_source(data, input_name, batch_size)
    results = RunResults()
    for label, model in models.items():
        if outputs is not None and label in outputs:
            iters = [
                IterationResult(outputs=OrderedDict(o), runtime=0.0, runner_name=label)
                for o in outputs[label]
            ]
        else:
            iters = _run_one(polygraphy_runner(model, label), feeds(), label, split=_is_onnx(model))
        results.append((label, iters))
    return results


def joined_outputs(batches: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per-batch outputs (name -> array), batches joined on axis 0."""
    return {name: np.concatenate([np.asarray(b[name]) for b in batches]) for name in batches[0].keys()}


def split_outputs(joined: Mapping[str, np.ndarray], sizes: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Joined outputs cut back into batches of `sizes` samples (the inverse of `joined_outputs`)."""
    bounds = np.cumsum([0, *sizes])
    return [{k: v[a:b] for k, v in joined.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def stacked_outputs(results: Any, label: str) -> dict[str, np.ndarray]:
    """One runner's outputs from a RunResults, batches joined on axis 0."""
    return joined_outputs(dict(results.items())[label])


def _verdict(results: Any, reference: str, candidate: str, rtol: float, atol: float, stat: str) -> bool:
    from polygraphy.comparator import Comparator, RunResults
    from polygraphy.comparator.compare import SimpleCompareFunc

    by_name = dict(results.items())
    pair = RunResults()
    pair.append((reference, by_name[reference]))
    pair.append((candidate, by_name[candidate]))
    func = SimpleCompareFunc(rtol=rtol, atol=atol, check_error_stat=stat)
    return bool(Comparator.compare_accuracy(pair, compare_func=func))


def evaluate_runs(
    results: Any,
    reference: str,
    candidates: Sequence[str],
    *,
    targets: Any = None,
    extra_metrics: Sequence[Metric] = (),
    data: str = "",
    rtol: float = 5e-2,
    atol: float = 5e-2,
    check_error_stat: str = "median",
) -> ValidationResult:
    """Score each candidate of a `run_models` result against the reference.

    Args:
        results: `run_models`' RunResults.
        reference, candidates: runner labels.
        targets: the data's targets (`trtq.data.ClassLabels`, ...) for task metrics.
        extra_metrics: metrics to compute besides the automatic ones that apply.
        data: a label of the data, for the report.
        rtol, atol, check_error_stat: Polygraphy SimpleCompareFunc settings for the pass/fail verdict.
    """
    ref = stacked_outputs(results, reference)
    kind = None if targets is None else targets.kind
    metrics = applicable_metrics(ref, kind, tuple(extra_metrics))
    metrics.sort(key=lambda m: m.kind != "task")  # task metrics first, stable otherwise
    out = ValidationResult(
        reference=reference,
        samples=int(len(next(iter(ref.values())))) if ref else 0,
        data=data,
        metrics=metrics,
        reference_metrics={m.name: m(ref, ref, targets) for m in metrics if m.kind == "task"},
        tolerances={"rtol": rtol, "atol": atol, "check_error_stat": check_error_stat},
    )
    for label in candidates:
        got = stacked_outputs(results, label)
        out.candidates[label] = Comparison(
            candidate=label,
            metrics={m.name: m(ref, got, targets) for m in metrics},
            outputs={name: output_metrics(ref[name], got[name]) for name in ref},
            polygraphy_pass=_verdict(results, reference, label, rtol, atol, check_error_stat),
        )
    return out


def compare(
    candidate: Any,
    reference: Any,
    data: DataSource | Iterable[Mapping[str, np.ndarray]],
    *,
    input_name: str | None = None,
    batch_size: int = 32,
    targets: Any = None,
    extra_metrics: Sequence[Metric] = (),
    rtol: float = 5e-2,
    atol: float = 5e-2,
    check_error_stat: str = "median",
) -> ValidationResult:
    """Run `reference` and `candidate` on the same batches through Polygraphy and score the candidate.

    Args:
        candidate, reference: ONNX paths / ModelProtos, trtq runners or Polygraphy runners.
        data: a DataSource (needs `input_name`) or an iterable of feed dicts.
        targets: ground truth for task metrics (taken from the DataSource when it has them).
        extra_metrics: metrics to compute besides the automatic ones.
        rtol, atol, check_error_stat: Polygraphy SimpleCompareFunc settings for the pass/fail verdict.

    Returns:
        A result whose candidate is labelled "candidate" and reference "reference".
    """
    if targets is None and isinstance(data, DataSource):
        targets = data.targets
    results = run_models({"reference": reference, "candidate": candidate}, data, input_name=input_name,
                         batch_size=batch_size)  # fmt: skip
    return evaluate_runs(
        results, "reference", ["candidate"], targets=targets, extra_metrics=extra_metrics,
        data=getattr(data, "name", ""), rtol=rtol, atol=atol, check_error_stat=check_error_stat,
    )  # fmt: skip
