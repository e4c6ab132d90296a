"""Run inside a subprocess where `import tensorrt` loads REAL TensorRT Python bindings against stub libs.

Reads a JSON request on stdin, prints a JSON answer on stdout:

* which dotted names exist on the `tensorrt` module,
* for called names, whether some documented pybind11 signature accepts the call's positional count and
  keyword names,
* what trtq.engines.compat's feature detection says here, and how its guarded helpers behave.

The stub libraries return NULL for every factory, so nothing can be built or run: this proves names and
signatures, not behaviour.
"""

from __future__ import annotations

import json
import re
import sys
import traceback

import tensorrt as trt

_MISSING = object()


def resolve(name: str) -> object:
    obj: object = trt
    for part in name.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


_SIG = re.compile(r"^(?:\d+\.\s*)?(\w+)\((.*)\)\s*(?:->.*)?$")


def signatures(obj: object) -> list[list[tuple[str, bool]]]:
    """pybind11 docstring signatures as [(param name, has default)] lists, `self` removed."""
    target = obj
    if isinstance(obj, type):
        target = obj.__init__
    doc = getattr(target, "__doc__", None) or ""
    out = []
    for line in doc.splitlines():
        m = _SIG.match(line.strip())
        if not m:
            continue
        params = []
        depth, cur = 0, ""
        for ch in m.group(2):
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            if ch == "," and depth == 0:
                params.append(cur)
                cur = ""
            else:
                cur += ch
        if cur.strip():
            params.append(cur)
        parsed = []
        for p in params:
            p = p.strip()
            if p in ("*args", "**kwargs") or p.startswith("*"):
                parsed = None
                break
            pname = p.split(":")[0].split("=")[0].strip()
            parsed.append((pname, "=" in p))
        if parsed is None:
            continue
        if parsed and parsed[0][0] == "self":
            parsed = parsed[1:]
        out.append(parsed)
    return out


def accepts(obj: object, npos: int, kwargs: list[str]) -> bool | None:
    """Whether a documented signature takes `npos` positional args and these keywords (None: no doc)."""
    sigs = signatures(obj)
    if not sigs:
        return None
    for params in sigs:
        names = [p for p, _ in params]
        if npos > len(params) or any(k not in names[npos:] for k in kwargs):
            continue
        required = [p for i, (p, has_default) in enumerate(params) if not has_default and i >= npos]
        if all(r in kwargs for r in required):
            return True
    return False


class RecordingConfig:
    """Stands in for IBuilderConfig (which the stub cannot create) and records what compat sets."""

    def __init__(self) -> None:
        self.flags: list[str] = []
        self.int8_calibrator = None
        self.calibration_profile = None

    def set_flag(self, flag: object) -> None:
        self.flags.append(flag.name)

    def set_calibration_profile(self, profile: object) -> None:
        self.calibration_profile = profile


def outcome(fn, *args, **kwargs) -> dict:
    try:
        value = fn(*args, **kwargs)
    except Exception as e:  # report the type and message; the test decides what is right
        return {"error": type(e).__name__, "message": str(e)}
    if isinstance(value, type):
        value = value.__name__
    elif hasattr(value, "name") and hasattr(value, "value"):
        value = value.name
    return {"value": value if isinstance(value, (int, str, bool, list, type(None))) else repr(value)}


def compat_probe() -> dict:
    import tensorrt as trt

    from trtq.engines import build, compat, cuda
    from trtq.engines.build import choose_graph

    here = compat.tensorrt_status()  # this machine: no NVIDIA driver
    # the stub libraries' factories return NULL, as TensorRT's do without a usable GPU
    nullptr = outcome(build._builder, trt, trt.Logger(trt.Logger.WARNING))
    cuda.probe_driver = lambda: cuda.CudaDriver(True, 0, 1, (13, 0))  # a stand-in GPU for the rest
    out: dict = {
        "version": compat.trt_version(),
        "status_here": here,
        "builder_nullptr": nullptr,
        "status": compat.tensorrt_status(),
        "has_weak_typing": compat.has_weak_typing(),
        "has_calibrators": compat.has_calibrators(),
        "prefers_strong_typing": compat.prefers_strong_typing(),
        "network_flags_strong": outcome(compat.network_flags, True),
        "network_flags_weak": outcome(compat.network_flags, False),
        "hw_ampere_plus": outcome(compat.hardware_compat_level, "ampere_plus"),
        "hw_same_cc": outcome(compat.hardware_compat_level, "same_compute_capability"),
        "hw_bogus": outcome(compat.hardware_compat_level, "volta_plus"),
    }
    cfg = RecordingConfig()
    out["weak_precision"] = outcome(compat.set_weak_precision, cfg, int8=True, fp16=True)
    out["weak_precision_flags"] = cfg.flags
    for algo in ("EntropyCalibration2", "MinMaxCalibration", "LegacyCalibration"):
        out[f"calibrator_{algo}"] = outcome(compat.legacy_calibrator_base, algo)
    cfg = RecordingConfig()
    out["set_calibrator"] = outcome(compat.set_legacy_calibrator, cfg, "calibrator", "profile")
    out["set_calibrator_state"] = [cfg.int8_calibrator, cfg.calibration_profile]
    # the legacy calibrator subclass: can it be instantiated and does it override real methods?
    from trtq.engines.calib_cache import make_cache_calibrator

    cache = b"TRT-100300-EntropyCalibration2\ninput: 3c010204\n"
    res = outcome(make_cache_calibrator, cache)
    if "error" not in res:
        cal = make_cache_calibrator(cache)
        base = type(cal).__mro__[1]
        res["base"] = base.__name__
        res["overrides_exist_in_base"] = all(
            hasattr(base, m)
            for m in ("get_batch_size", "get_batch", "read_calibration_cache", "write_calibration_cache")
        )
        res["cache_header"] = cal.read_calibration_cache().split(b"\n")[0].decode()
        res["batch"] = cal.get_batch(["input"])
    out["cache_calibrator"] = res
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d, "model.trt.onnx"), Path(d, "model.int8.onnx")
        a.write_bytes(b"x")
        b.write_bytes(b"x")
        choice = choose_graph(compat.trt_version(), compat.has_weak_typing(), a, b)
        out["graph_choice"] = [choice.graph.name, choice.strongly_typed]
        out["graph_choice_weak"] = outcome(
            lambda: choose_graph(compat.trt_version(), compat.has_weak_typing(), a, b, typed=False).graph.name
        )
    return out


def main() -> None:
    req = json.load(sys.stdin)
    names = {}
    for name in req["names"]:
        names[name] = resolve(name) is not _MISSING
    calls = {}
    for key, (name, npos, kwargs) in req.get("calls", {}).items():
        obj = resolve(name)
        calls[key] = None if obj is _MISSING else accepts(obj, npos, kwargs)
    try:
        compat = compat_probe()
    except Exception:
        compat = {"crash": traceback.format_exc()}
    json.dump({"version": trt.__version__, "names": names, "calls": calls, "compat": compat}, sys.stdout)


if __name__ == "__main__":
    main()
