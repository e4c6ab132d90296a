"""engine.json: what an engine is and how it was built, written beside every plan."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtq import __version__
from trtq.engines.options import EngineOptions, ShapeRange

__all__ = ["ENGINE_JSON_VERSION", "sha256_bytes", "sha256_file", "gpu_info", "engine_metadata",
           "recorded_version_compatible"]  # fmt: skip

#: Bumped when engine.json changes shape.
ENGINE_JSON_VERSION = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gpu_info(device: int = 0) -> dict[str, Any]:
    """Name and compute capability of a CUDA device (via torch), or nulls without one."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {"name": None, "compute_capability": None, "reason": "no CUDA device visible to torch"}
        major, minor = torch.cuda.get_device_capability(device)
        props = torch.cuda.get_device_properties(device)
        return {
            "name": torch.cuda.get_device_name(device),
            "compute_capability": f"{major}.{minor}",
            "memory_gib": round(props.total_memory / (1 << 30), 1),
            "cuda_runtime": torch.version.cuda,
        }
    except Exception as e:  # a broken driver must not stop engine.json from being written
        return {"name": None, "compute_capability": None, "reason": f"{type(e).__name__}: {e}"}


def engine_metadata(
    *,
    trt_version: str,
    gpu: Mapping[str, Any],
    graph: str | Path,
    graph_sha256: str,
    plan: bytes,
    strongly_typed: bool,
    flags: Sequence[str],
    shape_ranges: Mapping[str, ShapeRange],
    io_tensors: Sequence[Mapping[str, Any]],
    options: EngineOptions,
    precision: Mapping[str, Any] | None = None,
    build_seconds: float | None = None,
    timing_cache: Mapping[str, Any] | None = None,
    reason: str | None = None,
    status: str = "ok",
) -> dict[str, Any]:
    """The engine.json document (plain JSON values, stable key order)."""
    return {
        "engine_json_version": ENGINE_JSON_VERSION,
        "status": status,
        "trtq_version": __version__,
        "tensorrt_version": trt_version,
        "gpu": dict(gpu),
        "input_onnx": {"path": str(graph), "name": Path(graph).name, "sha256": graph_sha256},
        "plan": {"bytes": len(plan), "sha256": sha256_bytes(plan)},
        "typing": "strong" if strongly_typed else "weak",
        "builder_flags": list(flags),
        "graph_choice": reason,
        "profiles": [
            {
                name: {"min": list(r[0]), "opt": list(r[1]), "max": list(r[2])}
                for name, r in shape_ranges.items()
            }
        ],
        "io_tensors": [dict(t) for t in io_tensors],
        "build_options": options.to_json(),
        "timing_cache": dict(timing_cache or {}),
        "build_seconds": build_seconds,
        "precision": dict(precision or {}),
    }


def recorded_version_compatible(plan: str | Path) -> bool:
    """Whether trtq's engine.json beside `plan` (`<stem>.engine.json`, or `engine.json` in a run folder) records it
    as built version-compatible (`--version-compat`), for exactly this file (same sha256).

    Such an engine embeds TensorRT's lean runtime, which TensorRT loads only when the runtime allows host code;
    trtq allows it for the engines it built that way, and for no other.
    """
    import json

    path = Path(plan)
    for doc_path in (path.with_name(path.stem + ".engine.json"), path.with_name("engine.json")):
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or "VERSION_COMPATIBLE" not in (doc.get("builder_flags") or []):
            continue
        if (doc.get("plan") or {}).get("sha256") == sha256_file(path):
            return True
    return False
