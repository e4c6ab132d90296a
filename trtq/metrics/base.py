"""The `Metric` description, its registry, and how a user's `--metric` value becomes a Metric."""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtq.errors import TrtqError, UsageError
from trtq.registry import Registry

__all__ = [
    "Metric",
    "MetricFn",
    "Outputs",
    "METRICS",
    "register_metric",
    "get_metric",
    "resolve_metric",
    "default_metric",
    "applicable_metrics",
    "for_output",
    "is_known_metric",
]

Outputs = Mapping[str, np.ndarray]
MetricFn = Callable[..., float]

#: Units a metric reports in: "fraction" (0.995 shown as 99.50%, budgets in percentage points), "db", "value".
UNITS = ("fraction", "db", "value")


@dataclass(frozen=True)
class Metric:
    """A named way to score a model's outputs against the FP32 reference.

    Attributes:
        name: registry name (what `--metric` takes).
        fn: `fn(reference, outputs, targets) -> float` (or `fn(reference, outputs)` when `takes_targets` is False).
        higher_is_better: direction; budgets (`--max-drop`) and choices respect it.
        needs: the target kind the metric needs ("class" for labels), or None.
        unit: "fraction", "db" or "value" (how values and drops are shown).
        kind: "task" (what the user's application measures) or "fidelity" (closeness to FP32).
        applies: `applies(reference) -> bool`: whether the metric makes sense for these outputs.
        auto: computed in validation whenever it applies (built-ins); plugins opt in.
        description: one line for help texts and reports.
        takes_targets: whether `fn` takes the third argument.
        title: the column heading in reports (default: the name).
    """

    name: str
    fn: MetricFn
    higher_is_better: bool = True
    needs: str | None = None
    unit: str = "fraction"
    kind: str = "task"
    applies: Callable[[Outputs], bool] | None = None
    auto: bool = False
    description: str = ""
    takes_targets: bool = True
    title: str = ""

    @property
    def heading(self) -> str:
        return self.title or self.name

    def __call__(self, reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
        try:
            value = (
                self.fn(reference, outputs, targets) if self.takes_targets else self.fn(reference, outputs)
            )
        except TrtqError:
            raise
        except Exception as e:
            raise TrtqError(f"metric {self.name} failed: {type(e).__name__}: {e}") from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TrtqError(f"metric {self.name} returned {value!r}; it must return a number") from None
        if not math.isfinite(value):
            raise TrtqError(f"metric {self.name} returned {value}; it must return a finite number")
        return value

    def usable(self, reference: Outputs, targets_kind: str | None) -> bool:
        """Whether the metric can be computed on these outputs with targets of this kind."""
        if self.needs is not None and self.needs != targets_kind:
            return False
        return self.applies is None or bool(self.applies(reference))

    def drop(self, reference_value: float, value: float) -> float:
        """How much worse `value` is than `reference_value`, in the metric's budget unit (points for fractions)."""
        d = reference_value - value if self.higher_is_better else value - reference_value
        return 100.0 * d if self.unit == "fraction" else d

    def meets(self, reference_value: float, value: float, max_drop: float) -> bool:
        """Whether `value` is within `max_drop` (budget units) of `reference_value`."""
        return self.drop(reference_value, value) <= max_drop + 1e-9

    def sort_key(self, value: float) -> float:
        """Smaller is better (for sorting candidates best first)."""
        return -value if self.higher_is_better else value

    def format(self, value: float | None) -> str:
        """A value as the report shows it."""
        if value is None:
            return "—"
        if self.unit == "fraction":
            return f"{100 * value:.2f}%"
        if self.unit == "db":
            return f"{value:.2f} dB"
        return f"{value:.6g}"

    def budget_unit(self) -> str:
        """What `--max-drop` is measured in for this metric."""
        return {"fraction": "percentage points", "db": "dB", "value": "units of the metric"}[self.unit]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "needs": self.needs,
            "unit": self.unit,
            "kind": self.kind,
            "description": self.description,
        }


METRICS: Registry[Metric] = Registry("metric", "--metric")


