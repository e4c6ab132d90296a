"""The run context every stage reads and writes: configuration, inputs, in-memory artifacts, where files go.

A stage (`trtq.pipeline.stage.Stage`) takes what earlier stages left in the context (`ctx.fp32`, `ctx.plan`,
`ctx.calibration`, ...), writes its artifact through `ctx.write_*` and records its typed result in
`ctx.result`. Where a file goes is the sink's business: `trtq build` stages everything in a hidden folder that
is renamed into place at the end (`RunFolder`); a stage command writes the few files the user named
(`NamedFiles`). So `trtq build` and `trtq calibrate` / `quantize` / ... run the same stage code and write the
same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from trtq.errors import TrtqError
from trtq.files import save_onnx, write_bytes, write_json, write_text

if TYPE_CHECKING:
    from trtq.calibration import Calibration
    from trtq.config import BuildConfig
    from trtq.pipeline.inputs import Inputs
    from trtq.pipeline.results import BuildResult
    from trtq.placement import QDQPlan

__all__ = ["RunContext", "Clock", "Sink", "RunFolder", "NamedFiles", "InMemory"]


class Clock:
    """Wall time per step, added into a timings dict."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start


class Sink:
    """Where artifacts go: `path(name)` is where to write one now (None: not wanted), `final(name)` where it ends up."""

    def path(self, name: str) -> Path | None:  # pragma: no cover - interface
        raise NotImplementedError

    def final(self, name: str) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def wants(self, name: str) -> bool:
        """Whether the artifact is wanted at all (stages skip work nobody wants)."""
        return self.path(name) is not None


@dataclass
class InMemory(Sink):
    """Nothing is written; the artifacts in `wanted` are still produced (in the context) for the caller."""

    wanted: frozenset[str] = frozenset()

    def path(self, name: str) -> None:
        return None

    def final(self, name: str) -> Path:
        return Path(name)

    def wants(self, name: str) -> bool:
        return name in self.wanted


@dataclass
class RunFolder(Sink):
    """Every artifact into `staging/`, which becomes `out/` when the run succeeds."""

    staging: Path
    out: Path

    def path(self, name: str) -> Path:
        return self.staging / name

    def final(self, name: str) -> Path:
        return self.out / name


@dataclass
class NamedFiles(Sink):
    """Only the artifacts the user named, each to its own path (written atomically in place).

    Attributes:
        files: artifact name -> path.
        folder: where artifacts without a path of their own go (plots), or None to drop them.
    """

    files: Mapping[str, Path | str | None]
    folder: Path | None = None

    def path(self, name: str) -> Path | None:
        if self.files.get(name) is not None:
            return Path(self.files[name])  # type: ignore[arg-type]
        if name in self.files or self.folder is None:
            return None
        return Path(self.folder) / name

    def final(self, name: str) -> Path:
        p = self.path(name)
        return p if p is not None else Path(name)


@dataclass
class RunContext:
    """What a run knows, stage after stage.

    Attributes:
        config: the resolved configuration.
        sink: where artifacts are written.
        result: the typed results stages record (rendered into report.json / report.md).
        inputs: the model source and data, resolved and checked before the first stage.
        fp32: the FP32 model (after export).
        plan: the Q/DQ plan (after placement; the fallback stage replaces it with the mixed plan).
        calibration: the thresholds (after calibration).
        int8: the Q/DQ model, FP32 typed (after quantization).
        weights: the weight-side PTQ result (`trtq.weights.WeightPTQ`, after the weights stage; None = none).
        typed: the strongly typed model (after typing).
        reference: cached FP32 outputs on the evaluation data, shared between stages.
    """

    config: BuildConfig
    sink: Sink
    result: BuildResult
    inputs: Inputs
    fp32: onnx.ModelProto | None = None
    plan: QDQPlan | None = None
    calibration: Calibration | None = None
    int8: onnx.ModelProto | None = None
    weights: Any = None
    typed: onnx.ModelProto | None = None
    reference: Any = None
    clock: Clock = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.clock = Clock(self.result.timings)
        self.started = time.perf_counter()

    @property
    def input_names(self) -> list[str]:
        """The FP32 model's input names, in graph order (the keys of every feed)."""
        from trtq.export import input_names

        return input_names(self.need("fp32", "input"))

    def feeds(self, data: Any, batch_size: int | None = None) -> Any:
        """Feed dicts of `data` for every input of the FP32 model (integer inputs in the model's integer type)."""
        from trtq.export import onnx_inputs

        dtypes = {i.name: i.dtype for i in onnx_inputs(self.need("fp32", "input"))}
        return data.feeds(self.input_names, batch_size or self.config.data.batch_size, dtypes)

    def need(self, attr: str, stage: str) -> Any:
        """`getattr(self, attr)`, or a TrtqError saying which stage should have produced it."""
        value = getattr(self, attr)
        if value is None:
            raise TrtqError(f"the {stage} stage needs {attr}, which no earlier stage produced")
        return value

    # writing artifacts -------------------------------------------------------------------------------------
    def _written(self, name: str) -> Path | None:
        path = self.sink.path(name)
        if path is not None:
            self.result.artifacts[name] = self.sink.final(name)
        return path

    def write_onnx(self, name: str, model: onnx.ModelProto) -> Path | None:
        path = self._written(name)
        if path is not None:
            save_onnx(model, path)
            from trtq.onnx_io import data_file

            if data_file(path).is_file():  # weights beside it (a model over protobuf's 2 GB limit)
                self._written(data_file(path).name)
        return path

    def write_json(self, name: str, doc: Any) -> Path | None:
        path = self._written(name)
        if path is not None:
            write_json(path, doc)
        return path

    def write_text(self, name: str, text: str) -> Path | None:
        path = self._written(name)
        if path is not None:
            write_text(path, text)
        return path

    def write_bytes(self, name: str, data: bytes) -> Path | None:
        path = self._written(name)
        if path is not None:
            write_bytes(path, data)
        return path

    def wants(self, name: str) -> bool:
        """Whether the sink takes this artifact (stages skip work whose only product nobody wants)."""
        return self.sink.wants(name)

    def artifact_path(self, name: str) -> Path | None:
        """Where an artifact is being written (for stages whose writer takes a path), recording it."""
        return self._written(name)
