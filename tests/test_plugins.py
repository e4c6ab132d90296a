"""Plugins register a calibrator, a placement rule and a metric from outside trtq, and the CLI uses each by name.

The run happens in a fresh process (`trtq --plugin MODULE build ...`), as a user's would: nothing is registered
until the plugin module is imported, and no trtq module was edited to know about it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.plugins import ENV_VAR, load_plugins

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "tests.plugins.toy_trtq_plugin"


def _trtq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from trtq.cli import main; sys.exit(main())"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
                          cwd=ROOT, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from trtq.demo import _digits_uint8, _normalise, train_digits

    root = tmp_path_factory.mktemp("plugin")
    model, _, val_imgs, val_labels = train_digits(epochs=2)
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(root / "digits.ts"))
    imgs, _ = _digits_uint8()
    np.save(root / "calib.npy", _normalise(imgs[:64]))
    np.savez(root / "val.npz", x=_normalise(val_imgs[:64]), y=val_labels[:64])
    return {"model": root / "digits.ts", "calib": root / "calib.npy", "val": root / "val.npz"}


def test_a_plugin_calibrator_rule_and_metric_are_used_through_the_cli(
    digits: dict[str, Path], tmp_path: Path
) -> None:
    base = ["--model", str(digits["model"]), "--calib-data", str(digits["calib"]), "--eval-data", str(digits["val"]),
            "--no-engine", "-q"]  # fmt: skip
    ref = _trtq("build", *base, "--calib", "minmax", "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    run = _trtq("--plugin", PLUGIN, "build", *base, "--calib", "toyfraction", "--calib-param", "fraction=0.25",
                "--enable-rule", "ToyKeepStem", "--metric", "toy_l1", "--max-drop", "1000",
                "--out", str(tmp_path / "run"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # the calibrator: its thresholds, with its parameter, are what the graph got
    cal = json.loads((tmp_path / "run" / "calibration.json").read_text())
    minmax = json.loads((tmp_path / "ref" / "calibration.json").read_text())
    assert cal["method"] == "toyfraction" and report["calibration"]["method"] == "toyfraction"
    for tensor, entry in cal["tensors"].items():
        assert entry["amax"]["toyfraction"] == pytest.approx(
            0.25 * minmax["tensors"][tensor]["amax"]["minmax"]
        )
    # the rule: the stem conv stays in high precision, and the report says which rule kept it
    skipped = {s["node"]: s["rule"] for s in report["placement"]["skipped"]}
    assert skipped.get("/stem/0/Conv") == "ToyKeepStem"
    assert "/stem/0/Conv" not in {s["node"] for s in json.loads((tmp_path / "ref" / "report.json").read_text())
                                  ["placement"]["skipped"]}  # fmt: skip
    # the metric: validation reports it and the fallback budget is measured in it
    assert report["validation"]["models"]["int8"]["toy_l1"] < 0
    assert report["sensitivity"]["metric"] == "toy_l1"
    assert report["plugins"] == [PLUGIN] and report["config"]["plugins"] == [PLUGIN]


def test_without_the_plugin_its_names_are_refused_and_the_env_variable_loads_it(tmp_path: Path) -> None:
    out = _trtq(
        "build", "--model", "x", "--calib-data", ".", "--calib", "toyfraction", "--out", str(tmp_path / "r")
    )
    assert out.returncode == 2 and "'toyfraction' is not a registered calibration method" in out.stderr
    helped = _trtq("build", "--help", env={ENV_VAR: PLUGIN})
    assert helped.returncode == 0 and "toyfraction" in helped.stdout and "ToyKeepStem" in helped.stdout
    missing = _trtq("--plugin", "no_such_plugin_xyz", "build", "--help")
    assert missing.returncode == 2 and "plugin 'no_such_plugin_xyz'" in missing.stderr


def test_load_plugins_refuses_a_module_that_does_not_import() -> None:
    from trtq.errors import UsageError

    with pytest.raises(UsageError, match="cannot be imported"):
        load_plugins(["no_such_plugin_abc"], entry_points=False, env=False)
