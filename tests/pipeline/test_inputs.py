"""`load_inputs`: the model, preprocessing and data resolved and checked against each other before any stage."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.config import BuildConfig, DataConfig
from trtq.data import DataSource, Preprocess
from trtq.errors import UsageError
from trtq.pipeline import load_inputs
from trtq.pipeline.inputs import Inputs, load_dataset


def _npy(tmp_path, name, shape, seed=0):
    path = tmp_path / name
    np.save(path, np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    return path


def test_an_onnx_model_with_data_gives_a_two_sample_example_and_the_data(tmp_path, graph_file):
    model = graph_file("tiny_cnn", tmp_path / "m.onnx")
    calib = _npy(tmp_path, "c.npy", (10, 3, 16, 16))
    inputs = load_inputs(
        BuildConfig(model=str(model), data=DataConfig(calib_data=str(calib), calib_samples=4))
    )
    assert inputs.source.is_onnx and inputs.sample.shape == (2, 3, 16, 16) and len(inputs.calib) == 4
    assert inputs.eval is None and inputs.validation is inputs.calib
    assert inputs.validation_label == "calibration (no --eval-data)"
    np.testing.assert_array_equal(inputs.sample, next(inputs.calib.iter_batches(2))[0])


def test_eval_data_is_the_validation_data_and_must_match_the_calibration_shape(tmp_path, graph_file):
    model = str(graph_file("tiny_cnn", tmp_path / "m.onnx"))
    calib, val = _npy(tmp_path, "c.npy", (4, 3, 16, 16)), _npy(tmp_path, "v.npy", (6, 3, 16, 16), seed=1)
    inputs = load_inputs(BuildConfig(model=model, data=DataConfig(calib_data=str(calib), eval_data=str(val))))
    assert inputs.validation is inputs.eval and inputs.validation_label == "eval" and len(inputs.eval) == 6
    other = _npy(tmp_path, "o.npy", (6, 3, 8, 8))
    with pytest.raises(
        UsageError, match=r"--eval-data samples have shape \(3, 8, 8\) but --calib-data samples \(3, 16, 16\)"
    ):
        load_inputs(BuildConfig(model=model, data=DataConfig(calib_data=str(calib), eval_data=str(other))))
    with pytest.raises(
        UsageError, match=r"--calib-data gives samples of shape \(3, 8, 8\) but model input 'x' expects"
    ):
        load_inputs(BuildConfig(model=model, data=DataConfig(calib_data=str(other))))


def test_the_preprocessing_follows_the_models_channels(make_model, tmp_path, image_folder):
    folder = image_folder(classes=1, per_class=2, size=8)
    inputs = load_inputs(BuildConfig(model=make_model("digits_net"), data=DataConfig(calib_data=str(folder),
                                     preprocess={"size": 8, "resize": None})))  # fmt: skip
    assert inputs.preprocess.channels == 1 and inputs.sample.shape == (2, 1, 8, 8)
    bare = load_inputs(BuildConfig(model=make_model("digits_net")))
    assert bare.calib is None and bare.sample is None and bare.preprocess.channels == 1


def test_load_dataset_subsets_with_the_runs_seed_and_takes_a_data_source_as_given():
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    cfg = BuildConfig(
        seed=4, data=DataConfig(calib_data=x, calib_samples=5, eval_data=DataSource("mine", array=x))
    )
    calib = load_dataset(cfg, "calib", Preprocess())
    again = load_dataset(cfg, "calib", Preprocess())
    assert len(calib) == 5 and np.array_equal(calib.array, again.array) and calib.name == "--calib-data"
    assert np.array_equal(calib.array, DataSource("d", array=x).subset(5, 4).array)
    assert load_dataset(cfg, "eval", Preprocess()).name == "mine"
    assert load_dataset(BuildConfig(), "eval", Preprocess()) is None
    assert Inputs(None, Preprocess(), None, None, None).validation is None
