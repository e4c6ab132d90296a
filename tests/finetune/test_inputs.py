"""`trtq.finetune.inputs`: the model, data and device of a run, checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.errors import UsageError
from trtq.finetune import QATConfig, QATDataConfig
from trtq.finetune.inputs import check_out_dir, load_inputs, resolve_device


def test_device_names() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="--device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_data_of_another_shape_is_refused(digits: dict, tmp_path: Path) -> None:
    other = tmp_path / "big.npz"
    np.savez(other, x=np.zeros((4, 1, 16, 16), np.float32), y=np.zeros(4, np.int64))
    data = QATDataConfig(str(digits["train"]), str(digits["val"]), calib_data=str(other), calib_samples=4)
    cfg = QATConfig(data=data)
    with pytest.raises(
        UsageError, match=r"--train-data samples \(1, 8, 8\) and --calib-data samples \(1, 16, 16\)"
    ):
        load_inputs(digits["model"], cfg, built_in_loop=True)


def test_inputs_hold_the_calibration_sample_and_the_preprocessing(digits: dict) -> None:
    cfg = QATConfig(data=QATDataConfig(train_data=str(digits["train"]), calib_samples=10, train_samples=20))
    inp = load_inputs(digits["model"], cfg, built_in_loop=False)
    assert len(inp.calib) == 10 and len(inp.train) == 20 and inp.val is None  # calibration from --train-data
    assert inp.sample.shape == (2, 1, 8, 8) and inp.preprocess.channels == 1


def test_a_used_output_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty; pass --force"):
        check_out_dir(tmp_path, force=False)
    with pytest.raises(UsageError, match="is a file"):
        check_out_dir(tmp_path / "mine.txt", force=True)
    check_out_dir(tmp_path, force=True)
    check_out_dir(tmp_path / "new", force=False)
    assert not (tmp_path / "new").exists() and (tmp_path / "mine.txt").read_text() == "keep me"
