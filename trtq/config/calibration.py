"""The calibration section: which methods, their parameters, how `--calib all` chooses, TensorRT caches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from trtq.config.sections import from_args
from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION
from trtq.errors import UsageError

__all__ = ["CalibrationConfig", "DEFAULT_METHOD", "DEFAULT_CHOOSE_SAMPLES"]

#: The calibration method when none is given (and the scales do not come from a cache).
DEFAULT_METHOD = "entropy"
#: Held-out samples `--calib all` scores each method on (`--choose-samples`).
DEFAULT_CHOOSE_SAMPLES = 128


@dataclass(frozen=True)
class CalibrationConfig:
    """How activation ranges are computed.

    Attributes:
        method: a registered calibration method (`trtq.calibrators.list_calibrators()`), an alias ("max"),
            "all" (every registered method from one pass, the most faithful kept), or a comma-separated list;
            None: `DEFAULT_METHOD` (entropy). Refused together with `cache`, whose scales would replace it.
        params: method parameters by name (`--calib-param NAME=VALUE`; e.g. {"percentile": 99.9}); each must be
            declared by one of the chosen methods.
        choose_metric: the metric `--calib all` picks the method by (on held-out data; see docs/calibration.md).
        choose_samples: how many held-out samples (a reproducible subset of the evaluation data) `--calib all`
            runs each method's Q/DQ model on (`--choose-samples N`; 0 = all of them).
        cache: take the scales from this TensorRT calibration cache instead of calibrating.
        cache_version: TensorRT version written into the exported calibration cache's header.
        trt_cache: also write TensorRT's calibration.cache (`trtq build --trt-cache`; `trtq calibrate --trt-cache
            FILE` sets it). Off by default: the cache is for TensorRT 10's implicit INT8 only (the engine of a build
            is made from the Q/DQ graph), and it needs a scale for every float tensor of the model, which makes
            the calibration pass expose and fold about twice as many activations as the Q/DQ plan quantizes.
        smoothquant: SmoothQuant's migration strength alpha in [0, 1] (`--smoothquant ALPHA`), or None (off):
            LayerNorm outputs' outlier channels are moved into the following weights before calibration.
    """

    method: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    choose_metric: str = "cosine"
    choose_samples: int = DEFAULT_CHOOSE_SAMPLES
    cache: str | None = None
    cache_version: tuple[int, int, int] = DEFAULT_CACHE_VERSION
    trt_cache: bool = False
    smoothquant: float | None = None

    @property
    def methods(self) -> list[str]:
        """The registered methods this configuration computes, in order."""
        from trtq.calibrators import CALIBRATORS

        names: list[str] = []
        for m in [x.strip() for x in str(self.method or DEFAULT_METHOD).split(",") if x.strip()]:
            group = CALIBRATORS.names() if m == "all" else [CALIBRATORS.canonical(m)]
            for name in group:
                if name not in CALIBRATORS:
                    raise UsageError(CALIBRATORS.unknown_message(m) + ", or all")
                if name not in names:
                    names.append(name)
        if not names:
            raise UsageError("--calib names no calibration method")
        return names

    def method_kwargs(self, method: str) -> dict[str, Any]:
        """The parameters `method` declares, with the configured values converted and checked."""
        from trtq.calibrators import method_params

        declared = method_params(method)
        return {
            name: declared[name].convert(v, method) for name, v in self.params.items() if name in declared
        }

    def validate(self) -> None:
        from trtq.calibrators import method_params
        from trtq.metrics import METRICS

        if self.cache is not None and self.method is not None:
            raise UsageError(
                f"--calib-cache takes the scales from {self.cache}, so --calib {self.method} would not be used; "
                "give one of them"
            )
        if self.cache is not None and self.trt_cache:
            raise UsageError(
                f"--trt-cache writes the scales calibration computes, but --calib-cache takes them from {self.cache}; "
                "remove --trt-cache (trtq engine --calib-cache can read that cache itself)"
            )
        if self.cache is not None and self.params:
            raise UsageError(
                f"--calib-cache takes the scales from {self.cache}, so --calib-param/--percentile would not be "
                "used; remove them"
            )
        methods = self.methods
        declared: dict[str, list[str]] = {}
        for m in methods:
            for p in method_params(m):
                declared.setdefault(p, []).append(m)
        for name in self.params:
            if name not in declared:
                owners = sorted(
                    {m for m in _all_methods() for p in method_params(m) if p == name}
                )  # who would take it
                hint = f"; it applies to --calib {', '.join(owners)}" if owners else ""
                option = "--percentile" if name == "percentile" else f"--calib-param {name}"
                raise UsageError(
                    f"{option}: not a parameter of --calib {','.join(methods)}{hint}"
                    + ("" if owners else f" (parameters: {', '.join(sorted(declared)) or 'none'})")
                )
            for m in declared[name]:
                self.method_kwargs(m)
        if self.choose_metric not in METRICS:
            raise UsageError(
                METRICS.unknown_message(self.choose_metric).replace("--metric", "--choose-metric")
            )
        if (
            isinstance(self.choose_samples, bool)
            or not isinstance(self.choose_samples, int)
            or self.choose_samples < 0
        ):
            raise UsageError(
                f"--choose-samples must be a whole number >= 0 (0 = all), not {self.choose_samples!r}"
            )
        if self.smoothquant is not None:
            from trtq.smoothquant import check_alpha

            check_alpha(self.smoothquant)
            if self.cache is not None:
                raise UsageError(
                    "--smoothquant changes the activations a --calib-cache was measured on; drop one of them"
                )
        if self.cache_version is not None:
            v = tuple(self.cache_version)
            if len(v) != 3 or not all(isinstance(x, int) and x >= 0 for x in v):
                raise UsageError(f"--trt-version {self.cache_version!r}: give MAJOR.MINOR.PATCH, e.g. 10.3.0")

    @classmethod
    def from_args(cls, args: Any, base: CalibrationConfig | None = None) -> CalibrationConfig:
        mapping = {"calib": "method", "choose_metric": "choose_metric", "choose_samples": "choose_samples",
                   "calib_cache": "cache", "write_trt_cache": "trt_cache",
                   "trt_version": "cache_version", "smoothquant": "smoothquant"}  # fmt: skip
        cfg = from_args(base or cls(), args, mapping)
        if hasattr(args, "calib_cache") and not hasattr(args, "calib"):  # the cache given now wins
            cfg = replace(cfg, method=None, params={})
            if not hasattr(args, "write_trt_cache"):  # a recorded --trt-cache: nothing is calibrated to write
                cfg = replace(cfg, trt_cache=False)
        elif hasattr(args, "calib") and not hasattr(args, "calib_cache"):  # a method given now wins
            cfg = replace(cfg, cache=None)
        params = dict(cfg.params)
        if (
            hasattr(args, "calib") and params
        ):  # a new method: recorded parameters it does not take are dropped
            from trtq.calibrators import method_params

            declared = {p for m in cfg.methods for p in method_params(m)}
            params = {k: v for k, v in params.items() if k in declared}
        for item in getattr(args, "calib_param", None) or []:
            name, sep, value = str(item).partition("=")
            if not sep or not name.strip():
                raise UsageError(f"--calib-param {item!r}: write NAME=VALUE, e.g. percentile=99.9")
            params[name.strip()] = value.strip()
        if hasattr(args, "percentile"):  # the long-standing shortcut for --calib-param percentile=P
            params["percentile"] = args.percentile
        return replace(cfg, params=params)


def _all_methods() -> list[str]:
    from trtq.calibrators import list_calibrators

    return list_calibrators()
