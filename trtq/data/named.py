"""Data with one array per model input: `.npz` files, folders of `.npz` shards, iterables of dicts.

An `.npz` holds one array per model input, each named like the input it feeds (`input_ids`, `attention_mask`,
`pixel_values`, ...), and optionally the labels under the reserved name `labels` (`y` and `label` are accepted too
when no input has that name). Integer arrays (token ids, masks, positions) stay integers and are never normalised.
Every input is checked against the model before any work starts (`check_fits`): missing or extra names, integer vs
floating point, rank, static dims, and dims that the model names alike (a mask as long as its ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trtq.data.source import DataSource
from trtq.data.targets import ClassLabels
from trtq.errors import UsageError

__all__ = [
    "LABEL_KEYS",
    "SINGLE_INPUT_KEYS",
    "named_from_arrays",
    "named_from_shards",
    "named_from_dicts",
    "is_named_layout",
    "check_fits",
    "check_limits",
    "check_sequences",
    "conform",
]

#: Array names read as labels, the documented one first.
LABEL_KEYS = ("labels", "y", "label")
#: Array names an .npz of one unnamed input uses for its samples.
SINGLE_INPUT_KEYS = ("x", "images", "data", "input")


def is_named_layout(keys: Sequence[str], input_names: Sequence[str] | None) -> bool:
    """Whether an .npz with these array names holds named inputs (else: one unnamed input and its labels).

    Arrays named like every input of the model are named inputs; otherwise one array (plus labels under a label
    name) is the single unnamed input of today's image data, and several arrays are named inputs.
    """
    keys = list(keys)
    if input_names and all(n in keys for n in input_names):
        return True
    if input_names and len(input_names) > 1 and any(n in keys for n in input_names):
        return True  # a multi-input model's arrays, some missing: said so by name when checked
    return len([k for k in keys if k not in LABEL_KEYS]) > 1


def _split(
    arrays: Mapping[str, np.ndarray], input_names: Sequence[str] | None, where: str
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    names = list(arrays)
    if input_names:
        label_key = next((k for k in LABEL_KEYS if k in arrays and k not in input_names), None)
        extra = [k for k in names if k not in input_names and k != label_key]
        if extra:
            raise UsageError(
                f"{where} has array {extra[0]!r}, which no model input takes (inputs: {', '.join(input_names)}; "
                f"labels go under {LABEL_KEYS[0]!r})"
            )
        inputs = {n: arrays[n] for n in input_names if n in arrays}
    else:
        label_key = next((k for k in LABEL_KEYS if k in arrays), None)
        inputs = {k: v for k, v in arrays.items() if k != label_key}
    labels = None if label_key is None else np.asarray(arrays[label_key])
    return inputs, labels


def _source(inputs: dict[str, np.ndarray], labels: np.ndarray | None, where: str) -> DataSource:
    if not inputs:
        raise UsageError(f"{where} holds no input arrays")
    counts = {k: int(v.shape[0]) if v.ndim else 0 for k, v in inputs.items()}
    if len(set(counts.values())) != 1:
        raise UsageError(f"{where}: the inputs hold different numbers of samples ({counts})")
    n = next(iter(counts.values()))
    if n == 0:
        raise UsageError(f"{where} holds no samples")
    for k, v in inputs.items():
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_):
            raise UsageError(f"{where}: input {k!r} holds {v.dtype} values; expected numbers")
    targets = None
    if labels is not None:
        if not np.issubdtype(labels.dtype, np.integer):
            raise UsageError(f"{where}: labels are {labels.dtype}; class labels must be integers")
        if len(labels) != n:
            raise UsageError(f"{where}: {len(labels)} labels for {n} samples")
        targets = ClassLabels(labels.astype(np.int64))
    return DataSource(name=where, inputs=inputs, targets=targets)


def named_from_arrays(
    arrays: Mapping[str, np.ndarray], input_names: Sequence[str] | None, where: str
) -> DataSource:
    """A named source from an .npz's arrays (labels under a reserved name)."""
    inputs, labels = _split(arrays, input_names, where)
    return _source(inputs, labels, where)


