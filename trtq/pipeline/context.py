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

__all__ = ["RunContext", "HeldOutRun", "Clock", "Sink", "RunFolder", "NamedFiles", "InMemory"]


class Clock:
    """Wall time per step, added into a timings dict, and (with `memory`) the peak resident memory of each step.

    A step's memory is the highest RSS in MiB while it ran (`trtq.pipeline.memory.RssPeak`), the maximum over
    its runs when a step is timed more than once; a step nested in another counts in both.
    """

    def __init__(self, timings: dict[str, float], memory: dict[str, float] | None = None) -> None:
        self.timings = timings
        self.memory = memory

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        from trtq.pipeline.memory import RssPeak

        start = time.perf_counter()
        peak = RssPeak() if self.memory is not None else None
        try:
            if peak is None:
                yield
            else:
                with peak:
                    yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start
            if peak is not None and peak.peak_mb is not None and self.memory is not None:
                self.memory[step] = max(self.memory.get(step, 0.0), peak.peak_mb)


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


@dataclass(frozen=True)
class HeldOutRun:
    """One Q/DQ model's outputs on some samples of the evaluation data (`inputs.validation`).

    Attributes:
        indices: the samples' positions in the evaluation data, ascending.
        digest: `trtq.calibration.choose.model_digest` of the model that produced them.
        outputs: output name -> array, one row per sample of `indices`.
    """

    indices: Any
    digest: str
    outputs: Mapping[str, Any]


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
        reference: cached FP32 outputs on the evaluation data, shared between stages (`fp32_reference()`).
        heldout: the chosen calibration method's run on the `--calib all` held-out samples (`HeldOutRun`), so
            validation need not run the same Q/DQ model on them again; None when there was no choice.
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
    heldout: HeldOutRun | None = None
    clock: Clock = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.clock = Clock(self.result.timings, self.result.memory_mb)
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

    def fp32_reference(self) -> list[dict[str, Any]]:
        """The FP32 model's outputs on the evaluation data (`inputs.validation`), per batch.

        Computed once, streaming (one ONNX Runtime session, batches decoded as they come, only outputs kept),
        and shared by the `--calib all` method choice and validation; computed again only if `fp32` changes.
        """
        fp32 = self.need("fp32", "validation")
        cached = self.reference
        if not (isinstance(cached, tuple) and len(cached) == 2 and cached[0] is fp32):
            from trtq.validate import model_outputs

            data = self.inputs.validation
            if data is None:
                raise TrtqError("the FP32 reference needs evaluation data (--eval-data or --calib-data)")
            self.reference = cached = (fp32, model_outputs(fp32, self.feeds(data)))
        return cached[1]

    def share_fp32_reference(self, fp32: Any, outputs: list[dict[str, Any]]) -> None:
        """Take `outputs` (per batch, every batch of `inputs.validation` in order) as `fp32`'s reference, computed by
        a pass that ran the FP32 model over the evaluation data anyway (the calibration pass without --eval-data)."""
        data = self.inputs.validation
        batches = data.num_batches(self.config.data.batch_size) if data is not None else None
        if batches is not None and len(outputs) != batches:
            raise TrtqError(f"{len(outputs)} FP32 reference batches for {batches} evaluation batches")
        self.reference = (fp32, outputs)

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
