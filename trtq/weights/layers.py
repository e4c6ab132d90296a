"""The weighted layers weight-side PTQ works on, and what it measures about their inputs on calibration data.

A `Layer` is one Conv or Gemm/MatMul node of the Q/DQ plan, seen as a grouped matrix product: its weight
reshaped to (groups, out per group, k) and its input unfolded into patches of k values per group, so one
formula serves dense, grouped and depthwise convolutions and fully connected layers. `collect_inputs` runs
the FP32 model once over a few calibration batches and keeps, per layer, the batch mean of its input (for
bias correction: conv is linear, so the mean output shift of a weight change is that change applied to the
mean input) and a seeded sample of input patches (for the clipping search and learned rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["Layer", "LayerInputs", "find_layers", "collect_inputs", "PATCHES_PER_LAYER"]

#: Input patches kept per layer (spread over the samples and positions seen).
PATCHES_PER_LAYER = 4096


@dataclass
class Layer:
    """One weighted node of the plan.

    Attributes:
        node: node name; op: "Conv", "Gemm" or "MatMul".
        weight: initializer name; axis: its output-channel axis (the plan's).
        bias: bias initializer name (None when the node has none).
        input: the activation tensor the node reads.
        group: Conv groups; kernel, strides, pads, dilations: Conv attributes (2-D only).
        trans_b: Gemm transB.
    """

    node: str
    op: str
    weight: str
    axis: int
    bias: str | None
    input: str
    group: int = 1
    kernel: tuple[int, ...] = ()
    strides: tuple[int, ...] = (1, 1)
    pads: tuple[int, ...] = (0, 0, 0, 0)
    dilations: tuple[int, ...] = (1, 1)
    trans_b: bool = False

    def grouped(self, w: np.ndarray) -> np.ndarray:
        """The weight as (groups, out per group, k) with k the values one output reads."""
        if self.op == "Conv":
            o = w.shape[0]
            return w.reshape(self.group, o // self.group, -1)
        mat = w.T if (self.op == "MatMul" or not self.trans_b) else w  # -> (out, in)
        return mat.reshape(1, mat.shape[0], -1)

    def ungrouped(self, g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of `grouped`."""
        if self.op == "Conv":
            return g.reshape(shape)
        mat = g.reshape(g.shape[1], -1)
        return (mat.T if (self.op == "MatMul" or not self.trans_b) else mat).reshape(shape)


@dataclass
class LayerInputs:
    """What one pass over calibration data measured about each layer's input.

    Attributes:
        mean: layer node -> the batch mean of its input (C, H, W) or (features,).
        patches: layer node -> sampled input patches (groups, n, k), float32.
        samples: samples seen.
    """

    mean: dict[str, np.ndarray] = field(default_factory=dict)
    patches: dict[str, np.ndarray] = field(default_factory=dict)
    samples: int = 0


def _ints(node: onnx.NodeProto, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    for a in node.attribute:
        if a.name == name:
            return tuple(int(v) for v in (a.ints or [a.i]))
    return default


def find_layers(model: onnx.ModelProto, weights: Mapping[str, int], nodes: Iterable[str]) -> list[Layer]:
    """The plan's quantized Conv (2-D), Gemm and MatMul nodes with a weight initializer, in graph order."""
    inits = {t.name: t for t in model.graph.initializer}
    wanted = set(nodes)
    layers: list[Layer] = []
    for n in model.graph.node:
        if n.name not in wanted or n.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w = next((i for i in n.input[1:2] if i in weights and i in inits), None)
        if w is None or n.input[0] in inits:
            continue
        dims = tuple(inits[w].dims)
        bias = n.input[2] if len(n.input) > 2 and n.input[2] in inits else None
        if n.op_type == "Conv":
            if len(dims) != 4:
                continue  # 1-D / 3-D convolutions are left to plain rounding
            pads = _ints(n, "pads", (0, 0, 0, 0))
            auto = next((a.s.decode() for a in n.attribute if a.name == "auto_pad"), "NOTSET")
            if auto not in ("NOTSET", "VALID"):
                continue
            layers.append(Layer(n.name, "Conv", w, weights[w], bias, n.input[0], group=_ints(n, "group", (1,))[0],
                                kernel=dims[2:], strides=_ints(n, "strides", (1, 1)), pads=pads,
                                dilations=_ints(n, "dilations", (1, 1))))  # fmt: skip
        elif n.op_type == "Gemm":
            if _ints(n, "transA", (0,))[0]:
                continue
            layers.append(
                Layer(
                    n.name, "Gemm", w, weights[w], bias, n.input[0], trans_b=bool(_ints(n, "transB", (0,))[0])
                )
            )
        elif len(dims) == 2:
            layers.append(Layer(n.name, "MatMul", w, weights[w], None, n.input[0]))
    return layers


def _patches(layer: Layer, x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random input patches of one batch, as (groups, count, k)."""
    import torch

    if layer.op != "Conv":
        flat = x.reshape(-1, x.shape[-1])
        rows = rng.integers(0, flat.shape[0], count)
        return flat[rows][None].astype(np.float32)
    top, left, bottom, right = layer.pads[0], layer.pads[1], layer.pads[2], layer.pads[3]
    xt = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(x)), (left, right, top, bottom))
    cols = torch.nn.functional.unfold(xt, layer.kernel, dilation=layer.dilations, stride=layer.strides)
    n, ck, positions = cols.shape
    pick_n = rng.integers(0, n, count)
    pick_p = rng.integers(0, positions, count)
    sel = cols[torch.from_numpy(pick_n), :, torch.from_numpy(pick_p)].numpy()  # (count, C*k)
    return np.ascontiguousarray(sel.reshape(count, layer.group, -1).transpose(1, 0, 2), dtype=np.float32)


def collect_inputs(
    model: onnx.ModelProto,
    layers: list[Layer],
    feeds: Iterable[Mapping[str, np.ndarray]],
    *,
    patches: bool,
    seed: int,
    batches: int,
    patches_per_layer: int = PATCHES_PER_LAYER,
) -> LayerInputs:
    """One FP32 pass over `batches` calibration batches: each layer's mean input and (optionally) sampled patches."""
    import itertools

    from trtq.progress import track
    from trtq.runners import OnnxRuntimeRunner

    graph_inputs = {i.name for i in model.graph.input}
    extra = sorted({ly.input for ly in layers if ly.input not in graph_inputs})
    rng = np.random.default_rng([int(seed), 20])
    out = LayerInputs()
    sums: dict[str, np.ndarray] = {}
    parts: dict[str, list[np.ndarray]] = {ly.node: [] for ly in layers}
    per_batch = max(1, -(-patches_per_layer // max(1, batches)))
    with OnnxRuntimeRunner(model, extra_outputs=extra, name="weight-ptq") as runner:
        meta = runner.input_metadata()
        for feed in track(itertools.islice(feeds, batches), "weight statistics", total=batches):
            model_feed = {n: np.asarray(feed[n], dtype=meta[n][0]) for n in meta}
            res = runner.infer(model_feed) if extra else {}
            for ly in layers:
                x = model_feed[ly.input] if ly.input in model_feed else res[ly.input]
                x = np.asarray(x, dtype=np.float32)
                s = x.sum(axis=0, dtype=np.float64)
                sums[ly.node] = s if ly.node not in sums else sums[ly.node] + s
                if patches:
                    parts[ly.node].append(_patches(ly, x, per_batch, rng))
            out.samples += len(next(iter(model_feed.values())))
    for ly in layers:
        if ly.node in sums:
            out.mean[ly.node] = (sums[ly.node] / max(out.samples, 1)).astype(np.float32)
        if patches and parts[ly.node]:
            out.patches[ly.node] = np.concatenate(parts[ly.node], axis=1)[:, :patches_per_layer]
    return out


def weight_array(model: onnx.ModelProto, name: str) -> np.ndarray:
    """An initializer as a float32 array."""
    t = next(t for t in model.graph.initializer if t.name == name)
    return numpy_helper.to_array(t).astype(np.float32)
