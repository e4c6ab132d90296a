"""Export: a PyTorch model (or an ONNX file) to the FP32 ONNX every later stage reads.

Sources, resolved by `resolve_model`:
- a torchvision model name (`resnet50`); `weights="DEFAULT"` downloads torchvision's weights (network);
- a `package.module:factory` entry point returning an `nn.Module`;
- a saved model file: TorchScript (`torch.jit.save`), an ExportedProgram (`.pt2`), or, only with
  `trust_pickle=True`, a pickled full `nn.Module` (trtq never unpickles a file unless told to);
- an `.onnx` file, passed through (checked, not re-exported).

`checkpoint=` loads a state dict into the model with `torch.load(weights_only=True)`.
The export uses the legacy TorchScript exporter (the one that handles quantized modules later), opset 17 by
default, a dynamic batch axis, and eval mode, which folds BatchNorm into the preceding convolution. Afterwards
PyTorch and ONNX Runtime run the same sample and the export fails with the max error if they disagree.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq.errors import TrtqError, UsageError

__all__ = [
    "ModelSource",
    "resolve_model",
    "export_onnx",
    "ExportResult",
    "input_channels",
    "check_input_shape",
    "onnx_input_shape",
    "strip_identities",
    "DEFAULT_OPSET",
]

DEFAULT_OPSET = 17
_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class ModelSource:
    """A model resolved from what the user typed: either a torch module or an ONNX model."""

    spec: str
    kind: str  # "torchvision" | "entrypoint" | "torchscript" | "exported_program" | "pickle" | "onnx"
    module: Any | None = None  # torch.nn.Module when kind != "onnx"
    onnx_model: onnx.ModelProto | None = None

    @property
    def is_onnx(self) -> bool:
        return self.onnx_model is not None


@dataclass
class ExportResult:
    model: onnx.ModelProto
    source: str
    kind: str
    opset: int
    max_abs_error: float | None = None
    nodes: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "opset": self.opset,
            "nodes": self.nodes,
            "parity_max_abs_error": self.max_abs_error,
            "notes": self.notes,
        }


def _load_onnx_file(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise UsageError(f"{path} is not a readable ONNX file ({type(e).__name__}); re-export it") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path} fails the ONNX checker: {first}") from None
    return model


def _load_saved_torch(path: Path, trust_pickle: bool) -> tuple[Any, str]:
    import torch

    if path.suffix == ".pt2":
        try:
            return torch.export.load(str(path)).module(), "exported_program"
        except Exception as e:
            raise UsageError(f"{path} is not a loadable torch.export program ({type(e).__name__})") from None
    if not zipfile.is_zipfile(path) and not _looks_like_pickle(path):
        raise UsageError(f"{path} is not a PyTorch model file (not TorchScript, not a torch.save archive)")
    try:
        return torch.jit.load(str(path), map_location="cpu"), "torchscript"
    except Exception:
        pass
    # Not TorchScript: a torch.save archive. Try it as tensors only (safe) to give a precise message.
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        obj = None
        if trust_pickle:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)  # user vouched for the file
            if isinstance(obj, torch.nn.Module):
                return obj, "pickle"
        raise UsageError(
            f"{path} is a pickled Python object; trtq does not unpickle files it cannot trust. Save the model "
            "with torch.jit.script/trace or torch.export, or pass --trust-pickle if you made this file"
        ) from None
    if isinstance(obj, dict):
        raise UsageError(
            f"{path} holds a state dict, not a model; pass the architecture as --model (torchvision name or "
            f"package.module:factory) and this file as --checkpoint {path}"
        )
    raise UsageError(f"{path} does not contain a model ({type(obj).__name__})")


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80


def _load_checkpoint(module: Any, checkpoint: str | os.PathLike) -> None:
    import torch

    ck = Path(checkpoint)
    if not ck.is_file():
        raise UsageError(f"checkpoint {ck} does not exist")
    try:
        state = torch.load(str(ck), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(
            f"checkpoint {ck} cannot be read safely as tensors ({type(e).__name__}); save a state dict"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"checkpoint {ck} is not a state dict")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UsageError(f"checkpoint {ck} does not fit the model: {first}") from None


def resolve_model(
    spec: str | os.PathLike | Any,
    *,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    seed: int = 0,
) -> ModelSource:
    """Turn what the user gave (name, entry point, file, or an nn.Module) into a ModelSource.

    `seed` seeds torch before a model is constructed, so randomly initialised models are reproducible.
    """
    import torch

    torch.manual_seed(seed)

    if isinstance(spec, torch.nn.Module):
        module = spec
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        return ModelSource(spec=type(spec).__name__, kind="module", module=module)
    if isinstance(spec, onnx.ModelProto):
        return ModelSource(spec="<onnx.ModelProto>", kind="onnx", onnx_model=spec)

    text = str(spec)
    path = Path(text)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        return ModelSource(spec=text, kind="onnx", onnx_model=_load_onnx_file(path))
    if path.suffix.lower() in {".pt", ".pth", ".ts", ".pt2", ".jit", ".torchscript"} or path.is_file():
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        if path.stat().st_size == 0:
            raise UsageError(f"model file {path} is empty")
        module, kind = _load_saved_torch(path, trust_pickle)
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        return ModelSource(spec=text, kind=kind, module=module)
    if _ENTRY.match(text):
        mod_name, fn_name = text.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise UsageError(f"cannot import {mod_name!r} for --model {text}: {e}") from None
        factory = getattr(mod, fn_name, None)
        if factory is None or not callable(factory):
            raise UsageError(f"{mod_name} has no callable {fn_name!r} (--model {text})")
        module = factory()
        if not isinstance(module, torch.nn.Module):
            raise UsageError(f"--model {text} returned {type(module).__name__}, not a torch.nn.Module")
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        return ModelSource(spec=text, kind="entrypoint", module=module)

    import torchvision

    names = set(torchvision.models.list_models())
    if text in names:
        try:
            module = torchvision.models.get_model(text, weights=weights)
        except Exception as e:
            if weights:
                raise TrtqError(
                    f"could not get weights {weights!r} for {text}: {type(e).__name__}: {e}"
                ) from None
            raise
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        return ModelSource(spec=text, kind="torchvision", module=module)
    close = [n for n in sorted(names) if text.lower() in n][:5]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UsageError(
        f"--model {text!r} is not a file, a package.module:factory entry point, or a torchvision model name{hint}"
    )


def input_channels(source: ModelSource) -> int | None:
    """Channels the model expects in dim 1, from the ONNX input or the first Conv2d; None if unknown."""
    if source.is_onnx:
        dims = source.onnx_model.graph.input[0].type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].HasField("dim_value"):
            return int(dims[1].dim_value)
        return None
    import torch

    for m in source.module.modules():
        if isinstance(m, torch.nn.Conv2d):
            return int(m.in_channels)
    return None


def onnx_input_shape(model: onnx.ModelProto) -> tuple[str, list[int | None]]:
    """(name, dims with None for symbolic) of the first real graph input."""
    inits = {i.name for i in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    return inp.name, dims


def check_input_shape(model: onnx.ModelProto, sample_shape: tuple[int, ...], what: str = "data") -> None:
    """Raise a UsageError when the data's per-sample shape cannot feed the model's input."""
    name, dims = onnx_input_shape(model)
    if len(dims) != len(sample_shape):
        raise UsageError(
            f"{what} has shape {tuple(sample_shape)} but model input {name!r} has rank {len(dims)} {tuple(dims)}"
        )
    for axis, (want, got) in enumerate(zip(dims, sample_shape)):
        if axis == 0 or want is None or want <= 0:
            continue
        if want != got:
            hint = (
                " (set --size to match)" if axis >= 2 else " (set --channels to match)" if axis == 1 else ""
            )
            raise UsageError(
                f"{what} gives samples of shape {tuple(sample_shape[1:])} but model input {name!r} expects "
                f"{tuple(d if d else '?' for d in dims[1:])}{hint}"
            )


def _ort_run(model: onnx.ModelProto, sample: np.ndarray) -> list[np.ndarray]:
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    name, _ = onnx_input_shape(model)
    with OnnxRuntimeRunner(model) as runner:
        out = runner.infer({name: sample})
        return [out[n] for n in runner.output_names()]


def export_onnx(
    model: str | os.PathLike | Any,
    sample: np.ndarray,
    out_path: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    dynamic_batch: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> ExportResult:
    """Export `model` to FP32 ONNX and check it against PyTorch on `sample` (N, C, H, W float32).

    Args:
        model: torchvision name, `package.module:factory`, saved model file, `.onnx` file, or nn.Module.
        sample: a real input batch; its shape fixes every non-batch dimension.
        out_path: where to write the ONNX (atomically); None keeps it in memory only.
        opset: ONNX opset (17 by default; per-channel Q/DQ needs >= 13).
        weights: torchvision weights name (e.g. "DEFAULT"; downloads).
        checkpoint: state dict to load into the model (`torch.load(weights_only=True)`).
        trust_pickle: allow unpickling a full-model file the user vouches for.
        dynamic_batch: make dim 0 of inputs and outputs symbolic ("batch").
        rtol, atol: parity tolerance between PyTorch and ONNX Runtime (on the largest |output|).
    """
    from trtq._io import save_onnx

    source = (
        model
        if isinstance(model, ModelSource)
        else resolve_model(model, weights=weights, checkpoint=checkpoint, trust_pickle=trust_pickle)
    )
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    notes: list[str] = []
    if source.is_onnx:
        onnx_model = source.onnx_model
        check_input_shape(onnx_model, sample.shape)
        opset_used = max(
            (o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")), default=0
        )
        if opset_used < 13:
            raise UsageError(
                f"{source.spec} uses opset {opset_used}; per-channel Q/DQ needs opset >= 13. Re-export with opset 17"
            )
        err = None
        notes.append("ONNX passed through (not re-exported)")
    else:
        onnx_model, err = _export_torch(source, sample, opset, dynamic_batch, rtol, atol)
    result = ExportResult(
        model=onnx_model,
        source=source.spec,
        kind=source.kind,
        opset=max((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")), default=0),
        max_abs_error=err,
        nodes=len(onnx_model.graph.node),
        notes=notes,
    )
    if out_path is not None:
        save_onnx(onnx_model, out_path)
    return result


def _export_torch(
    source: ModelSource, sample: np.ndarray, opset: int, dynamic_batch: bool, rtol: float, atol: float
) -> tuple[onnx.ModelProto, float]:
    import torch

    module = source.module.eval()
    x = torch.from_numpy(sample)
    try:
        with torch.no_grad():
            ref = module(x)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(
            f"model {source.spec} cannot run on data of shape {tuple(sample.shape)}: {first}"
        ) from None
    ref_list = _flatten_outputs(ref)
    out_names = ["output"] if len(ref_list) == 1 else [f"output_{i}" for i in range(len(ref_list))]
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {"input": {0: "batch"}, **{n: {0: "batch"} for n in out_names}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            buf,
            input_names=["input"],
            output_names=out_names,
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
            dynamo=False,
        )
    onnx_model = strip_identities(onnx.load_from_string(buf.getvalue()))
    onnx.checker.check_model(onnx_model)
    got = _ort_run(onnx_model, sample)
    worst = 0.0
    for r, g in zip(ref_list, got):
        r = r.detach().cpu().numpy().astype(np.float32)
        if r.shape != g.shape:
            raise TrtqError(
                f"export of {source.spec}: output shape {g.shape} in ONNX vs {r.shape} in PyTorch"
            )
        finite = np.isfinite(r)
        if not np.array_equal(finite, np.isfinite(g)):
            raise TrtqError(
                f"export of {source.spec}: ONNX Runtime and PyTorch disagree on which outputs are NaN/Inf"
            )
        # NaN/Inf that both produce are left for calibration to report by tensor name
        diff = float(np.max(np.abs(r[finite] - g[finite]))) if finite.any() else 0.0
        worst = max(worst, diff)
        bound = atol + rtol * float(np.max(np.abs(r[finite]))) if finite.any() else atol
        if diff > bound:
            raise TrtqError(
                f"export of {source.spec}: ONNX Runtime and PyTorch disagree, max abs error {diff:.3g} > "
                f"{bound:.3g}; the model may use ops the exporter mis-translates"
            )
    return onnx_model, worst


def strip_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the Identity nodes the legacy exporter puts in front of shared weights and biases.

    Consumers read the Identity's input directly; Identities that produce a graph output are kept.
    """
    graph_outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.output[0] not in graph_outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        keep.append(node)
    if not rename:
        return model
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {n for node in keep for n in node.input}
    vis = [vi for vi in model.graph.value_info if vi.name not in rename]
    del model.graph.value_info[:]
    model.graph.value_info.extend(vis)
    inits = [t for t in model.graph.initializer if t.name in used or t.name in graph_outputs]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model


def _flatten_outputs(out: Any) -> list[Any]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for k in out for t in _flatten_outputs(out[k])]
    raise UsageError(f"model output of type {type(out).__name__} is not a tensor, tuple or dict of tensors")


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
) -> ExportResult:
    """`trtq export`: pick an export sample (real data, or random of a given shape) and export.

    Args:
        shape: C,H,W of one sample ("3,224,224"); default from `sample_data`, else the model's channels x 224 x 224.
        sample_data: data source to take two real samples from (see `trtq.data.load_data`).
        preprocess: preprocessing for `sample_data` folders.
        force: overwrite an existing `out_path`.
    """
    from trtq._io import check_writable
    from trtq.data import load_data

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
    return export_onnx(source, sample, out_path, opset=opset)
