"""Optimisation profiles from a model's dynamic axes and the requested batch range.

A TensorRT engine built from a graph with dynamic axes needs, for every input, the smallest, typical
and largest shape it will see. trtq's exports have one dynamic axis, the batch (axis 0); the batch
range comes from `--batch min,opt,max`. Any other dynamic axis must be given with `--shapes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtq.engines.options import ShapeRange
from trtq.errors import UsageError

__all__ = ["Dim", "compute_profile", "needs_profile", "onnx_input_shapes", "opt_shapes"]

#: A dimension as a graph declares it: an int when static, None / -1 / a symbolic name when dynamic.
Dim = int | str | None


def _is_dynamic(d: Dim) -> bool:
    return d is None or isinstance(d, str) or (isinstance(d, int) and d < 0)


def needs_profile(inputs: Mapping[str, Sequence[Dim]]) -> bool:
    """True when any input has a dynamic axis (TensorRT then requires an optimisation profile)."""
    return any(_is_dynamic(d) for dims in inputs.values() for d in dims)


def compute_profile(
    inputs: Mapping[str, Sequence[Dim]],
    batch: tuple[int, int, int],
    shapes: Mapping[str, ShapeRange] | None = None,
) -> dict[str, ShapeRange]:
    """(min, opt, max) shape for every input.

    Args:
        inputs: input name -> declared dims (dynamic axes as None, -1 or a symbolic name).
        batch: (min, opt, max) for a dynamic axis 0.
        shapes: explicit ranges that take precedence for the inputs they name.

    Raises:
        UsageError: an explicit shape does not fit the declared static dims, names an unknown input, or a
            dynamic axis other than the batch has no explicit range.
    """
    shapes = dict(shapes or {})
    unknown = sorted(set(shapes) - set(inputs))
    if unknown:
        raise UsageError(
            f"--shapes names input(s) {', '.join(unknown)} that the model does not have; inputs: {', '.join(inputs)}"
        )
    ranges: dict[str, ShapeRange] = {}
    for name, dims in inputs.items():
        dims = list(dims)
        if name in shapes:
            rng = shapes[name]
            for s in rng:
                if len(s) != len(dims):
                    raise UsageError(f"--shapes {name}: the model's input has rank {len(dims)}, not {len(s)}")
                for axis, (want, have) in enumerate(zip(s, dims)):
                    if not _is_dynamic(have) and want != have:
                        raise UsageError(
                            f"--shapes {name}: axis {axis} is fixed to {have} in the model, not {want}"
                        )
            ranges[name] = (tuple(rng[0]), tuple(rng[1]), tuple(rng[2]))
            continue
        rows: list[list[int]] = [[], [], []]
        for axis, d in enumerate(dims):
            if not _is_dynamic(d):
                for r in rows:
                    r.append(int(d))  # type: ignore[arg-type]
            elif axis == 0:
                for r, b in zip(rows, batch):
                    r.append(int(b))
            else:
                shown = "x".join("?" if _is_dynamic(x) else str(x) for x in dims)
                raise UsageError(
                    f"input {name!r} ({shown}) has a dynamic axis {axis} besides the batch; give its range with "
                    f"--shapes {name}:MIN,OPT,MAX (e.g. 1x3x224x224,8x3x224x224,32x3x224x224)"
                )
        ranges[name] = (tuple(rows[0]), tuple(rows[1]), tuple(rows[2]))
    return ranges


def opt_shapes(shape_ranges: Mapping[str, ShapeRange]) -> dict[str, tuple[int, ...]]:
    """The opt shape of every input (what the precision proof and benchmarks run at)."""
    return {name: tuple(rng[1]) for name, rng in shape_ranges.items()}


def onnx_input_shapes(model: Any) -> dict[str, list[Dim]]:
    """Real graph inputs (initializers excluded) of an ONNX model (path, bytes or ModelProto) -> dims."""
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    elif isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    inits = {i.name for i in model.graph.initializer}
    out: dict[str, list[Dim]] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims: list[Dim] = []
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        out[vi.name] = dims
    return out
