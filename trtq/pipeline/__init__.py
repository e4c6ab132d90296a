"""The run as stage objects over one context.

`Stage` (`check(ctx)`, `run(ctx)`), `RunContext` (configuration, inputs, in-memory artifacts, where files go),
the stages in `trtq.pipeline.stages`, and the stage lists of `trtq build` (`build`) and `trtq build --from-qat`
(`build_from_qat`). Stage commands (`trtq calibrate`, `quantize`, `sensitivity`, ...) run the same stages with a
sink that writes only the files they were asked for.
"""

from trtq.pipeline.build import build, build_from_qat, ptq_stages, qat_stages, run_build
from trtq.pipeline.context import Clock, InMemory, NamedFiles, RunContext, RunFolder, Sink
from trtq.pipeline.inputs import Inputs, load_inputs
from trtq.pipeline.results import BuildResult
from trtq.pipeline.stage import Stage, run_stages

__all__ = [
    "build",
    "build_from_qat",
    "run_build",
    "ptq_stages",
    "qat_stages",
    "BuildResult",
    "Stage",
    "run_stages",
    "RunContext",
    "RunFolder",
    "NamedFiles",
    "InMemory",
    "Sink",
    "Clock",
    "Inputs",
    "load_inputs",
]
