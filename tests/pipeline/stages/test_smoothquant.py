"""SmoothQuantStage: off unless --smoothquant; needs calibration data; swaps in the smoothed graph and reports it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trtq.config import BuildConfig, CalibrationConfig, DataConfig
from trtq.data import DataSource
from trtq.errors import UsageError
from trtq.pipeline.stages.smoothquant import SmoothQuantStage
from trtq.runners.onnxrt import OnnxRuntimeRunner


def _tokens(n: int = 16, seed: int = 0) -> DataSource:
    """(n, 16, 32) activations with two outlier channels, 30x the rest (what LayerNorm outputs carry)."""
    x = np.random.default_rng(seed).standard_normal((n, 16, 32)).astype(np.float32)
    x[..., [3, 17]] *= 30.0
    return DataSource(name="tokens", array=x)


def _config(alpha: float | None) -> BuildConfig:
    return BuildConfig(data=DataConfig(batch_size=4), calibration=CalibrationConfig(smoothquant=alpha))


def test_off_unless_asked_and_refused_without_calibration_data(run_context, onnx_graph):
    stage = SmoothQuantStage()
    assert not stage.active(run_context(_config(None)))
    ctx = run_context(_config(0.5), calib=None, fp32=onnx_graph("transformer_block"))
    assert stage.active(ctx)
    with pytest.raises(UsageError, match="--smoothquant measures the activations on --calib-data"):
        stage.check(ctx)


def test_run_swaps_in_the_smoothed_graph_with_the_same_function(run_context, onnx_graph, tmp_path):
    fp32 = onnx_graph("transformer_block")
    ctx = run_context(_config(0.5), calib=_tokens(), fp32=fp32)
    SmoothQuantStage().run(ctx)
    written = onnx.load(str(tmp_path / "staging" / "model.smoothquant.onnx"))
    assert ctx.fp32 is not fp32 and written.SerializeToString() == ctx.fp32.SerializeToString()
    (section,) = ctx.result.sections
    assert section.key == "smoothquant" and section.data["alpha"] == 0.5 and section.data["groups"]
    assert "| activation | read by |" in section.markdown
    feed = {"x": _tokens(4, seed=1).array}
    with OnnxRuntimeRunner(fp32) as r:
        before = r.infer(feed)
    with OnnxRuntimeRunner(ctx.fp32) as r:
        after = r.infer(feed)
    for name, value in before.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-4, atol=1e-4)
    assert ctx.fp32.SerializeToString() != fp32.SerializeToString()  # the weights did change
