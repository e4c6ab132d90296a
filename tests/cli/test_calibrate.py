"""`trtq calibrate`: an FP32 ONNX + data -> calibration.json, the TensorRT cache, plots; refuses to overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trtq.engines.calib_cache import (
    DEFAULT_CACHE_VERSION,
    read_trt_cache,
    read_trt_cache_header,
    trt_version_code,
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The zoo's tiny_cnn (16, 32 channels) as net.onnx, 24 calibration and 8 evaluation samples (random)."""
    from tests import zoo

    d = tmp_path_factory.mktemp("m")
    zoo.graph_file("tiny_cnn", d / "net.onnx", widths=(16, 32))
    rng = np.random.default_rng(0)
    np.save(d / "calib.npy", rng.standard_normal((24, 3, 16, 16)).astype(np.float32))
    np.save(d / "eval.npy", rng.standard_normal((8, 3, 16, 16)).astype(np.float32))
    return d


def test_cli_calibrate_writes_json_cache_and_plots(tiny_model, tmp_path, capsys):
    from trtq.calibration import Calibration
    from trtq.cli import main

    out, cache = tmp_path / "calibration.json", tmp_path / "calibration.cache"
    argv = ["calibrate", "--model", str(tiny_model / "net.onnx"), "--calib-data", str(tiny_model / "calib.npy"),
            "--calib", "all", "--eval-data", str(tiny_model / "eval.npy"), "--batch-size", "8",
            "--out", str(out), "--trt-cache", str(cache), "--plots", str(tmp_path), "--json"]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    cal = Calibration.load(out)
    assert payload["method"] == cal.method and set(payload["scores"]) == set(cal.methods)
    assert cal.methods == ["entropy", "minmax", "percentile", "mse"] and cal.tensors
    back = read_trt_cache(cache)
    # implicit INT8 needs a scale for every tensor of every INT8 layer: the cache has every float activation,
    # calibration.json the ones the Q/DQ plan quantizes
    import onnx

    from trtq.precision import float_tensors

    every = float_tensors(onnx.load(str(tiny_model / "net.onnx")))
    assert list(back) == cal.tensors + [t for t in every if t not in cal.tensors]
    assert set(back) == set(every) and "y" in back and len(back) > len(cal.tensors)
    assert read_trt_cache_header(cache).version == trt_version_code(DEFAULT_CACHE_VERSION)  # no --trt-version
    for t, v in cal.amax_for().items():
        assert back[t] == pytest.approx(v, rel=1e-7)
    assert list(tmp_path.glob("calib_*.png"))
    assert main(argv) == 2  # refuses to overwrite without --force
    assert "--force" in capsys.readouterr().err


def test_cli_calibrate_explicit_tensors_and_bad_method(tiny_model, tmp_path, capsys):
    from trtq.calibration import Calibration
    from trtq.cli import main

    out = tmp_path / "c.json"
    base = [
        "calibrate",
        "--model",
        str(tiny_model / "net.onnx"),
        "--calib-data",
        str(tiny_model / "calib.npy"),
    ]
    assert main([*base, "--tensors", "x", "--calib", "max,percentile", "--out", str(out), "-q"]) == 0
    cal = Calibration.load(out)
    assert cal.tensors == ["x"] and cal.methods == ["minmax", "percentile"]
    assert main([*base, "--calib", "kl", "--out", str(tmp_path / "d.json")]) == 2
    assert "--calib 'kl' is not a registered calibration method" in capsys.readouterr().err
    assert main([*base, "--tensors", "nope", "--out", str(tmp_path / "e.json")]) == 2


def test_trt_version_sets_the_cache_header_and_minmax_labels_it(tiny_model, tmp_path):
    from trtq.cli import main

    cache = tmp_path / "c.cache"
    argv = ["calibrate", "--model", str(tiny_model / "net.onnx"), "--calib-data", str(tiny_model / "calib.npy"),
            "--calib", "minmax", "--out", str(tmp_path / "c.json"), "--trt-cache", str(cache), "--trt-version",
            "10.13.3", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert read_trt_cache_header(cache) == (101303, "MinMaxCalibration")
    with pytest.raises(SystemExit) as e:  # argparse refuses the value before any work
        main([*argv[:-3], "--out", str(tmp_path / "d.json"), "--trt-version", "10.13"])
    assert e.value.code == 2 and not (tmp_path / "d.json").exists()
