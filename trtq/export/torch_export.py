"""The export itself: a resolved model and an example input to the FP32 ONNX every later stage reads.

The example input is a single array (the input "input") or `{input_name: array}` for models with several
inputs; see `trtq.export.samples` for how it is fed and how outputs are named.

Two exporters (`exporter=`): "legacy", the TorchScript-based `torch.onnx.export(dynamo=False)` (opset 17 by
default; node names follow the module path, e.g. `/layer1/layer1.0/conv1/Conv`), and "dynamo", the
`torch.export`-based one that PyTorch now prefers (opset 18 or more whatever is asked). "auto" (the default)
uses the legacy exporter while the installed torch has it, since --exclude patterns and QAT graphs name its
nodes, and the dynamo exporter when it is missing or fails; `ExportResult.exporter` and `.exporter_reason` say
which ran and why. Both give the same kind of graph: a dynamic batch axis (dim 0 of every input and output), a
dynamic "sequence" axis (dim 1 of every integer input of rank >= 2: token ids, masks, positions; checked by a
second parity run on a shorter sequence),
eval mode with BatchNorm folded into the preceding convolution, weights inline, or in one external data file
(`model.onnx.data`) above protobuf's 2 GB limit (`trtq.onnx_io`). Afterwards PyTorch and ONNX Runtime run the
same sample and the export fails with the max error if any output disagrees. An `.onnx` source is passed
through: checked against the sample, not re-exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import UsageError
from trtq.export.exporters import run_exporter
from trtq.export.onnx_model import (
    OnnxInput,
    check_feed,
    check_input_shape,
    onnx_input_shape,
    onnx_inputs,
    onnx_opset,
    set_model_limits,
)
from trtq.export.parity import check_other_length, check_parity, ort_run, sequence_inputs
from trtq.export.samples import DEFAULT_INPUT_NAME, Sample, as_feed, flatten_outputs, output_names
from trtq.export.sources import ModelSource, input_channels, resolve_model

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "ExportResult",
    "export_onnx",
    "export_sample",
]

DEFAULT_OPSET = 17
#: The exporters `exporter=` accepts.
EXPORTERS = ("auto", "dynamo", "legacy")


@dataclass
class ExportResult:
    """The FP32 ONNX model and how it was made.

    Attributes:
        model: the exported (or passed-through) ONNX model.
        source: the model as the user gave it (`ModelSource.spec`).
        kind: how the source was resolved (`ModelSource.kind`).
        opset: the ai.onnx opset of `model`.
        max_abs_error: the largest PyTorch vs ONNX Runtime difference over all outputs; None when passed
            through.
        nodes: node count of `model`.
        notes: what was done besides exporting.
        inputs: the graph's real inputs (name, dtype, dims).
        outputs: the graph's output names.
        exporter: the torch exporter that ran ("legacy" or "dynamo"; None when passed through).
        exporter_reason: why that one.
    """

    model: onnx.ModelProto
    source: str
    kind: str
    opset: int
    max_abs_error: float | None = None
    nodes: int = 0
    notes: list[str] = field(default_factory=list)
    inputs: list[OnnxInput] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    exporter: str | None = None
    exporter_reason: str | None = None

    def summary(self) -> dict[str, Any]:
        """The result as JSON (what `report.json` and `trtq export --json` show)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "exporter": self.exporter,
            "exporter_reason": self.exporter_reason,
            "opset": self.opset,
            "nodes": self.nodes,
            "parity_max_abs_error": self.max_abs_error,
            "notes": self.notes,
            "inputs": [i.to_json() for i in self.inputs],
            "outputs": list(self.outputs),
        }


