"""The data section: calibration and evaluation data, subsets, batch size, image preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from trtq.config.sections import check_count, from_args, section_to_dict
from trtq.errors import UsageError

__all__ = ["DataConfig", "preprocess_from_args", "with_preset", "PREPROCESS_OPTIONS"]


@dataclass(frozen=True)
class DataConfig:
    """Calibration and evaluation data and how they are read.

    Attributes:
        calib_data: calibration data (image folder, .npy/.npz, or in Python an array or iterable).
        eval_data: evaluation data (labels give accuracy); None = the calibration data.
        calib_samples: reproducible subset of the calibration data (None = all).
        eval_samples: reproducible subset of the evaluation data (None = all).
        batch_size: batch size of calibration and evaluation passes.
        preprocess: image preprocessing (a `trtq.data.Preprocess`, its fields as a dict, a preset name), or None:
            ImageNet's preset adapted to the model's input channels.
    """

    calib_data: Any = None
    eval_data: Any = None
    calib_samples: int | None = 512
    eval_samples: int | None = None
    batch_size: int = 32
    preprocess: Any = None

    def validate(self) -> None:
        check_count(self.calib_samples, "--calib-samples", allow_zero_all=True)
        check_count(self.eval_samples, "--eval-samples", allow_zero_all=True)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, not {self.batch_size!r}")

    @classmethod
    def from_args(cls, args: Any, base: DataConfig | None = None) -> DataConfig:
        mapping = {
            "calib_data": "calib_data",
            "eval_data": "eval_data",
            "calib_samples": "calib_samples",
            "eval_samples": "eval_samples",
            "batch_size": "batch_size",
        }
        cfg = from_args(base or cls(), args, mapping)
        for key in ("calib_samples", "eval_samples"):  # 0 on the command line means all
            if getattr(cfg, key) == 0 and hasattr(args, key):
                cfg = replace(cfg, **{key: None})
        pre = preprocess_from_args(args)
        return replace(cfg, preprocess=pre) if pre is not None else cfg

    def to_json(self) -> dict[str, Any]:
        d = section_to_dict(self)
        if self.preprocess is not None and hasattr(self.preprocess, "to_json"):
            d["preprocess"] = self.preprocess.to_json()
        return d


#: Preprocessing options (dest names) the command line may give.
PREPROCESS_OPTIONS = ("preset", "size", "resize", "no_resize", "mean", "std", "channels")


def preprocess_from_args(args: Any) -> Any:
    """A `trtq.data.Preprocess` from the preprocessing options given, or None when none was given."""
    if not any(hasattr(args, k) for k in PREPROCESS_OPTIONS):
        return None
    from trtq.data import PRESETS

    # --task detect letterboxes by default (the yolo preset); every other task starts from imagenet
    preset = getattr(args, "preset", "yolo" if getattr(args, "task", None) == "detect" else "imagenet")
    if preset not in PRESETS:
        raise UsageError(f"--preset {preset!r}: choose from {', '.join(PRESETS)}")
    pre = PRESETS[preset]
    mean, std = getattr(args, "mean", None), getattr(args, "std", None)
    channels = getattr(args, "channels", None)
    if channels == 1 and mean is None and len(pre.mean) == 3:
        mean, std = (sum(pre.mean) / 3,), (sum(pre.std) / 3,)
    pre = pre.with_overrides(
        size=getattr(args, "size", None),
        resize=getattr(args, "resize", None),
        mean=mean,
        std=std,
        channels=channels,
    )
    if getattr(args, "no_resize", False):
        if getattr(args, "resize", None) is not None:
            raise UsageError("--resize and --no-resize contradict each other; give one")
        pre = replace(pre, resize=None)
    if pre.resize is not None and pre.size is not None and pre.resize < pre.size:
        raise UsageError(f"--resize {pre.resize} is smaller than --size {pre.size}")
    return pre


def with_preset(overrides: dict[str, Any]) -> dict[str, Any]:
    """`preset="yolo"` as the preprocessing: the preset, with the fields of a `preprocess` dict over it."""
    if "preset" not in overrides:
        return overrides
    from trtq.data import PRESETS, Preprocess

    out = dict(overrides)
    name = out.pop("preset")
    if name not in PRESETS:
        raise UsageError(f"preset {name!r}: choose from {', '.join(PRESETS)}")
    fields_given = out.get("preprocess")
    if fields_given is None:
        out["preprocess"] = PRESETS[name]
    elif isinstance(fields_given, dict):
        merged = {**PRESETS[name].to_json(), **fields_given}
        merged.update(mean=tuple(merged["mean"]), std=tuple(merged["std"]))
        out["preprocess"] = Preprocess(**merged).with_overrides()
    else:
        raise UsageError(
            "give preset= with a preprocess dict of fields to change, or a whole preprocess= alone"
        )
    return out
