"""What sensitivity analysis measures: a task metric (higher is better) and an output-noise tie-breaker.

A metric is called as `fn(reference, outputs, labels)`:

- `reference`: the FP32 model's outputs, output name -> array with all samples concatenated on axis 0;
- `outputs`: the candidate model's outputs, same layout;
- `labels`: the evaluation labels (an integer array) or None.

It returns a float, higher is better, in the same units for every model (a fraction: 0.995 = 99.5%).
`--max-drop` is in percentage points of it: the mixed model must score at least
`metric(FP32) - max_drop / 100`. Built in:

- `top1_agreement` (default without labels): share of samples whose top-1 class matches FP32's;
- `top1_accuracy` (default with labels): share of samples whose top-1 class is the label.

A user function (`--metric package.module:function` or any callable) may take two arguments (no labels)
or three. Detection or segmentation users compute mAP / mIoU from the outputs dict.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from trtq.errors import TrtqError, UsageError

__all__ = [
    "Metric",
    "resolve_metric",
    "top1_agreement",
    "top1_accuracy",
    "output_noise",
    "BUILTIN_METRICS",
]

Outputs = Mapping[str, np.ndarray]
MetricFn = Callable[..., float]


def _logits(outputs: Outputs, what: str) -> np.ndarray:
    first = np.asarray(next(iter(outputs.values())))
    if first.ndim < 2 or first.shape[0] == 0:
        raise UsageError(
            f"{what} needs classifier outputs (N, classes); the first output has shape {first.shape}: "
            "pass --metric package.module:function for this task"
        )
    return first.reshape(first.shape[0], -1)


def top1_agreement(reference: Outputs, outputs: Outputs, labels: np.ndarray | None = None) -> float:
    """Share of samples whose top-1 class (first output) matches the reference's."""
    ref, got = _logits(reference, "top-1 agreement"), _logits(outputs, "top-1 agreement")
    return float(np.mean(ref.argmax(1) == got.argmax(1)))


def top1_accuracy(reference: Outputs, outputs: Outputs, labels: np.ndarray | None = None) -> float:
    """Share of samples whose top-1 class (first output) is the label."""
    if labels is None:
        raise UsageError("top-1 accuracy needs labelled evaluation data (class sub-folders or .npz with y)")
    got = _logits(outputs, "top-1 accuracy")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(got):
        raise UsageError(f"{len(labels)} labels for {len(got)} samples; the evaluation data is inconsistent")
    return float(np.mean(got.argmax(1) == labels))


#: name -> function, for `metric="top1_agreement"` etc.
BUILTIN_METRICS: dict[str, MetricFn] = {"top1_agreement": top1_agreement, "top1_accuracy": top1_accuracy}


def output_noise(reference: Outputs, outputs: Outputs) -> float:
    """Quantization noise at the outputs: sum |out - ref|^2 / sum |ref|^2 over every float output.

    A continuous companion to the task metric: it separates layers whose effect on a coarse metric (top-1
    over a few hundred images) is the same.
    """
    err = energy = 0.0
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if not np.issubdtype(ref.dtype, np.floating) or name not in outputs:
            continue
        r = ref.astype(np.float64)
        d = np.asarray(outputs[name]).astype(np.float64) - r
        err += float(np.sum(d * d))
        energy += float(np.sum(r * r))
    return err / energy if energy > 0 else err


@dataclass(frozen=True)
class Metric:
    """A named metric (higher is better)."""

    name: str
    fn: MetricFn
    takes_labels: bool = True

    def __call__(self, reference: Outputs, outputs: Outputs, labels: np.ndarray | None) -> float:
        try:
            value = self.fn(reference, outputs, labels) if self.takes_labels else self.fn(reference, outputs)
        except TrtqError:
            raise
        except Exception as e:
            raise TrtqError(f"metric {self.name} failed: {type(e).__name__}: {e}") from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TrtqError(f"metric {self.name} returned {value!r}; it must return a number") from None
        if not np.isfinite(value):
            raise TrtqError(f"metric {self.name} returned {value}; it must return a finite number")
        return value


_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _positional_arity(fn: Callable[..., object]) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def resolve_metric(metric: str | MetricFn | Metric | None, has_labels: bool) -> Metric:
    """Turn what the user gave into a `Metric`.

    Args:
        metric: None (top-1 accuracy with labels, else top-1 agreement), a built-in name, a
            `package.module:function` string, or a callable `(reference, outputs[, labels]) -> float`.
        has_labels: whether the evaluation data has labels.

    Raises:
        UsageError: an unknown name, an entry point that does not import, or a callable with the wrong
            number of arguments.
    """
    if isinstance(metric, Metric):
        return metric
    if metric is None:
        metric = "top1_accuracy" if has_labels else "top1_agreement"
    if isinstance(metric, str):
        if metric in BUILTIN_METRICS:
            if metric == "top1_accuracy" and not has_labels:
                raise UsageError("--metric top1_accuracy needs labelled evaluation data")
            return Metric(metric, BUILTIN_METRICS[metric])
        if not _ENTRY.match(metric):
            raise UsageError(
                f"--metric {metric!r} is neither {' nor '.join(BUILTIN_METRICS)} nor package.module:function"
            )
        module_name, fn_name = metric.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise UsageError(f"cannot import {module_name!r} for --metric {metric}: {e}") from None
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise UsageError(f"{module_name} has no function {fn_name!r} (--metric {metric})")
        name = metric
    elif callable(metric):
        fn, name = metric, getattr(metric, "__name__", type(metric).__name__)
    else:
        raise UsageError(
            f"metric must be a name, package.module:function or a callable, not {type(metric).__name__}"
        )
    arity = _positional_arity(fn)
    if arity is not None and arity not in (2, 3):
        raise UsageError(
            f"metric {name} takes {arity} positional arguments; it must take (fp32_outputs, outputs[, labels])"
        )
    return Metric(name, fn, takes_labels=arity != 2)