def export_onnx(
    model: str | os.PathLike | Any,
    sample: Sample,
    out_path: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    dynamic_batch: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    exporter: str = "auto",
) -> ExportResult:
    """Export `model` to FP32 ONNX and check it against PyTorch on `sample`.

    Args:
        model: torchvision name, `package.module:factory`, saved model file, `.onnx` file, nn.Module or a
            resolved `ModelSource`.
        sample: a real input batch, an array (N, C, H, W) or `{input_name: array}` (see the module doc); its
            shapes fix every non-batch dimension.
        out_path: where to write the ONNX (atomically); None keeps it in memory only.
        opset: ONNX opset (17 by default; per-channel Q/DQ needs >= 13).
        weights: torchvision weights name (e.g. "DEFAULT"; downloads).
        checkpoint: state dict to load into the model (`torch.load(weights_only=True)`).
        trust_pickle: allow unpickling a full-model file the user vouches for.
        dynamic_batch: make dim 0 of every input and output symbolic ("batch").
        rtol, atol: parity tolerance between PyTorch and ONNX Runtime (on the largest |output|).
        exporter: "auto", "dynamo" or "legacy" (see the module doc).

    Returns:
        The model and how it was made.

    Raises:
        UsageError: the model cannot be resolved or run on the sample, or an `.onnx` source does not fit it
            or has an opset below 13.
        TrtqError: PyTorch and ONNX Runtime disagree.
    """
    from trtq.files import save_onnx

    source = (
        model
        if isinstance(model, ModelSource)
        else resolve_model(model, weights=weights, checkpoint=checkpoint, trust_pickle=trust_pickle)
    )
    if exporter not in EXPORTERS:
        raise UsageError(f"--exporter {exporter!r}: choose from {', '.join(EXPORTERS)}")
    feed = as_feed(sample)
    notes: list[str] = []
    used = reason = None
    if source.is_onnx:
        onnx_model = source.onnx_model
        if isinstance(sample, Mapping):
            check_feed(onnx_model, feed, "the export sample")
        else:
            check_input_shape(onnx_model, feed[DEFAULT_INPUT_NAME].shape)
        if onnx_opset(onnx_model) < 13:
            raise UsageError(
                f"{source.spec} uses opset {onnx_opset(onnx_model)}; per-channel Q/DQ needs opset >= 13. "
                "Re-export with opset 17"
            )
        err = None
        notes.append("ONNX passed through (not re-exported)")
    else:
        onnx_model, err, used, reason = _export_torch(
            source, feed, opset, dynamic_batch, rtol, atol, exporter
        )
    result = ExportResult(
        model=onnx_model,
        source=source.spec,
        kind=source.kind,
        opset=onnx_opset(onnx_model),
        max_abs_error=err,
        nodes=len(onnx_model.graph.node),
        notes=notes,
        inputs=onnx_inputs(onnx_model),
        outputs=[o.name for o in onnx_model.graph.output],
        exporter=used,
        exporter_reason=reason,
    )
    if out_path is not None:
        save_onnx(onnx_model, out_path)
    return result


def _describe(feed: Mapping[str, np.ndarray]) -> str:
    if list(feed) == [DEFAULT_INPUT_NAME]:
        return f"data of shape {tuple(feed[DEFAULT_INPUT_NAME].shape)}"
    return "inputs " + ", ".join(f"{n} {a.dtype.name}{tuple(a.shape)}" for n, a in feed.items())


def _conv_input(module: object) -> tuple[int | None, ...]:
    """(None, C, None, None) from the module's first Conv2d, () when it has none."""
    import torch

    for m in module.modules():  # type: ignore[attr-defined]
        if isinstance(m, torch.nn.Conv2d):
            return (None, int(m.in_channels), None, None)
    return ()


