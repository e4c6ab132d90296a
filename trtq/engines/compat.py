"""The one place in trtq that knows TensorRT versions.

Everything else in `trtq.engines` asks this module what the running TensorRT can do. Detection is by
feature (`hasattr` on the real bindings), with version numbers only where NVIDIA documents a version
boundary that no attribute reveals (strong typing is "fully available" from 10.12).

What the versions differ in, as far as trtq is concerned:

| feature                                         | 10.0-10.11 | 10.12-10.x | 11.x                |
|-------------------------------------------------|------------|------------|---------------------|
| weak typing (`BuilderFlag.INT8/FP16`)            | yes        | yes        | removed             |
| strongly typed networks (default for trtq)      | partial    | yes        | always (flag no-op) |
| implicit INT8 calibrators (`IInt8*Calibrator*`) | yes        | yes        | removed             |
| `HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY` | 10.4+ | yes     | yes                 |

Every TensorRT attribute that exists only in some versions is read here, through `_optional`, and
listed in `VERSION_SPECIFIC`; the contract tests (tests/test_engines_contract.py) load the real 10.x
and 11.x Python bindings and check both this table and every other TensorRT name trtq touches.
Those tests prove names, not behaviour: nothing here has been run against a real TensorRT build by
these tests.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from trtq.errors import TensorRTUnavailable, UsageError

__all__ = [
    "MIN_VERSION",
    "STRONG_TYPING_DEFAULT_FROM",
    "VERSION_SPECIFIC",
    "import_tensorrt",
    "tensorrt_status",
    "require_gpu",
    "trt_version",
    "version_string",
    "has_weak_typing",
    "has_calibrators",
    "strong_typing_default",
    "prefers_strong_typing",
    "network_flags",
    "set_weak_precision",
    "set_legacy_calibrator",
    "legacy_calibrator_base",
    "hardware_compat_level",
    "device_memory_size",
    "unavailable",
]

#: Oldest TensorRT trtq builds with (the tensor-name based I/O API and Q/DQ graphs it relies on).
MIN_VERSION = (10, 0)
#: From this version on trtq builds strongly typed by default ("fully available from 10.12").
STRONG_TYPING_DEFAULT_FROM = (10, 12)

#: Attributes that exist only in some supported versions: "Owner.NAME" -> (first version with it or
#: None, first version without it or None). Reads of these go through `_optional` only.
VERSION_SPECIFIC: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    "BuilderFlag.FP16": (None, (11, 0)),
    "BuilderFlag.INT8": (None, (11, 0)),
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": (None, (11, 0)),
    "IInt8EntropyCalibrator2": (None, (11, 0)),
    "IInt8EntropyCalibrator": (None, (11, 0)),
    "IInt8MinMaxCalibrator": (None, (11, 0)),
    "IBuilderConfig.int8_calibrator": (None, (11, 0)),
    "IBuilderConfig.set_calibration_profile": (None, (11, 0)),
    "ICudaEngine.device_memory_size": (None, (11, 0)),
    "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY": ((10, 4), None),
}

#: Calibration cache algorithm (header suffix) -> TensorRT base class.
_CALIBRATOR_CLASSES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
}

_HW_LEVELS = {
    "none": "NONE",
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}


def import_tensorrt() -> ModuleType:
    """Import and return the `tensorrt` module, or raise `TensorRTUnavailable` with a one-line reason."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as e:
        raise TensorRTUnavailable(
            f"TensorRT is not installed ({e.__class__.__name__}: {e}); install it on a machine with an NVIDIA "
            "GPU (pip install tensorrt) to build engines; every CPU stage works without it"
        ) from None
    version = _parse_version(getattr(trt, "__version__", "0"))
    if version[:2] < MIN_VERSION:
        raise TensorRTUnavailable(
            f"TensorRT {trt.__version__} is too old; trtq needs TensorRT {MIN_VERSION[0]}.{MIN_VERSION[1]} or newer"
        )
    return trt


