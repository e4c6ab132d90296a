"""timm models by name (`--model timm:NAME`) and timm's own data config as their default preprocessing.

timm is an optional extra (`pip install 'trtq[timm]'`). `--weights` picks timm's pretrained weights: `DEFAULT`
(or `pretrained`) for the model's default tag, any other value for that tag (`timm:vit_small_patch16_224` with
`--weights augreg_in21k_ft_in1k`); both download from the Hugging Face Hub. Without `--weights` the model is
randomly initialised (seeded), which is all timm's tiny `test_*` architectures need.

The preprocessing is what `timm.data.resolve_data_config` says for the model (input size, interpolation, mean,
std, crop_pct), turned into trtq's `Preprocess`: resize the shorter side to floor(size / crop_pct), centre crop
`size` (timm's "center" crop mode, the default of its eval transform).
"""

from __future__ import annotations

import math
from typing import Any

from trtq.errors import TrtqError, UsageError

__all__ = ["TIMM_PREFIX", "load_timm", "timm_preprocess"]

TIMM_PREFIX = "timm:"
_DEFAULT_TAGS = ("default", "pretrained", "true")


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise UsageError(
            "--model timm:... needs timm, which is not installed; pip install 'trtq[timm]'"
        ) from None
    return timm


def load_timm(spec: str, weights: str | None = None) -> Any:
    """The `nn.Module` of `timm:NAME` (random init unless `weights` names pretrained weights)."""
    timm = _timm()
    name = spec[len(TIMM_PREFIX) :]
    base = name.split(".", 1)[0]
    if not name or base not in set(timm.list_models()):
        import difflib

        close = (timm.list_models(f"*{base}*") or difflib.get_close_matches(base, timm.list_models(), n=5))[
            :5
        ]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {spec}: timm has no model {base!r}{hint}")
    pretrained = weights is not None
    if pretrained and weights.lower() not in _DEFAULT_TAGS:
        name = f"{base}.{weights}"
    try:
        return timm.create_model(name, pretrained=pretrained)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if pretrained:
            raise TrtqError(f"could not get timm weights for {name}: {type(e).__name__}: {first}") from None
        raise UsageError(f"--model {spec}: timm could not create it: {first}") from None


def timm_preprocess(module: Any) -> tuple[Any, str]:
    """trtq's `Preprocess` for a timm model from `timm.data.resolve_data_config`, and a line saying so.

    Raises:
        UsageError: a non-square input size (give --size and --resize).
    """
    from timm.data import resolve_data_config

    from trtq.data import Preprocess

    cfg = resolve_data_config({}, model=module)
    channels, height, width = (int(v) for v in cfg["input_size"])
    if height != width:
        raise UsageError(
            f"timm's data config asks for a {height}x{width} input; trtq crops square images: give --size and "
            "--resize (and --mean/--std)"
        )
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    mode = cfg.get("crop_mode") or "center"
    note = ""
    if mode != "center":
        note = f" (timm's crop mode {mode!r} is read as 'center')"
    interpolation = str(cfg.get("interpolation") or "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bicubic"
    pre = Preprocess(
        size=height,
        resize=math.floor(height / crop_pct),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        channels=channels if channels in (1, 3) else 3,
        interpolation=interpolation,
    )
    line = (
        f"preprocessing from timm's data config: {height}x{width}, resize {pre.resize} (crop_pct {crop_pct:g}), "
        f"{interpolation}, mean {list(pre.mean)}, std {list(pre.std)}{note}"
    )
    return pre, line
