"""Model sources: what the user typed (a name, an entry point, a file, a module) resolved to a model.

Sources, resolved by `resolve_model`:
- a torchvision model name (`resnet50`); `weights="DEFAULT"` downloads torchvision's weights (network);
- `timm:NAME`, a timm model (optional extra), whose data config becomes the default preprocessing
  (`ModelSource.preprocess`; see `trtq.export.timm_source`);
- a `package.module:factory` entry point returning an `nn.Module`;
- a saved model file: TorchScript (`torch.jit.save`), an ExportedProgram (`.pt2`), or, only with
  `trust_pickle=True`, a pickled full `nn.Module` (trtq never unpickles a file unless told to);
- an `.onnx` file, passed through (checked, not re-exported);
- a Hugging Face folder (`config.json` and weights), loaded offline through `transformers`
  (`trtq.export.huggingface`);
- an `nn.Module` or `onnx.ModelProto` object (the Python API).

`checkpoint=` loads a state dict into the model with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import importlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx

from trtq.errors import TrtqError, UsageError
from trtq.export.onnx_model import load_onnx, model_limits

__all__ = ["ModelSource", "SourceKind", "SAVED_MODEL_SUFFIXES", "resolve_model", "input_channels"]

#: How a source was resolved.
SourceKind = Literal[
    "torchvision",
    "timm",
    "entrypoint",
    "torchscript",
    "exported_program",
    "pickle",
    "module",
    "onnx",
    "huggingface",
]

#: File suffixes read as saved PyTorch models (any other existing file is tried as one too).
SAVED_MODEL_SUFFIXES = frozenset({".pt", ".pth", ".ts", ".pt2", ".jit", ".torchscript"})

_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class ModelSource:
    """A model resolved from what the user gave: either a torch module or an ONNX model.

    Attributes:
        spec: what the user gave, as text (a name, entry point or path; the class name for a module).
        kind: how it was resolved.
        module: the `torch.nn.Module` when `kind != "onnx"`.
        onnx_model: the ONNX model when `kind == "onnx"`.
        preprocess: the preprocessing the source itself recommends (timm's data config), used when the run sets
            none; None: trtq's default.
        preprocess_note: where `preprocess` came from, for the report.
        limits: what the data must respect, from the model's own description (`max_sequence`: the position
            table's length, `vocab_size`); recorded in the exported ONNX's metadata.
    """

    spec: str
    kind: SourceKind
    module: Any | None = None
    onnx_model: onnx.ModelProto | None = None
    preprocess: Any = None
    preprocess_note: str | None = None
    limits: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def is_onnx(self) -> bool:
        """True when the source is an ONNX model (passed through, not exported)."""
        return self.onnx_model is not None


def resolve_model(
    spec: str | os.PathLike | Any,
    *,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    seed: int = 0,
) -> ModelSource:
    """Turn what the user gave (name, entry point, file, an nn.Module or ModelProto) into a ModelSource.

    Args:
        spec: torchvision name, `package.module:factory`, saved model file, `.onnx` file, `nn.Module`
            or `onnx.ModelProto`.
        weights: torchvision weights name (e.g. "DEFAULT"; downloads).
        checkpoint: state dict to load into the model (`torch.load(weights_only=True)`).
        trust_pickle: allow unpickling a full-model file the user vouches for.
        seed: seeds torch before a model is constructed, so randomly initialised models are reproducible.

    Returns:
        The resolved source.

    Raises:
        UsageError: the spec names nothing loadable, a file is missing or unsafe, or the checkpoint does
            not fit.
        TrtqError: torchvision weights could not be fetched.
    """
    import torch

    torch.manual_seed(seed)

    if isinstance(spec, torch.nn.Module):
        if checkpoint:
            _load_checkpoint(spec, checkpoint)
        return ModelSource(spec=type(spec).__name__, kind="module", module=spec)
    if isinstance(spec, onnx.ModelProto):
        return ModelSource(spec="<onnx.ModelProto>", kind="onnx", onnx_model=spec, limits=model_limits(spec))

    text = str(spec)
    path = Path(text)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        model = load_onnx(path)
        return ModelSource(spec=text, kind="onnx", onnx_model=model, limits=model_limits(model))
    if path.is_dir() and (path / "config.json").is_file():
        from trtq.export.huggingface import load_hf_model

        if checkpoint:
            raise UsageError(
                f"--checkpoint does not apply to the Hugging Face folder {path}: its weights load"
            )
        hf = load_hf_model(path)
        return ModelSource(spec=text, kind="huggingface", module=hf, limits=dict(hf.limits))
    if path.suffix.lower() in SAVED_MODEL_SUFFIXES or path.is_file():
        if not path.is_file():
            raise UsageError(f"model file {path} does not exist")
        if path.stat().st_size == 0:
            raise UsageError(f"model file {path} is empty")
        module, kind = _load_saved_torch(path, trust_pickle)
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        return ModelSource(spec=text, kind=kind, module=module)
    if text.startswith("timm:"):
        from trtq.export.timm_source import load_timm, timm_preprocess

        module = load_timm(text, weights)
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        pre, note = timm_preprocess(module)
        return ModelSource(spec=text, kind="timm", module=module, preprocess=pre, preprocess_note=note)
    if _ENTRY.match(text):
        module = _from_entry_point(text)
        if checkpoint:
            _load_checkpoint(module, checkpoint)
        return ModelSource(spec=text, kind="entrypoint", module=module)
    module = _from_torchvision(text, weights)
    notes: tuple[str, ...] = ()
    if checkpoint:
        _load_checkpoint(module, checkpoint)
    elif not weights:
        notes = (
            f"--model {text} was built with random weights (no --weights or --checkpoint): its accuracy means "
            f"nothing; pass --weights DEFAULT (downloads torchvision's) or --checkpoint YOUR_STATE_DICT",
        )
    return ModelSource(spec=text, kind="torchvision", module=module, warnings=notes)


def input_channels(source: ModelSource) -> int | None:
    """Channels the model expects in dim 1, from the ONNX input or the first Conv2d.

    Args:
        source: a resolved model.

    Returns:
        The channel count, or None when the ONNX dim is symbolic or the module has no Conv2d.
    """
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


def _from_entry_point(text: str) -> Any:
    import torch

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
    return module


def _from_torchvision(text: str, weights: str | None) -> Any:
    import torchvision

    names = set(torchvision.models.list_models())
    if text not in names:
        close = [n for n in sorted(names) if text.lower() in n][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(
            f"--model {text!r} is not a file, a package.module:factory entry point, or a torchvision model "
            f"name{hint}"
        )
    if weights:
        enum = torchvision.models.get_model_weights(text)
        names = ["DEFAULT", *[w.name for w in enum]]
        if weights not in names and not any(weights == f"{enum.__name__}.{n}" for n in names):
            raise UsageError(
                f"--weights {weights!r} is not a weight of {text}; choose from {', '.join(names)}"
            )
    try:
        return torchvision.models.get_model(text, weights=weights)
    except Exception as e:
        if weights and _is_network_error(e):
            raise TrtqError(
                f"the {text} weights {weights!r} could not be downloaded ({_reason(e)}); on a machine without "
                f"network, pass the weights as a state dict: --model {text} --checkpoint FILE.pth "
                "(torch.save(model.state_dict(), FILE.pth) where they can be downloaded)"
            ) from None
        if weights:
            raise TrtqError(f"could not get weights {weights!r} for {text}: {_reason(e)}") from None
        raise


def _is_network_error(e: BaseException) -> bool:
    import socket
    import urllib.error

    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "reason", "") or e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _load_saved_torch(path: Path, trust_pickle: bool) -> tuple[Any, SourceKind]:
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
