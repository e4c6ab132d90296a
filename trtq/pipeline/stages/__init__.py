"""The stages of a run, one module each; `trtq build` and every stage command run these same objects."""

from trtq.pipeline.stages.calibrate import CalibrateStage
from trtq.pipeline.stages.engine import EngineStage
from trtq.pipeline.stages.equalize import EqualizeStage
from trtq.pipeline.stages.export import ExportStage
from trtq.pipeline.stages.fallback import FallbackStage
from trtq.pipeline.stages.placement import PlacementStage
from trtq.pipeline.stages.qat import QATGraphStage
from trtq.pipeline.stages.quantize import QuantizeStage
from trtq.pipeline.stages.report import ReportStage
from trtq.pipeline.stages.smoothquant import SmoothQuantStage
from trtq.pipeline.stages.task import TaskStage
from trtq.pipeline.stages.typing import TypingStage
from trtq.pipeline.stages.validate import ValidateStage
from trtq.pipeline.stages.weights import WeightsStage

__all__ = [
    "ExportStage",
    "TaskStage",
    "SmoothQuantStage",
    "EqualizeStage",
    "PlacementStage",
    "CalibrateStage",
    "WeightsStage",
    "FallbackStage",
    "QuantizeStage",
    "TypingStage",
    "ValidateStage",
    "EngineStage",
    "ReportStage",
    "QATGraphStage",
]
