"""TensorRT calibration cache files: format, round trip, ModelOpt's reader as a peer, the calibrator's cache
handling, and `trtq calibrate`."""

from __future__ import annotations

import argparse
import inspect
import json
import struct

import numpy as np
import pytest

from trtq.engines import calib_cache
from trtq.engines.calib_cache import (
    DEFAULT_CACHE_VERSION,
    cache_scales,
    parse_trt_cache_header,
    read_trt_cache,
    read_trt_cache_header,
    retarget_cache,
    trt_version_code,
    write_trt_cache,
)
from trtq.errors import UsageError


def test_known_value_and_header(tmp_path):
    p = write_trt_cache(tmp_path / "c.cache", {"images": 1.0, "/conv1/Conv_output_0": 6.35}, (10, 3, 0))
    lines = p.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert lines[1] == "images: 3c010204"  # 1/127 as big-endian float32 bits (TENSORRT.md example)
    assert lines[2] == f"/conv1/Conv_output_0: {struct.pack('>f', 6.35 / 127).hex()}"


@pytest.mark.parametrize(
    ("version", "code"), [((10, 3, 0), 100300), ((10, 16, 1), 101601), ((8, 6, 1), 8601), ((8, 2, 5), 8205)]
)
def test_version_codes(version, code, tmp_path):
    assert trt_version_code(version) == code
    p = write_trt_cache(tmp_path / "c", {"x": 1.0}, version, algorithm="MinMaxCalibration")
    assert read_trt_cache_header(p) == (code, "MinMaxCalibration")


def test_round_trip_is_float32_exact(tmp_path):
    rng = np.random.default_rng(0)
    amax = {f"t{i}": float(v) for i, v in enumerate(rng.lognormal(0, 3, 50))}
    back = read_trt_cache(write_trt_cache(tmp_path / "c", amax))
    assert list(back) == list(amax)
    for k, v in amax.items():
        assert back[k] == float(np.float32(v / 127.0)) * 127.0
        assert back[k] == pytest.approx(v, rel=1e-7)


def test_modelopt_reads_our_cache(tmp_path):
    from modelopt.onnx.quantization.calib_utils import import_scales_from_calib_cache

    amax = {"input": 2.64, "/layer1/Relu_output_0": 11.0, "(Unnamed Layer* 22) [Constant]_output": 0.5}
    p = write_trt_cache(tmp_path / "c", amax)
    scales = import_scales_from_calib_cache(str(p))
    assert scales == {f"{k}_scale": pytest.approx(v / 127, rel=1e-7) for k, v in amax.items()}


def test_reads_leading_zero_dropped_hex_and_colons_in_names(tmp_path):
    p = tmp_path / "c"
    tiny = 1e-39 * 127  # a denormal scale: its hex starts with zeros that some writers drop
    hexval = struct.pack(">f", 1e-39).hex().lstrip("0")
    p.write_text(f"TRT-8601-EntropyCalibration2\ninput:0: 3c010204\nsmall: {hexval}\n")
    back = read_trt_cache(p)
    assert back["input:0"] == pytest.approx(1.0, rel=1e-7)
    assert back["small"] == pytest.approx(tiny, rel=1e-5)


def test_zero_or_nonfinite_amax_is_written_positive(tmp_path):
    back = read_trt_cache(write_trt_cache(tmp_path / "c", {"dead": 0.0, "nan": float("nan")}))
    assert all(v > 0 for v in back.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "TRT-<version>-<Algorithm> header"),
        ("images: 3c010204\n", "header"),
        ("TRT-100300-EntropyCalibration2\nimages 3c010204\n", "line 2"),
        ("TRT-100300-EntropyCalibration2\nimages: zz010204\n", "line 2"),
        ("TRT-100300-EntropyCalibration2\nimages: 00000000\n", "not positive"),
        ("TRT-100300-EntropyCalibration2\nimages: 7fc00000\n", "not positive"),
        ("TRT-100300-EntropyCalibration2\na: 3c010204\na: 3c010204\n", "twice"),
    ],
)
def test_malformed_caches_are_one_line_usage_errors(tmp_path, text, message):
    p = tmp_path / "bad.cache"
    p.write_text(text)
    with pytest.raises(UsageError, match=message) as e:
        read_trt_cache(p)
    assert "\n" not in str(e.value)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_trt_cache(tmp_path / "none.cache")
    with pytest.raises(UsageError, match="unknown calibration cache algorithm"):
        write_trt_cache(tmp_path / "c", {"x": 1.0}, algorithm="KL")
    with pytest.raises(UsageError, match="major, minor, patch"):
        write_trt_cache(tmp_path / "c", {"x": 1.0}, trt_version=(10, 3))


