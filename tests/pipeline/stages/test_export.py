"""ExportStage: the model source and the example input -> model.onnx, `ctx.fp32`, `ctx.result.export`."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trtq.config import BuildConfig, ExportConfig
from trtq.export import resolve_model
from trtq.pipeline.stages import ExportStage


def test_run_writes_model_onnx_at_the_configured_opset(run_context, make_model, tmp_path):
    sample = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ctx = run_context(BuildConfig(export=ExportConfig(opset=13)), source=resolve_model(make_model("tiny_cnn")),
                      sample=sample)  # fmt: skip
    stage = ExportStage()
    stage.check(ctx)
    stage.run(ctx)
    written = onnx.load(str(tmp_path / "staging" / "model.onnx"))
    assert written == ctx.fp32 and ctx.fp32.opset_import[0].version == 13
    assert ctx.result.artifacts == {"model.onnx": tmp_path / "out" / "model.onnx"}
    assert ctx.result.export.kind == "module" and ctx.result.export.max_abs_error < 1e-4


def test_check_needs_a_model_and_an_example_input(run_context, make_model):
    with pytest.raises(ValueError, match="needs a model and an example input"):
        ExportStage().check(run_context(source=resolve_model(make_model("tiny_cnn"))))
    with pytest.raises(ValueError, match="needs a model and an example input"):
        ExportStage().check(run_context(sample=np.zeros((2, 3, 16, 16), np.float32)))