def tensorrt_status() -> tuple[bool, str]:
    """Whether TensorRT can build engines here (importable, and a CUDA device its driver can run), and a one-line
    reason or version description."""
    try:
        trt = import_tensorrt()
        require_gpu(trt)
    except TensorRTUnavailable as e:
        return False, str(e)
    mode = "strongly typed" if prefers_strong_typing(trt) else "weakly typed (INT8/FP16 flags)"
    return True, f"TensorRT {trt.__version__} ({mode} builds)"


def require_gpu(trt: ModuleType | None = None) -> None:
    """Raise `TensorRTUnavailable` unless the CUDA driver works, sees a device, and supports the CUDA of the
    TensorRT wheel (`trtq.engines.cuda`); checked before `trt.Builder` or `trt.Runtime` is made."""
    from trtq.engines.cuda import cuda_problem

    problem = cuda_problem()
    if problem is not None:
        version = getattr(trt, "__version__", None) if trt is not None else None
        installed = f"TensorRT {version} is installed, but " if version else ""
        raise TensorRTUnavailable(f"{installed}{problem}")


def _parse_version(text: str) -> tuple[int, int, int]:
    parts = []
    for p in str(text).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def trt_version(trt: ModuleType | None = None) -> tuple[int, int, int]:
    """(major, minor, patch) of the running TensorRT."""
    trt = trt or import_tensorrt()
    return _parse_version(trt.__version__)


def version_string(trt: ModuleType | None = None) -> str:
    trt = trt or import_tensorrt()
    return str(trt.__version__)


def unavailable(what: str, trt: ModuleType | None = None, instead: str = "") -> UsageError:
    """A one-line error for a feature the running TensorRT does not have.

    Example: "INT8 calibrator classes are not available on TensorRT 11.4; trtq uses explicit Q/DQ".
    """
    trt = trt or import_tensorrt()
    major, minor, _ = trt_version(trt)
    verb = "are" if what.endswith("s") else "is"
    tail = f"; {instead}" if instead else ""
    return UsageError(f"{what} {verb} not available on TensorRT {major}.{minor}{tail}")


def _optional(owner: Any, name: str) -> Any:
    """Read a version-specific attribute (listed in VERSION_SPECIFIC), None when absent."""
    return getattr(owner, name, None)


# feature detection -------------------------------------------------------------------------------
def has_weak_typing(trt: ModuleType | None = None) -> bool:
    """True where builder precision flags exist (TensorRT 10.x); False on 11.x."""
    trt = trt or import_tensorrt()
    return _optional(trt.BuilderFlag, "INT8") is not None and _optional(trt.BuilderFlag, "FP16") is not None


def has_calibrators(trt: ModuleType | None = None) -> bool:
    """True where the implicit INT8 calibrator classes exist (TensorRT 10.x); False on 11.x."""
    trt = trt or import_tensorrt()
    return _optional(trt, "IInt8EntropyCalibrator2") is not None


def strong_typing_default(version: tuple[int, ...], has_weak_typing: bool) -> bool:
    """Whether trtq builds strongly typed by default for a TensorRT version (pure; no TensorRT needed).

    Always where weak typing is gone (11.x), and from `STRONG_TYPING_DEFAULT_FROM` (10.12) on 10.x.

    Args:
        version: the TensorRT (major, minor[, patch]).
        has_weak_typing: whether builder precision flags exist there (`has_weak_typing`).
    """
    if not has_weak_typing:
        return True
    return tuple(int(v) for v in version[:2]) >= STRONG_TYPING_DEFAULT_FROM


def prefers_strong_typing(trt: ModuleType | None = None) -> bool:
    """Whether trtq builds strongly typed here: always on 11.x, from 10.12 on 10.x."""
    trt = trt or import_tensorrt()
    return strong_typing_default(trt_version(trt), has_weak_typing(trt))


