"""Validation: run two artifacts on the same data through Polygraphy's Comparator and measure how close they are.

Metrics per output: max / mean / median absolute error, max relative error, cosine similarity (mean over
samples); for classifier-shaped outputs (N, K): top-1 agreement with the reference and, with labels, top-1 /
top-5 accuracy of both. Polygraphy's `SimpleCompareFunc` gives a pass/fail verdict at the tolerances asked.

A runner is given as an ONNX path / ModelProto (run by Polygraphy's ONNX Runtime runner on a session that
executes Q/DQ as written), a trtq `BaseRunner` (e.g. the TensorRT runner), or a Polygraphy runner.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.data import DataSource
from trtq.runners.base import BaseRunner

__all__ = [
    "ValidationResult",
    "compare",
    "run_models",
    "compare_results",
    "polygraphy_runner",
    "classification_metrics",
    "output_metrics",
]


@dataclass
class ValidationResult:
    reference: str
    candidate: str
    samples: int
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    classification: dict[str, float] = field(default_factory=dict)
    polygraphy_pass: bool | None = None
    tolerances: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "samples": self.samples,
            "outputs": self.outputs,
            "classification": self.classification,
            "polygraphy": {"pass": self.polygraphy_pass, **self.tolerances},
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

        from trtq.runners.onnxrt import QDQ_FUSION_OPTIMIZERS

        data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else open(model, "rb").read()

        def make_session() -> Any:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            return ort.InferenceSession(
                data, opts, providers=["CPUExecutionProvider"], disabled_optimizers=QDQ_FUSION_OPTIMIZERS
            )

        label = name or (os.path.basename(str(model)) if not isinstance(model, onnx.ModelProto) else "onnx")
        return OnnxrtRunner(make_session, name=label)
    return model  # assume a Polygraphy runner already


def output_metrics(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
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


def classification_metrics(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
    """Top-1 agreement (and top-1/top-5 accuracy with labels) for (N, K) logits."""
    ref2, got2 = ref.reshape(len(ref), -1), got.reshape(len(got), -1)
    out = {"top1_agreement": float(np.mean(ref2.argmax(1) == got2.argmax(1)))}
    if labels is not None:
        k = min(5, ref2.shape[1])
        for tag, logits in (("reference", ref2), ("candidate", got2)):
            out[f"{tag}_top1"] = float(np.mean(logits.argmax(1) == labels))
            topk = np.argsort(-logits, axis=1, kind="stable")[:, :k]
            out[f"{tag}_top5"] = float(np.mean(np.any(topk == labels[:, None], axis=1)))
        out["top1_drop"] = out["reference_top1"] - out["candidate_top1"]
    return out


def _feeds(
    data: DataSource | Iterable[Mapping[str, np.ndarray]], input_name: str | None, batch_size: int
) -> list[dict[str, np.ndarray]]:
    if isinstance(data, DataSource):
        if input_name is None:
            raise ValueError("input_name is required with a DataSource")
        return [{input_name: x} for x, _ in data.iter_batches(batch_size)]
    return [dict(f) for f in data]


def run_models(
    models: Mapping[str, Any],
    data: DataSource | Iterable[Mapping[str, np.ndarray]],
    *,
    input_name: str | None = None,
    batch_size: int = 32,
) -> Any:
    """Run each model once over the same batches through Polygraphy's Comparator; returns its RunResults.

    Args:
        models: label -> ONNX path / ModelProto / trtq runner / Polygraphy runner.
        data: a DataSource (needs `input_name`) or an iterable of feed dicts.
    """
    from polygraphy.comparator import Comparator
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.CRITICAL
    runners = [polygraphy_runner(model, label) for label, model in models.items()]
    return Comparator.run(runners, data_loader=_feeds(data, input_name, batch_size))


def compare_results(
    results: Any,
    candidate: str,
    reference: str,
    *,
    labels: np.ndarray | None = None,
    rtol: float = 5e-2,
    atol: float = 5e-2,
    check_error_stat: str = "median",
) -> ValidationResult:
    """Metrics and Polygraphy's verdict for two runners of one `run_models` result, by label."""
    from polygraphy.comparator import Comparator, RunResults
    from polygraphy.comparator.compare import SimpleCompareFunc

    by_name = dict(results.items())
    ref_iters, cand_iters = by_name[reference], by_name[candidate]
    pair = RunResults()
    pair.append((reference, ref_iters))
    pair.append((candidate, cand_iters))
    verdict = Comparator.compare_accuracy(
        pair, compare_func=SimpleCompareFunc(rtol=rtol, atol=atol, check_error_stat=check_error_stat)
    )
    outputs: dict[str, dict[str, float]] = {}
    first_ref = first_got = None
    for name in ref_iters[0].keys():
        ref = np.concatenate([np.asarray(it[name]) for it in ref_iters])
        got = np.concatenate([np.asarray(it[name]) for it in cand_iters])
        outputs[name] = output_metrics(ref, got)
        if first_ref is None:
            first_ref, first_got = ref, got
    cls: dict[str, float] = {}
    if first_ref is not None and first_ref.ndim == 2 and first_ref.shape[1] > 1:
        cls = classification_metrics(first_ref, first_got, labels)
    return ValidationResult(
        reference=reference,
        candidate=candidate,
        samples=int(len(first_ref)) if first_ref is not None else 0,
        outputs=outputs,
        classification=cls,
        polygraphy_pass=bool(verdict),
        tolerances={"rtol": rtol, "atol": atol, "check_error_stat": check_error_stat},
    )


def compare(
    candidate: Any,
    reference: Any,
    data: DataSource | Iterable[Mapping[str, np.ndarray]],
    *,
    input_name: str | None = None,
    batch_size: int = 32,
    labels: np.ndarray | None = None,
    rtol: float = 5e-2,
    atol: float = 5e-2,
    check_error_stat: str = "median",
) -> ValidationResult:
    """Run `reference` and `candidate` on the same batches through Polygraphy and measure agreement.

    Args:
        candidate, reference: ONNX paths / ModelProtos, trtq runners or Polygraphy runners.
        data: a DataSource (needs `input_name`) or an iterable of feed dicts.
        labels: ground truth for top-1/top-5 (taken from the DataSource when it has them).
        rtol, atol, check_error_stat: Polygraphy SimpleCompareFunc settings for the pass/fail verdict.
    """
    if labels is None and isinstance(data, DataSource):
        labels = data.labels
    results = run_models({"reference": reference, "candidate": candidate}, data, input_name=input_name,
                         batch_size=batch_size)  # fmt: skip
    return compare_results(results, "candidate", "reference", labels=labels, rtol=rtol, atol=atol,
                           check_error_stat=check_error_stat)  # fmt: skip
