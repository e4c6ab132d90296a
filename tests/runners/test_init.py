"""`trtq.runners` as a package: what it exports, and that importing it loads neither torch nor TensorRT."""

from __future__ import annotations

import subprocess
import sys

import trtq
import trtq.engines
import trtq.runners
from trtq.runners.tensorrt import TensorRTRunner

_BLOCK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorrt", "torch"):
            raise ImportError("blocked import of " + name)
        return None

sys.meta_path.insert(0, Block())
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code, *args], capture_output=True, text=True, timeout=120
    )


def test_importing_runners_and_choosing_an_engine_runner_needs_neither_torch_nor_tensorrt(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    proc = _run(
        "import trtq.runners, trtq.benchmark\n"
        "r = trtq.runners.make_runner(sys.argv[1])\n"
        "print(type(r).__name__, trtq.runners.TensorRTRunner.__module__)\n",
        str(plan),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["TensorRTRunner", "trtq.runners.tensorrt"]


def test_importing_the_calibration_cache_module_loads_no_tensorrt_and_no_onnx():
    proc = _run("import trtq.engines.calib_cache\nprint('onnx' in sys.modules)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_one_runner_class_under_every_public_name():
    assert trtq.runners.TensorRTRunner is TensorRTRunner
    assert trtq.engines.TensorRTRunner is TensorRTRunner
    assert trtq.TensorRTRunner is TensorRTRunner
    assert trtq.OnnxRuntimeRunner is trtq.runners.OnnxRuntimeRunner
    assert "TensorRTRunner" in trtq.runners.__all__
    assert set(trtq.runners.__all__) <= set(dir(trtq.runners)) | {"TensorRTRunner"}
