"""The calibrate stage with a cache from elsewhere (trtq.pipeline.stages.calibrate): tensors that are not in the
model are reported, and a cache made for another model is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.engines.calib_cache import write_trt_cache
from trtq.errors import UsageError
from trtq.pipeline import build


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cal")
    torch.manual_seed(0)
    from trtq.demo import DigitsNet

    ts = root / "net.ts"
    torch.jit.save(torch.jit.trace(DigitsNet().eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    np.save(root / "x.npy", np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32))
    return ts, root / "x.npy"


def _cache_of_this_model(digits: tuple[Path, Path], tmp_path: Path) -> dict[str, float]:
    from trtq.engines.calib_cache import read_trt_cache

    res = build(str(digits[0]), str(digits[1]), tmp_path / "ref", calib="minmax", build_engine=False,
                trt_cache=True)  # fmt: skip
    return read_trt_cache(res.artifacts["calibration.cache"])


def test_a_cache_with_names_this_model_lacks_is_used_with_a_warning(digits, tmp_path: Path) -> None:
    amax = _cache_of_this_model(digits, tmp_path)
    cache = tmp_path / "c.cache"
    write_trt_cache(cache, {**amax, "(Unnamed Layer* 3) [Shuffle]_output": 1.0})
    res = build(str(digits[0]), None, tmp_path / "r", calib_cache=str(cache), eval_data=str(digits[1]),
                build_engine=False)  # fmt: skip
    (warning,) = [w for w in res.warnings if "calibration cache" in w]
    assert "also names 1 tensor(s) that are not in this model" in warning and "Unnamed Layer" in warning
    assert "## Warnings" in (tmp_path / "r" / "report.md").read_text()


def test_a_cache_made_for_another_model_is_refused(digits, tmp_path: Path) -> None:
    from trtq.calibration import Calibration

    amax = _cache_of_this_model(digits, tmp_path)
    planned = Calibration.load(tmp_path / "ref" / "calibration.json").tensors  # what the Q/DQ plan needs
    foreign = {f"/other/layer{i}/Relu_output_0": 4.0 for i in range(len(planned) + 1)}
    cache = tmp_path / "other.cache"
    write_trt_cache(cache, {**{t: amax[t] for t in planned}, **foreign})
    with pytest.raises(
        UsageError, match=r"names \d+ tensors that are not in this model .* made for another model"
    ):
        build(str(digits[0]), None, tmp_path / "r2", calib_cache=str(cache), eval_data=str(digits[1]),
              build_engine=False)  # fmt: skip
    assert not (tmp_path / "r2").exists()
