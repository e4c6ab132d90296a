"""A run context with small random data, and the FP32 model the stage tests run on.

`fp32` is the zoo's tiny_cnn with 16 and 32 channels (x: (b, 3, 16, 16) -> y: (b, 10)): both convs are quantized
(activations x, /1/Relu_output_0, /3/Relu_output_0); the Gemm head stays FP (matrix-vector at batch 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trtq.config import BuildConfig, DataConfig
from trtq.data import ClassLabels, DataSource
from trtq.pipeline import RunContext, RunFolder
from trtq.pipeline.inputs import Inputs
from trtq.pipeline.results import BuildResult


def arrays(n: int = 8, seed: int = 0, labels: bool = False) -> DataSource:
    """`n` random (3, 16, 16) samples (with random class labels 0..9 when `labels`)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 16, 16)).astype(np.float32)
    targets = ClassLabels(rng.integers(0, 10, n)) if labels else None
    return DataSource(name=f"arrays{seed}", array=x, targets=targets)


@pytest.fixture
def fp32(onnx_graph: Callable[..., Any]) -> Any:
    """The zoo's tiny_cnn, 16 and 32 channels, exported (input x, output y)."""
    return onnx_graph("tiny_cnn", widths=(16, 32))


@pytest.fixture
def run_context(tmp_path: Path) -> Callable[..., RunContext]:
    """`run_context(config=None, *, sink=None, calib=8 samples, eval=None, **state)`: a context writing into a
    RunFolder staged at tmp_path/staging (final folder tmp_path/out) unless another sink is given."""

    def make(config: BuildConfig | None = None, *, sink: Any = None, calib: Any = "default", eval: Any = None,
             source: Any = None, sample: Any = None, **state: Any) -> RunContext:  # fmt: skip
        config = config or BuildConfig(data=DataConfig(batch_size=4))
        if sink is None:
            (tmp_path / "staging").mkdir(exist_ok=True)
            sink = RunFolder(tmp_path / "staging", tmp_path / "out")
        calib = arrays() if calib == "default" else calib
        inputs = Inputs(source=source, preprocess=None, calib=calib, eval=eval, sample=sample)
        return RunContext(config=config, sink=sink, result=BuildResult(out_dir=tmp_path / "out", config=config),
                          inputs=inputs, **state)  # fmt: skip

    return make


@pytest.fixture
def tensorrt_stand_ins(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The engine step with TensorRT's parts replaced (no TensorRT here; see tests/engines/): the engine build
    writes a stand-in plan, the TensorRT runner is ONNX Runtime on the INT8 graph, bench writes bench.json.
    Returns what the stand-ins were called with ("stage": trt/int8 names and the batch profile; "bench")."""
    import trtq.benchmark as bm
    import trtq.engines as eng
    import trtq.runners as runners
    from trtq.runners import OnnxRuntimeRunner

    calls: dict[str, object] = {}

    def fake_stage(run_dir: Path, trt_onnx: Path, int8_onnx: Path, options: Any, **kw: object) -> dict:
        calls["stage"] = (trt_onnx.name, int8_onnx.name, options.batch)
        (run_dir / "model.plan").write_bytes(b"serialized engine")
        (run_dir / "engine.json").write_text("{}")
        return {"precision": {"int8_layers": 4}}

    def fake_bench(artifacts: list, settings: Any, out_dir: Path, **kw: object) -> dict:
        calls["bench"] = ([Path(a).name for a in artifacts], settings.batches)
        (out_dir / "bench.json").write_text("{}")
        return {"results": [{"artifact": "model.plan", "batch": 1}]}

    monkeypatch.setattr(eng, "tensorrt_status", lambda: (True, "TensorRT 11.4 (stand-in)"))
    monkeypatch.setattr(eng, "engine_stage", fake_stage)
    monkeypatch.setattr(
        runners,
        "TensorRTRunner",
        lambda plan, **kw: OnnxRuntimeRunner(Path(plan).with_name("model.int8.onnx")),
    )
    monkeypatch.setattr(bm, "bench", fake_bench)
    return calls