def register_metric(
    name: str,
    *,
    higher_is_better: bool = True,
    needs: str | None = None,
    unit: str = "fraction",
    kind: str = "task",
    applies: Callable[[Outputs], bool] | None = None,
    auto: bool = False,
    description: str = "",
    title: str = "",
) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register `fn(reference, outputs, targets) -> float` as the metric `name`."""
    if unit not in UNITS:
        raise ValueError(f"metric unit must be one of {UNITS}, not {unit!r}")

    def deco(fn: MetricFn) -> MetricFn:
        doc = (inspect.getdoc(fn) or "").splitlines()
        METRICS.register(
            name,
            Metric(
                name=name, fn=fn, higher_is_better=higher_is_better, needs=needs, unit=unit, kind=kind,
                applies=applies, auto=auto, description=description or (doc[0] if doc else ""),
                takes_targets=_positional_arity(fn) != 2, title=title,
            ),
        )  # fmt: skip
        return fn

    return deco


def get_metric(name: str) -> Metric:
    """A registered metric by name, or `NAME@OUTPUT` for one on a single output (UsageError listing the names
    otherwise)."""
    if name not in METRICS and "@" in name:
        base, output = name.split("@", 1)
        return for_output(METRICS.get(base), output)
    return METRICS.get(name)


def is_known_metric(name: str) -> bool:
    """Whether `name` is a registered metric or `REGISTERED@OUTPUT`."""
    return name in METRICS or (
        "@" in name and name.split("@", 1)[0] in METRICS and bool(name.split("@", 1)[1])
    )


def for_output(metric: Metric, output: str) -> Metric:
    """`metric` computed on one named output only (`cosine@pooler_output`, `snr_db@logits`).

    Raises:
        UsageError: (when called) the model has no output of that name.
    """
    if not output:
        raise UsageError(f"metric {metric.name}@: name the output after '@' (e.g. {metric.name}@logits)")

    def pick(outputs: Outputs) -> Outputs:
        if output not in outputs:
            raise UsageError(
                f"metric {metric.name}@{output}: the model has no output {output!r} (outputs: {', '.join(outputs)})"
            )
        return {output: outputs[output]}

    def fn(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
        return metric(pick(reference), pick(outputs), targets)

    def applies(reference: Outputs) -> bool:
        return output in reference and metric.usable(pick(reference), metric.needs)

    return Metric(
        name=f"{metric.name}@{output}", fn=fn, higher_is_better=metric.higher_is_better, needs=metric.needs,
        unit=metric.unit, kind=metric.kind, applies=applies, description=f"{metric.description} ({output} only)",
        title=f"{metric.heading} ({output})",
    )  # fmt: skip


_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _positional_arity(fn: Callable[..., object]) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def default_metric(targets_kind: str | None) -> str:
    """The task metric used when none is named: top-1 accuracy with class labels, mAP50-95 for detection data,
    mIoU for segmentation data, else top-1 agreement."""
    return {"class": "top1_accuracy", "detection": "map50_95", "segmentation": "miou"}.get(
        targets_kind or "", "top1_agreement"
    )


def resolve_metric(metric: str | MetricFn | Metric | None, targets_kind: str | bool | None = None) -> Metric:
    """Turn what the user gave into a `Metric`.

    Args:
        metric: None (the default task metric), a registered name, `package.module:function`, or a callable
            `(reference, outputs[, targets]) -> float` (higher is better).
        targets_kind: the kind of targets the evaluation data has ("class" or None).

    Raises:
        UsageError: an unknown name, a metric that needs targets the data lacks, an entry point that does not
            import, or a callable with the wrong number of arguments.
    """
    if isinstance(targets_kind, bool):  # the older signature: has_labels
        targets_kind = "class" if targets_kind else None
    if isinstance(metric, Metric):
        return metric
    if metric is None:
        metric = default_metric(targets_kind)
    if isinstance(metric, str):
        if is_known_metric(metric):
            found = get_metric(metric)
            if found.needs is not None and found.needs != targets_kind:
                what = {
                    "class": "class labels (class sub-folders or .npz with y)",
                    "detection": "detection targets (--task detect)",
                    "segmentation": "segmentation targets (--task segment)",
                }.get(found.needs, found.needs)
                raise UsageError(f"--metric {metric} needs evaluation data with {what}")
            return found
        if not _ENTRY.match(metric):
            raise UsageError(METRICS.unknown_message(metric) + ", or give package.module:function")
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
            f"metric {name} takes {arity} positional arguments; it must take (fp32_outputs, outputs[, targets])"
        )
    return Metric(name, fn, takes_targets=arity != 2, description="user metric")


def applicable_metrics(
    reference: Outputs, targets_kind: str | None, extra: tuple[Metric, ...] = ()
) -> list[Metric]:
    """The automatic metrics that apply to these outputs and targets, then `extra` ones (no duplicates)."""
    out = [m for _, m in METRICS.items() if m.auto and m.usable(reference, targets_kind)]
    for m in extra:
        if m.name not in {x.name for x in out}:
            out.append(m)
    return out