def network_flags(strongly_typed: bool, trt: ModuleType | None = None) -> int:
    """Flags for `Builder.create_network`.

    On 11.x every network is strongly typed and the STRONGLY_TYPED flag is deprecated and ignored, so 0
    is passed. On 10.x strong typing is opt-in. EXPLICIT_BATCH is a no-op since 10.0 and never passed.
    """
    trt = trt or import_tensorrt()
    if not strongly_typed:
        if not has_weak_typing(trt):
            raise unavailable(
                "weakly typed builds", trt, "TensorRT 11 builds strongly typed from model.trt.onnx"
            )
        return 0
    if not has_weak_typing(trt):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def set_weak_precision(config: Any, *, int8: bool, fp16: bool, trt: ModuleType | None = None) -> list[str]:
    """Set builder precision flags for a weakly typed build; returns the flags set.

    INT8 is required for any Q/DQ graph built weakly typed; FP16 lets everything outside Q/DQ run in
    half precision. These flags do not exist on TensorRT 11.
    """
    trt = trt or import_tensorrt()
    if not has_weak_typing(trt):
        raise unavailable(
            "INT8/FP16 builder flags", trt, "precision comes from the graph (trtq builds model.trt.onnx)"
        )
    done = []
    if int8:
        config.set_flag(_optional(trt.BuilderFlag, "INT8"))
        done.append("INT8")
    if fp16:
        config.set_flag(_optional(trt.BuilderFlag, "FP16"))
        done.append("FP16")
    return done


def legacy_calibrator_base(algorithm: str, trt: ModuleType | None = None) -> type:
    """The TensorRT calibrator base class for a calibration cache algorithm name."""
    trt = trt or import_tensorrt()
    if not has_calibrators(trt):
        raise unavailable("INT8 calibrator classes", trt, "trtq uses explicit Q/DQ (model.trt.onnx)")
    cls_name = _CALIBRATOR_CLASSES.get(algorithm)
    if cls_name is None:
        raise UsageError(
            f"calibration cache algorithm {algorithm!r} is not supported; use one of {', '.join(_CALIBRATOR_CLASSES)}"
        )
    cls = _optional(trt, cls_name)
    if cls is None:  # pragma: no cover - all three exist wherever IInt8EntropyCalibrator2 does
        raise unavailable(cls_name, trt)
    return cls


def set_legacy_calibrator(
    config: Any, calibrator: Any, profile: Any | None, trt: ModuleType | None = None
) -> None:
    """Attach an implicit INT8 calibrator (and its shape profile) to a builder config (TensorRT 10.x)."""
    trt = trt or import_tensorrt()
    if not has_calibrators(trt):
        raise unavailable("INT8 calibrators", trt, "trtq uses explicit Q/DQ")
    config.int8_calibrator = calibrator
    set_profile = _optional(config, "set_calibration_profile")
    if profile is not None and set_profile is not None:
        set_profile(profile)


def hardware_compat_level(level: str, trt: ModuleType | None = None) -> Any:
    """`trt.HardwareCompatibilityLevel` member for "none", "ampere_plus" or "same_compute_capability"."""
    trt = trt or import_tensorrt()
    key = level.lower().replace("-", "_")
    if key not in _HW_LEVELS:
        raise UsageError(f"--hardware-compat {level!r}: choose one of {', '.join(_HW_LEVELS)}")
    member = _optional(trt.HardwareCompatibilityLevel, _HW_LEVELS[key])
    if member is None:
        raise unavailable(f"hardware compatibility level {key}", trt, "use ampere_plus")
    return member


def device_memory_size(engine: Any) -> int:
    """Device memory an execution context of `engine` needs (`device_memory_size_v2` where it exists)."""
    size = _optional(engine, "device_memory_size_v2")
    if size is None:
        size = _optional(engine, "device_memory_size")
    return int(size or 0)