def _export_torch(
    source: ModelSource,
    feed: Mapping[str, np.ndarray],
    opset: int,
    dynamic_batch: bool,
    rtol: float,
    atol: float,
    exporter: str = "auto",
) -> tuple[onnx.ModelProto, float, str, str]:
    import torch

    module = source.module.eval()
    names = list(feed)
    if source.kind == "huggingface":
        module.bind(names)
    args = tuple(torch.from_numpy(a) for a in feed.values())
    try:
        with torch.no_grad():
            ref = module(*args)
    except Exception as e:
        from trtq.export.onnx_model import channels_last_hint

        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "".join(channels_last_hint(a.shape, _conv_input(module)) for a in feed.values())
        raise UsageError(f"model {source.spec} cannot run on {_describe(feed)}{hint}: {first}") from None
    ref_list = flatten_outputs(ref)
    out_names = output_names(len(ref_list))
    if source.kind == "huggingface" and isinstance(ref, Mapping):
        out_names = list(ref)  # the model's output fields: last_hidden_state, pooler_output, logits, ...
    clash = [n for n in names if n in out_names]
    if clash:
        raise UsageError(f"export sample input {clash[0]!r} has an output's name; rename the input")
    sequence = sequence_inputs(feed)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {
            **{n: {0: "batch", **({1: "sequence"} if n in sequence else {})} for n in names},
            **{n: {0: "batch"} for n in out_names},
        }
    onnx_model, used, reason = run_exporter(
        module, args, names, out_names, opset, dynamic_axes, exporter, source.spec
    )
    kept = {i.name for i in onnx_model.graph.input}
    dropped = [n for n in names if n not in kept]
    if dropped:
        raise UsageError(
            f"model {source.spec} does not use export sample input {dropped[0]!r} (the ONNX graph has no such "
            "input); leave it out of the sample"
        )
    set_model_limits(onnx_model, source.limits)
    got = ort_run(onnx_model, feed)
    reference = [r.detach().cpu().numpy() for r in ref_list]
    worst = check_parity(source.spec, reference, got, rtol, atol)
    if dynamic_batch and sequence:
        worst = max(worst, check_other_length(source, module, onnx_model, feed, sequence, rtol, atol))
    return onnx_model, worst, used, reason


def export_sample(
    model: str | os.PathLike | Any,
    out_path: str | os.PathLike,
    *,
    shape: str | tuple[int, ...] | None = None,
    sample_data: Any = None,
    preprocess: Any = None,
    opset: int = DEFAULT_OPSET,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    seed: int = 0,
    force: bool = False,
    exporter: str = "auto",
) -> ExportResult:
    """`trtq export`: pick an export sample (real data, or random of a given shape) and export.

    Args:
        model: as for `export_onnx`.
        out_path: the ONNX file to write.
        shape: C,H,W of one sample ("3,224,224"); default from `sample_data`, else the model's channels x
            224 x 224.
        sample_data: data source to take two real samples from (see `trtq.data.load_data`).
        preprocess: preprocessing for `sample_data` folders.
        opset, weights, checkpoint, trust_pickle: as for `export_onnx`.
        seed: seed for random-init models and the random sample.
        force: overwrite an existing `out_path`.
        exporter: "auto", "dynamo" or "legacy" (see the module doc).

    Returns:
        The export result.

    Raises:
        UsageError: `out_path` exists without `force`, `shape` is not C,H,W, or as for `export_onnx`.
    """
    from trtq.data import load_data
    from trtq.files import check_writable

    check_writable(out_path, force)
    source = resolve_model(
        model, weights=weights, checkpoint=checkpoint, trust_pickle=trust_pickle, seed=seed
    )
    if sample_data is not None:
        sample, _ = next(load_data(sample_data, preprocess, what="--sample-data").iter_batches(2))
    else:
        if isinstance(shape, str):
            try:
                shape = tuple(int(v) for v in shape.split(","))
            except ValueError:
                raise UsageError(f"--shape expects C,H,W (e.g. 3,224,224), not {shape!r}") from None
        if shape is None:
            if source.is_onnx:
                _, dims = onnx_input_shape(source.onnx_model)
                shape = tuple(d if d else 224 for d in dims[1:])
            else:
                shape = (input_channels(source) or 3, 224, 224)
        sample = np.random.default_rng(seed).standard_normal((2, *shape)).astype(np.float32)
    return export_onnx(source, sample, out_path, opset=opset, exporter=exporter)