def named_from_shards(folder: Path, input_names: Sequence[str] | None) -> DataSource:
    """A named source from a folder of .npz shards with the same arrays, joined in file-name order."""
    from trtq.data.load import read_npz

    shards = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".npz")
    parts = [read_npz(p) for p in shards]
    keys = list(parts[0])
    for p, part in zip(shards, parts):
        if list(part) != keys:
            raise UsageError(
                f"shard {p} has arrays {list(part)}, but {shards[0].name} has {keys}; give every shard the same"
            )
    joined = {k: np.concatenate([part[k] for part in parts]) for k in keys}
    return named_from_arrays(joined, input_names, str(folder))


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def named_from_dicts(items: Iterable[Any], input_names: Sequence[str] | None, where: str) -> DataSource:
    """A named source from an iterable of dicts (`{name: batch}`, labels under `labels`), or of tuples in the
    model's input order (with the labels last when the tuple is one longer than the inputs)."""
    columns: dict[str, list[np.ndarray]] = {}
    for item in items:
        if isinstance(item, Mapping):
            row = {str(k): _numpy(v) for k, v in item.items()}
        elif (
            isinstance(item, (tuple, list))
            and input_names
            and len(item) in (len(input_names), len(input_names) + 1)
        ):
            row = {n: _numpy(v) for n, v in zip(input_names, item)}
            if len(item) == len(input_names) + 1:
                row[LABEL_KEYS[0]] = _numpy(item[-1])
        else:
            raise UsageError(
                f"{where} yields {type(item).__name__}; give dicts (input name -> batch) or tuples in input order"
            )
        for k, v in row.items():
            columns.setdefault(k, []).append(np.atleast_1d(v))
    if not columns:
        raise UsageError(f"{where} yielded no samples")
    joined = {k: np.concatenate(v) for k, v in columns.items()}
    return named_from_arrays(joined, input_names, where)


def check_fits(ds: DataSource, model_inputs: Sequence[Any], what: str) -> None:
    """Refuse data that cannot feed the model, naming the input and what to do.

    Args:
        ds: the data.
        model_inputs: the model's real inputs (`trtq.export.OnnxInput`: name, dtype, dims).
        what: the option the data came from ("--calib-data").
    """
    if not ds.is_named:
        if len(model_inputs) != 1:
            names = ", ".join(i.name for i in model_inputs)
            raise UsageError(
                f"the model takes {len(model_inputs)} inputs ({names}) but {what} {ds.name} holds one unnamed input; "
                "give an .npz with one array per input, named like the inputs"
            )
        return
    shapes = ds.sample_shapes
    by_name = {i.name: i for i in model_inputs}
    for inp in model_inputs:
        if inp.name not in shapes:
            raise UsageError(
                f"{what} {ds.name} has no array for model input {inp.name!r} (it has: {list(shapes)})"
            )
    for name in shapes:
        if name not in by_name:
            raise UsageError(
                f"{what} {ds.name} has array {name!r}, which no model input takes ({list(by_name)})"
            )
    symbols: dict[str, tuple[str, int, int]] = {}
    for inp in model_inputs:
        array = ds.inputs[inp.name]  # type: ignore[index]
        data_int = np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
        model_int = np.issubdtype(inp.dtype, np.integer) or inp.dtype == np.bool_
        if model_int and not data_int:
            raise UsageError(
                f"{what}: input {inp.name!r} holds {array.dtype} values but the model takes {inp.dtype.name} "
                "(token ids, masks and positions are integers): save them as integers"
            )
        if data_int and not model_int:
            raise UsageError(
                f"{what}: input {inp.name!r} holds integers ({array.dtype}) but the model takes {inp.dtype.name}; "
                "save it as floating point"
            )
        dims = list(inp.dims)
        if len(dims) != array.ndim:
            raise UsageError(
                f"{what}: input {inp.name!r} has shape {tuple(array.shape)} (rank {array.ndim}) but the model's "
                f"input has rank {len(dims)} ({_shape(dims)})"
            )
        for axis, want in enumerate(dims):
            if axis == 0:
                continue
            got = int(array.shape[axis])
            if isinstance(want, int) and want > 0 and want != got:
                raise UsageError(
                    f"{what}: input {inp.name!r} has {got} in axis {axis} but the model takes {want} ({_shape(dims)})"
                )
        for axis, sym in _symbols(inp).items():
            seen = symbols.setdefault(sym, (inp.name, axis, int(array.shape[axis])))
            if seen[2] != int(array.shape[axis]):
                raise UsageError(
                    f"{what}: input {inp.name!r} has {array.shape[axis]} in axis {axis} but {seen[0]!r} has {seen[2]} "
                    f"in axis {seen[1]}; the model makes them the same ({sym!r}), e.g. a mask as long as its ids"
                )


