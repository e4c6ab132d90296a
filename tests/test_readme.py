"""The README's quickstart is executed, so it cannot rot.

The quickstart has exactly two commands. The second (install + tests) is what CI runs through `.ci/run`;
running it from inside the test suite would recurse, so this test checks CI calls it and runs the first
for real: install into the current virtual environment, then the offline demo, whose report must show
real FP32 and INT8 accuracies.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert block, "README.md lost its quickstart block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_has_two_commands_and_ci_runs_the_test_one() -> None:
    demo, tests = quickstart_commands()
    assert demo == "./scripts/demo.sh" and tests == "./scripts/test.sh"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for cmd in (demo, tests):
        assert os.access(ROOT / cmd, os.X_OK), f"{cmd} is not executable"


def test_quickstart_demo_command_runs_end_to_end(tmp_path: Path) -> None:
    demo = quickstart_commands()[0]
    env = dict(os.environ, TRTQ_VENV=str(Path(sys.prefix)), TRTQ_DEMO_OUT=str(tmp_path / "demo"))
    proc = subprocess.run([str(ROOT / demo)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "INT8 (model.int8.onnx)" in proc.stdout and "top-1" in proc.stdout
    report = json.loads((tmp_path / "demo" / "run" / "report.json").read_text())
    models = report["validation"]["models"]
    assert models["fp32"]["top1_accuracy"] > 0.9 and models["int8"]["top1_accuracy"] > 0.9
    assert "TensorRT" in report["engine_status"]
