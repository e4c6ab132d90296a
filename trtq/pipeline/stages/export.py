"""Export: the model source to `model.onnx` (or an ONNX file passed through), checked against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass

from trtq import artifacts as A
from trtq.pipeline.context import RunContext
from trtq.progress import status

__all__ = ["ExportStage"]


@dataclass
class ExportStage:
    """Writes `model.onnx`; sets `ctx.fp32`; records `ctx.result.export`."""

    name: str = "export"

    def check(self, ctx: RunContext) -> None:
        ctx.need("inputs", self.name)
        if ctx.inputs.source is None or ctx.inputs.sample is None:
            raise ValueError("the export stage needs a model and an example input")

    def run(self, ctx: RunContext) -> None:
        from trtq.export import export_onnx

        with status("exporting to ONNX"):
            exported = export_onnx(
                ctx.inputs.source, ctx.inputs.sample, None, opset=ctx.config.export.opset,
                exporter=ctx.config.export.exporter,
            )  # fmt: skip
        note = getattr(ctx.inputs.source, "preprocess_note", None)
        if note and ctx.config.data.preprocess is None:
            exported.notes.append(note)
        elif note:
            exported.notes.append(
                "preprocessing from the options given (the model's own data config not used)"
            )
        ctx.write_onnx(A.MODEL_ONNX, exported.model)
        ctx.fp32 = exported.model
        ctx.result.export = exported
