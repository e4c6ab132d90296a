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
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import TrtqError, UsageError
from trtq.export.onnx_model import (
    OnnxInput,
    check_feed,
    check_input_shape,
    onnx_input_shape,
    onnx_inputs,
    onnx_opset,
    set_model_limits,
    strip_identities,
)
from trtq.export.samples import DEFAULT_INPUT_NAME, Sample, as_feed, flatten_outputs, output_names
from trtq.export.sources import ModelSource, input_channels, resolve_model

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "ExportResult",
    "check_parity",
    "export_onnx",
    "export_sample",
    "sequence_inputs",
]

DEFAULT_OPSET = 17
#: The exporters `exporter=` accepts.
EXPORTERS = ("auto", "dynamo", "legacy")
#: The lowest opset the dynamo exporter writes.
DYNAMO_MIN_OPSET = 18


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


def check_parity(
    spec: str, reference: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float, atol: float
) -> float:
    """Compare every PyTorch output with ONNX Runtime's; raise when any differs beyond the tolerance.

    Each output passes when max |ref - got| <= atol + rtol * max |ref| over its finite values; NaN/Inf both
    produce are left for calibration to report by tensor name.

    Args:
        spec: the model, for the message.
        reference: PyTorch's outputs, in order.
        got: ONNX Runtime's outputs, in the same order.
        rtol, atol: the tolerance.

    Returns:
        The largest absolute difference over all outputs.

    Raises:
        TrtqError: the output counts or shapes differ, the two disagree on which values are NaN/Inf, or an
            output differs beyond the tolerance.
    """
    if len(reference) != len(got):
        raise TrtqError(f"export of {spec}: {len(got)} outputs in ONNX vs {len(reference)} in PyTorch")
    worst = 0.0
    for r, g in zip(reference, got):
        r = np.asarray(r).astype(np.float32)
        if r.shape != g.shape:
            raise TrtqError(f"export of {spec}: output shape {g.shape} in ONNX vs {r.shape} in PyTorch")
        finite = np.isfinite(r)
        if not np.array_equal(finite, np.isfinite(g)):
            raise TrtqError(
                f"export of {spec}: ONNX Runtime and PyTorch disagree on which outputs are NaN/Inf"
            )
        diff = float(np.max(np.abs(r[finite] - g[finite]))) if finite.any() else 0.0
        worst = max(worst, diff)
        bound = atol + rtol * float(np.max(np.abs(r[finite]))) if finite.any() else atol
        if diff > bound:
            raise TrtqError(
                f"export of {spec}: ONNX Runtime and PyTorch disagree, max abs error {diff:.3g} > "
                f"{bound:.3g}; the model may use ops the exporter mis-translates"
            )
    return worst


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


def _ort_run(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model) as runner:
        out = runner.infer(dict(feed))
        return [out[n] for n in runner.output_names()]


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
    onnx_model, used, reason = _run_exporter(
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
    got = _ort_run(onnx_model, feed)
    reference = [r.detach().cpu().numpy() for r in ref_list]
    worst = check_parity(source.spec, reference, got, rtol, atol)
    if dynamic_batch and sequence:
        worst = max(worst, _check_other_length(source, module, onnx_model, feed, sequence, rtol, atol))
    return onnx_model, worst, used, reason


def sequence_inputs(feed: Mapping[str, np.ndarray]) -> list[str]:
    """The inputs whose axis 1 the export makes the dynamic "sequence": integer inputs of rank >= 2.

    Token ids, attention masks, token types and positions are `[batch, sequence]` integers; image and other
    floating-point inputs keep their static non-batch dims.
    """
    return [n for n, a in feed.items() if a.dtype.kind in "iub" and a.ndim >= 2]


def _check_other_length(
    source: ModelSource,
    module: Any,
    onnx_model: onnx.ModelProto,
    feed: Mapping[str, np.ndarray],
    sequence: Sequence[str],
    rtol: float,
    atol: float,
) -> float:
    """Parity again on the sample cut to a shorter sequence: proves the exported sequence axis is dynamic."""
    import torch

    length = int(feed[sequence[0]].shape[1])
    if length < 2:
        return 0.0
    short = {n: (a[:, : length // 2] if n in sequence else a) for n, a in feed.items()}
    with torch.no_grad():
        ref = flatten_outputs(module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in short.values())))
    try:
        got = _ort_run(onnx_model, short)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrtqError(
            f"export of {source.spec}: the ONNX graph does not run on a shorter sequence ({first}); the model "
            "fixes its sequence length while tracing"
        ) from None
    return check_parity(f"{source.spec} (sequence {length // 2})", [r.numpy() for r in ref], got, rtol, atol)


def legacy_exporter_available() -> bool:
    """Whether the installed torch still has the TorchScript-based exporter (`dynamo=False`)."""
    import inspect

    import torch

    try:
        return "dynamo" in inspect.signature(torch.onnx.export).parameters and hasattr(torch.jit, "trace")
    except (TypeError, ValueError):
        return False


def _run_exporter(
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
    if exporter == "legacy":
        return (
            _export_file(module, args, names, out_names, opset, dynamic_axes, "legacy"),
            "legacy",
            "asked for",
        )
    if exporter == "dynamo":
        return (
            _export_file(module, args, names, out_names, opset, dynamic_axes, "dynamo"),
            "dynamo",
            "asked for",
        )
    if not legacy_exporter_available():
        why = "auto: this torch has no TorchScript-based exporter"
        return _export_file(module, args, names, out_names, opset, dynamic_axes, "dynamo"), "dynamo", why
    try:
        model = _export_file(module, args, names, out_names, opset, dynamic_axes, "legacy")
        return (
            model,
            "legacy",
            "auto: the TorchScript-based exporter is present (node names follow module paths)",
        )
    except TrtqError as e:
        why = f"auto: the TorchScript-based exporter failed ({e}); the torch.export-based one worked"
        return _export_file(module, args, names, out_names, opset, dynamic_axes, "dynamo"), "dynamo", why


def _export_file(
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
