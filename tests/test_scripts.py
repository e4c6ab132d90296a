"""The repository's scripts that cannot run here stay valid: scripts/gpu_smoke.sh needs a GPU with TensorRT."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_smoke_script_is_valid_bash():
    """scripts/gpu_smoke.sh cannot run without a GPU; at least it must parse (and lint where shellcheck is)."""
    script = ROOT / "scripts" / "gpu_smoke.sh"
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
