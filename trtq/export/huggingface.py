"""Hugging Face model folders: `--model path/to/folder` with a `config.json` and weights, loaded offline.

The folder is what `model.save_pretrained(folder)` writes (config.json plus model.safetensors or
pytorch_model.bin). It loads through `transformers` (the optional extra `trtq[hf]`) with
`local_files_only=True`, so nothing is ever downloaded. The class is the first of the config's `architectures`
(`BertModel`, `BertForSequenceClassification`, `ViTForImageClassification`, ...; `AutoModel` when the config
names none), so the exported outputs are the task's usual ones (`last_hidden_state` and `pooler_output`,
`logits`, ...), named as the model's output fields.

The model is wrapped (`HuggingFaceModule`) so that export feeds the data's arrays by name (`input_ids`,
`attention_mask`, `token_type_ids`, `pixel_values`, ...) whatever their order, and the limits the config
states (the position table's `max_position_embeddings`, the `vocab_size`) are recorded in the ONNX metadata
(`trtq.max_sequence`, `trtq.vocab_size`) and checked against the data before any work starts.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtq.errors import UsageError

__all__ = ["is_hf_folder", "load_hf_model", "HuggingFaceModule", "hf_limits"]

#: forward parameters that are not model inputs: the training labels (the data's `labels` are the targets).
_NOT_INPUTS = frozenset({"labels", "label", "kwargs"})
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def is_index_name(name: str) -> bool:
    """Whether a Hugging Face input name stands for integers: `input_ids`, `*_ids`, `*_mask`, ..."""
    return name.endswith(("_ids", "_mask")) or name in ("input_ids", "attention_mask", "position_ids")


def is_hf_folder(path: Path) -> bool:
    """Whether `path` is a folder holding a Hugging Face `config.json`."""
    return path.is_dir() and (path / "config.json").is_file()


def hf_limits(config: Any) -> dict[str, int]:
    """The limits a Hugging Face config states that data must respect: `max_sequence`, `vocab_size`."""
    out: dict[str, int] = {}
    for key, name in (("max_position_embeddings", "max_sequence"), ("vocab_size", "vocab_size")):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            out[name] = value
    return out


def load_hf_model(path: Path) -> HuggingFaceModule:
    """Load the model in a Hugging Face folder, offline, wrapped for export.

    Raises:
        UsageError: `transformers` is not installed, the folder has no weights, or it does not load.
    """
    try:
        import transformers
    except ImportError:
        raise UsageError(
            f"--model {path} is a Hugging Face folder; install the extra: pip install 'trtq[hf]'"
        ) from None
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        raise UsageError(
            f"Hugging Face folder {path} has config.json but no weights ({', '.join(_WEIGHT_FILES)}); "
            "save the model with save_pretrained"
        )
    try:
        names = json.loads((path / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError) as e:
        raise UsageError(f"{path / 'config.json'} is not readable JSON ({type(e).__name__})") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        cls = transformers.AutoModel
    try:
        model = cls.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"Hugging Face folder {path} does not load: {first}") from None
    return HuggingFaceModule(model.eval())


def _module_base() -> type:
    import torch

    return torch.nn.Module


class HuggingFaceModule(_module_base()):  # type: ignore[misc]
    """A Hugging Face model whose forward takes its inputs positionally in the order `bind` fixed.

    Attributes:
        model: the `transformers` model.
        names: the input names, in the order `forward` receives them.
        limits: `hf_limits(model.config)`.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.names: list[str] = []
        self.limits = hf_limits(model.config)

    @property
    def input_names(self) -> list[str]:
        """The tensor inputs the model's forward takes, in its signature's order: not the training `labels`
        (the data's `labels` are trtq's targets) nor switches such as `return_dict` and `output_attentions`."""
        params = inspect.signature(self.model.forward).parameters.values()
        return [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _NOT_INPUTS
            and not p.name.startswith(("output_", "return_", "use_"))
        ]  # fmt: skip

    def bind(self, names: Sequence[str], what: str = "the data") -> HuggingFaceModule:
        """Fix the input order of `forward`; a name the model does not take is a UsageError."""
        takes = self.input_names
        unknown = [n for n in names if n not in takes]
        if unknown:
            raise UsageError(
                f"the Hugging Face model ({type(self.model).__name__}) takes no input {unknown[0]!r}; "
                f"name the arrays after its inputs ({', '.join(takes[:6])}, ...)"
            )
        main = getattr(self.model, "main_input_name", None)
        if isinstance(main, str) and main in takes and main not in names:
            raise UsageError(
                f"{what} has no array for {main!r}, the main input of {type(self.model).__name__} "
                f"(it has: {', '.join(names)})"
            )
        self.names = list(names)
        return self

    def check_dtypes(self, arrays: Mapping[str, Any], what: str) -> None:
        """Refuse floating-point token ids, masks and positions (the model indexes tables with them)."""
        for name, array in arrays.items():
            if is_index_name(name) and array.dtype.kind == "f":
                raise UsageError(
                    f"{what}: input {name!r} holds {array.dtype} values but {type(self.model).__name__} takes "
                    "integers (token ids, masks and positions index tables): save them as int64"
                )

    def forward(self, *args: Any) -> dict[str, Any]:
        out = self.model(**dict(zip(self.names, args)))
        items = out.items() if isinstance(out, Mapping) else enumerate(out)
        return {str(k): v for k, v in items if v is not None and hasattr(v, "shape")}
