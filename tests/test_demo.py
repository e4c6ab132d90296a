"""The offline demo: DigitsNet, its deterministic training on scikit-learn's digits, the build command it prints.

`trtq demo` end to end (prepare_demo + run_demo) is run by tests/test_readme.py through scripts/demo.sh.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from trtq.demo import DEMO_PREPROCESS, DemoFiles, DemoResult, DigitsNet, demo_build_command, train_digits


def test_digits_net_takes_grey_8x8_and_gives_10_logits():
    net = DigitsNet().eval()
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 32, 64] and all(c.bias is None for c in convs)


def test_training_is_deterministic_and_splits_1200_and_597(digits):
    a, acc_a, val_imgs, val_labels = train_digits(seed=0, epochs=1)
    b, acc_b, _, _ = train_digits(seed=0, epochs=1)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    assert acc_a == acc_b and 0.0 <= acc_a <= 1.0 and not a.training
    order = np.random.default_rng(0).permutation(len(digits.images))
    assert val_imgs.shape == (597, 8, 8) and np.array_equal(val_imgs, digits.images[order[1200:]])
    assert np.array_equal(val_labels, digits.labels[order[1200:]])


def _files(root: Path) -> DemoFiles:
    return DemoFiles(root, root / "digits_cnn.ts", root / "digits_cnn.pt", root / "data" / "calib",
                     root / "data" / "val", root / "data" / "train", 1.234, 0.98)  # fmt: skip


def test_the_printed_build_command_is_the_demo_preprocessing(tmp_path):
    cmd = demo_build_command(_files(tmp_path), tmp_path / "run", calib="mse")
    assert cmd[:2] == ["trtq", "build"]
    i = cmd.index("--no-resize")
    opts = dict(zip(cmd[2:i:2], cmd[3:i:2])) | dict(zip(cmd[i + 1 :: 2], cmd[i + 2 :: 2]))
    assert opts == {"--model": str(tmp_path / "digits_cnn.ts"), "--calib": "mse",
                    "--calib-data": str(tmp_path / "data" / "calib"), "--eval-data": str(tmp_path / "data" / "val"),
                    "--channels": "1", "--size": "8", "--mean": "0.5", "--std": "0.5", "--out": str(tmp_path / "run")}  # fmt: skip
    assert DEMO_PREPROCESS == {"size": 8, "resize": None, "mean": (0.5,), "std": (0.5,), "channels": 1}


def test_demo_result_json_adds_the_demo_facts_to_the_build_report(tmp_path):
    build = SimpleNamespace(to_json=lambda: {"format": "trtq.report/2", "engine_status": "skipped"})
    doc = DemoResult(_files(tmp_path), build, ["trtq", "build"]).to_json()
    assert doc == {"format": "trtq.report/2", "engine_status": "skipped",
                   "demo": {"train_seconds": 1.23, "torch_fp32_val_accuracy": 0.98, "command": ["trtq", "build"]}}  # fmt: skip