def check_limits(ds: DataSource, limits: Mapping[str, int], what: str) -> None:
    """Refuse integer inputs the model's tables cannot hold: sequences longer than the position table
    (`limits["max_sequence"]`) and token ids at or beyond the vocabulary (`limits["vocab_size"]`, `input_ids`).

    Args:
        ds: the data.
        limits: the model's limits (`ModelSource.limits`, `trtq.export.model_limits`).
        what: the option the data came from.
    """
    if not ds.is_named or not limits:
        return
    longest = limits.get("max_sequence")
    for name, array in ds.inputs.items():  # type: ignore[union-attr]
        if array.dtype.kind not in "iub" or array.ndim < 2:
            continue
        if longest is not None and array.shape[1] > longest:
            raise UsageError(
                f"{what}: input {name!r} holds sequences of {array.shape[1]} but the model's position table "
                f"holds {longest} (max_position_embeddings); truncate the data to {longest} tokens"
            )
        vocab = limits.get("vocab_size")
        if vocab is not None and name == "input_ids" and array.size and int(array.max()) >= vocab:
            raise UsageError(
                f"{what}: input {name!r} holds token id {int(array.max())} but the vocabulary has {vocab} "
                "entries; tokenize with the model's own tokenizer"
            )


def check_sequences(ds: DataSource, names: Sequence[str], what: str) -> None:
    """Refuse inputs that will share the export's "sequence" axis but differ in shape (a mask not as long as
    its ids); `names` are the inputs the export makes `[batch, sequence]` (`trtq.export.sequence_inputs`)."""
    if not ds.is_named or len(names) < 2:
        return
    first = names[0]
    want = ds.inputs[first].shape  # type: ignore[index]
    for name in names[1:]:
        got = ds.inputs[name].shape  # type: ignore[index]
        if got[:2] != want[:2] or len(got) != len(want):
            raise UsageError(
                f"{what}: input {name!r} has shape {tuple(got)} but {first!r} has {tuple(want)}; token ids, masks "
                "and token types are [batch, sequence] alike (e.g. a mask as long as its ids)"
            )


def _symbols(inp: Any) -> dict[int, str]:
    return {
        a: d for a, d in enumerate(getattr(inp, "symbols", ()) or ()) if a > 0 and isinstance(d, str) and d
    }


def _shape(dims: Sequence[Any]) -> str:
    return "(" + ", ".join("?" if not isinstance(d, int) or d <= 0 else str(d) for d in dims) + ")"


def conform(ds: DataSource, model_inputs: Sequence[Any]) -> DataSource:
    """`ds` with each named integer input in the model's integer type (an exact cast, or a UsageError)."""
    if not ds.is_named:
        return ds
    inputs = dict(ds.inputs)  # type: ignore[arg-type]
    for inp in model_inputs:
        a = inputs.get(inp.name)
        if a is None or a.dtype == inp.dtype or not np.issubdtype(inp.dtype, np.integer):
            continue
        cast = a.astype(inp.dtype)
        if not np.array_equal(cast, a):
            raise UsageError(
                f"{ds.name}: input {inp.name!r} holds {a.dtype} values that do not fit the model's {inp.dtype}"
            )
        inputs[inp.name] = cast
    from dataclasses import replace

    return replace(ds, inputs=inputs)
