"""engine.json: the document written beside every plan, checksums, and the GPU description without a GPU."""

from __future__ import annotations

import hashlib
import json

import torch

from trtq import __version__
from trtq.engines.metadata import ENGINE_JSON_VERSION, engine_metadata, gpu_info, sha256_bytes, sha256_file
from trtq.engines.options import EngineOptions


def test_checksums_are_sha256(tmp_path):
    data = bytes(range(256)) * 5000  # over one 1 MiB read chunk
    (tmp_path / "f").write_bytes(data)
    assert sha256_bytes(data) == sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_gpu_info_without_a_gpu_or_with_a_broken_driver_is_nulls_with_a_reason(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_info() == {
        "name": None,
        "compute_capability": None,
        "reason": "no CUDA device visible to torch",
    }

    def broken(device=0):
        raise RuntimeError("driver mismatch")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", broken)
    assert gpu_info() == {"name": None, "compute_capability": None, "reason": "RuntimeError: driver mismatch"}


def test_engine_metadata_document(tmp_path):
    plan = b"PLAN:bytes"
    doc = engine_metadata(
        trt_version="10.13.3", gpu={"name": "GPU"}, graph=tmp_path / "model.trt.onnx", graph_sha256="ab" * 32,
        plan=plan, strongly_typed=False, flags=("INT8", "FP16"), shape_ranges={"x": ((1, 3), (4, 3), (8, 3))},
        io_tensors=[{"name": "x", "mode": "input"}], options=EngineOptions(batch=(1, 4, 8)), build_seconds=1.5,
        reason="TensorRT 10.3 builds weakly typed",
    )  # fmt: skip
    assert json.loads(json.dumps(doc)) == doc
    assert (doc["engine_json_version"], doc["status"], doc["trtq_version"]) == (
        ENGINE_JSON_VERSION,
        "ok",
        __version__,
    )
    assert doc["input_onnx"] == {
        "path": str(tmp_path / "model.trt.onnx"),
        "name": "model.trt.onnx",
        "sha256": "ab" * 32,
    }
    assert doc["plan"] == {"bytes": len(plan), "sha256": sha256_bytes(plan)}
    assert doc["typing"] == "weak" and doc["builder_flags"] == ["INT8", "FP16"]
    assert doc["profiles"] == [{"x": {"min": [1, 3], "opt": [4, 3], "max": [8, 3]}}]
    assert (
        doc["build_options"]["batch"] == [1, 4, 8]
        and doc["graph_choice"] == "TensorRT 10.3 builds weakly typed"
    )
    assert doc["precision"] == {} and doc["timing_cache"] == {}
    strong = engine_metadata(trt_version="11.4.0", gpu={}, graph="g.onnx", graph_sha256="", plan=b"", strongly_typed=True,
                             flags=[], shape_ranges={}, io_tensors=[], options=EngineOptions(), status="precision_check_failed",
                             precision={"error": "0 INT8"})  # fmt: skip
    assert (
        strong["typing"] == "strong"
        and strong["status"] == "precision_check_failed"
        and strong["precision"] == {"error": "0 INT8"}
    )