# ------------------------------------------------------------------------------------------ cache bytes
def test_calibration_cache_header_and_scales():
    assert trt_version_code((10, 3, 0)) == 100300
    assert trt_version_code((10, 16, 1)) == 101601
    assert trt_version_code((8, 6, 1)) == 8601
    data = b"TRT-100300-EntropyCalibration2\ninput: 3c010204\n/conv1/Conv_output_0: 3d800000\n"
    assert parse_trt_cache_header(data) == (100300, "EntropyCalibration2")
    scales = cache_scales(data)
    assert scales["input"] == pytest.approx(1 / 127, rel=1e-6)  # amax 1.0
    assert scales["/conv1/Conv_output_0"] == 0.0625
    new, changed = retarget_cache(data, (10, 13, 3))
    assert changed and new.startswith(b"TRT-101303-EntropyCalibration2\ninput: 3c010204")
    assert retarget_cache(data, (10, 3, 0)) == (data, False)
    with pytest.raises(UsageError, match="does not start with a TensorRT header"):
        parse_trt_cache_header(b"input: 3c010204\n")


def test_cache_scales_and_header_from_bytes_reject_what_is_not_a_cache():
    data = b"TRT-100300-EntropyCalibration2\ninput: 3c010204\n"
    assert parse_trt_cache_header(data).algorithm == "EntropyCalibration2"
    assert parse_trt_cache_header(data).version == 100300
    with pytest.raises(UsageError, match="line 2"):
        cache_scales(b"TRT-100300-EntropyCalibration2\ninput 3c010204\n")
    with pytest.raises(UsageError, match="--calib-cache c.cache does not start with a TensorRT header"):
        parse_trt_cache_header(b"", "--calib-cache c.cache")


def test_old_names_still_work_and_warn():
    with pytest.warns(DeprecationWarning, match="use trt_version_code"):
        assert calib_cache.cache_version_number((10, 3, 0)) == 100300
    with pytest.warns(DeprecationWarning, match="use parse_trt_cache_header"):
        assert calib_cache.read_cache_header(b"TRT-8601-MinMaxCalibration\n") == (8601, "MinMaxCalibration")
    with pytest.raises(AttributeError):
        calib_cache.no_such_name  # noqa: B018


# ------------------------------------------------------------------------------------------ the defaults
def test_every_default_cache_version_is_the_one_constant():
    """The writer and the configuration every command and build read (the CLI has no default of its own)."""
    from trtq.cli import build_parser
    from trtq.config import CalibrationConfig

    assert DEFAULT_CACHE_VERSION == (10, 3, 0)
    assert inspect.signature(write_trt_cache).parameters["trt_version"].default is DEFAULT_CACHE_VERSION
    assert CalibrationConfig().cache_version is DEFAULT_CACHE_VERSION
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["calibrate"]
    option = next(a for a in sub._actions if "--trt-version" in a.option_strings)
    assert option.default is argparse.SUPPRESS


def test_a_cache_written_with_defaults_carries_the_default_version(tmp_path):
    p = write_trt_cache(tmp_path / "c", {"x": 1.0})
    assert read_trt_cache_header(p) == (trt_version_code(DEFAULT_CACHE_VERSION), "EntropyCalibration2")


# ------------------------------------------------------------------------------------------ trtq calibrate


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("m")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()
    path = d / "net.onnx"
    torch.onnx.export(
        net, torch.randn(1, 3, 16, 16), str(path), input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False, opset_version=17,
    )  # fmt: skip
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
