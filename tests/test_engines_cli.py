"""`trtq engine` and `trtq validate` from the command line (TensorRT replaced by the fake where needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from trtq.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from trt_stub.fake_tensorrt import make_fake  # noqa: E402

SAMPLES = Path(__file__).parent / "trt_stub" / "inspector"


def _classifier(path: Path, weight_scale: float = 1.0, qdq: bool = False) -> Path:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((10, 3 * 4 * 4)) * weight_scale).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    nodes = [helper.make_node("Flatten", ["x"], ["flat"])]
    src = "flat"
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.05, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "zp"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["flat", "s", "zp"], ["fq"]),
            helper.make_node("DequantizeLinear", ["fq", "s", "zp"], ["fdq"]),
        ]
        src = "fdq"
    nodes.append(helper.make_node("Gemm", [src, "w"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    return path


def test_engine_cli_without_tensorrt_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    onnx_path = _classifier(tmp_path / "m.onnx")
    assert main(["engine", "--onnx", str(onnx_path), "--out", str(tmp_path / "m.plan")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("trtq engine: failed: TensorRT is not installed") and "\n" not in err
    assert not (tmp_path / "m.plan").exists()


def test_engine_cli_bad_batch_is_usage_error(tmp_path, capsys):
    onnx_path = _classifier(tmp_path / "m.onnx")
    assert main(["engine", "--onnx", str(onnx_path), "--batch", "8,1,2"]) == 2
    assert "need 1 <= min <= opt <= max" in capsys.readouterr().err


def test_engine_cli_with_fake_tensorrt(tmp_path, monkeypatch, capsys):
    fake = make_fake("11.4.0")
    fake.state.inspector_json = json.loads((SAMPLES / "trt11_mixed_int8_fp16.json").read_text())
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    from trtq.engines import cuda

    monkeypatch.setattr(cuda, "probe_driver", lambda: cuda.CudaDriver(True, 0, 1, (13, 0)))  # a stand-in GPU
    onnx_path = _classifier(tmp_path / "m.onnx", qdq=True)
    out = tmp_path / "m.plan"
    argv = ["engine", "--onnx", str(onnx_path), "--out", str(out), "--batch", "1,4,16", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.read_bytes().startswith(b"PLAN:")
    assert summary["profile"] == {"x": {"min": [1, 3, 4, 4], "opt": [4, 3, 4, 4], "max": [16, 3, 4, 4]}}
    assert json.loads((tmp_path / "m.engine.json").read_text())["status"] == "ok"
    assert main(argv) == 2  # refuses to overwrite without --force


def test_validate_cli_two_onnx_files(tmp_path, capsys):
    ref = _classifier(tmp_path / "ref.onnx")
    same = _classifier(tmp_path / "same.onnx", qdq=True)
    far = _classifier(tmp_path / "far.onnx", weight_scale=-1.0)
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(1).standard_normal((12, 3, 4, 4)).astype(np.float32))
    out = tmp_path / "validation.json"
    argv = [
        "validate",
        "--model",
        str(same),
        "--reference",
        str(ref),
        "--data",
        str(data),
        "--batch-size",
        "4",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["samples"] == 12 and doc["pass"] is True and doc["polygraphy"]["candidate"] is True
    assert doc["models"]["candidate"]["top1_agreement"] > 0.8
    assert "PASS" in capsys.readouterr().out
    # negated weights: the logits disagree -> exit 1
    argv[2] = str(far)
    assert main(argv) == 1
    assert "FAIL" in capsys.readouterr().out


def test_gpu_smoke_script_is_valid_bash():
    """scripts/gpu_smoke.sh cannot run without a GPU; at least it must parse (and lint where shellcheck is)."""
    import shutil
    import subprocess

    script = Path(__file__).parent.parent / "scripts" / "gpu_smoke.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for needed in (
        "trtq demo",
        "trtq build",
        "trtq engine",
        "trtq validate",
        "trtq bench",
        "GPU SMOKE: PASS",
    ):
        assert needed in text
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
