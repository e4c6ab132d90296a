"""The two torch exporters behind `--exporter`: "legacy" (TorchScript-based) and "dynamo" (`torch.export`-based).

`run_exporter` runs the one asked for ("auto": legacy while the installed torch has it, dynamo when it is missing or
fails) and says which ran and why; `export_file` is one export into a temporary folder, loaded back.
"""

from __future__ import annotations

import warnings
from typing import Any

import onnx

from trtq.errors import TrtqError
from trtq.export.onnx_model import strip_identities

__all__ = ["DYNAMO_MIN_OPSET", "export_file", "legacy_exporter_available", "run_exporter"]

#: The lowest opset the dynamo exporter writes.
DYNAMO_MIN_OPSET = 18


def legacy_exporter_available() -> bool:
    """Whether the installed torch still has the TorchScript-based exporter (`dynamo=False`)."""
    import inspect

    import torch

    try:
        return "dynamo" in inspect.signature(torch.onnx.export).parameters and hasattr(torch.jit, "trace")
    except (TypeError, ValueError):
        return False


def run_exporter(
    module: Any,
    args: tuple,
    names: list[str],
    out_names: list[str],
    opset: int,
    dynamic_axes: Any,
    exporter: str,
    spec: str,
) -> tuple[onnx.ModelProto, str, str]:
    """Export with the exporter asked for; "auto": legacy while torch has it, dynamo when it is missing or fails."""

    def export(which: str) -> onnx.ModelProto:
        return export_file(module, args, names, out_names, opset, dynamic_axes, which)

    if exporter in ("legacy", "dynamo"):
        return export(exporter), exporter, "asked for"
    if not legacy_exporter_available():
        return export("dynamo"), "dynamo", "auto: this torch has no TorchScript-based exporter"
    try:
        model = export("legacy")
    except TrtqError as e:
        why = f"auto: the TorchScript-based exporter failed ({e}); the torch.export-based one worked"
        return export("dynamo"), "dynamo", why
    return model, "legacy", "auto: the TorchScript-based exporter is present (node names follow module paths)"


def export_file(
    module: Any,
    args: tuple,
    names: list[str],
    out_names: list[str],
    opset: int,
    dynamic_axes: Any,
    which: str,
) -> onnx.ModelProto:
    """One export into a temporary folder (so either exporter may write external data above 2 GB), loaded back."""
    import tempfile
    from pathlib import Path

    import torch

    from trtq.onnx_io import check_onnx_file

    with tempfile.TemporaryDirectory(prefix="trtq-export-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if which == "legacy":
                    torch.onnx.export(
                        module, args, str(path), input_names=names, output_names=out_names, opset_version=opset,
                        dynamic_axes=dynamic_axes, do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL,
                        dynamo=False,
                    )  # fmt: skip
                else:
                    if isinstance(module, torch.jit.ScriptModule):
                        raise TrtqError(
                            "the dynamo exporter cannot export a TorchScript model; use --exporter legacy (or auto)"
                        )
                    batch = torch.export.Dim("batch") if dynamic_axes else None
                    shapes = tuple({0: batch} for _ in args) if batch is not None else None
                    program = torch.onnx.export(
                        module, args, None, input_names=names, output_names=out_names,
                        opset_version=max(opset, DYNAMO_MIN_OPSET), dynamic_shapes=shapes, dynamo=True,
                        optimize=True, verbose=False,
                    )  # fmt: skip
                    program.save(str(path))
        except TrtqError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TrtqError(f"the {which} exporter failed: {type(e).__name__}: {first[:300]}") from None
        check_onnx_file(path)
        return strip_identities(onnx.load(str(path)))
