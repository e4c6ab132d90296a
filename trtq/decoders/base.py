"""`Detections`, the decoder registry, and how a user's `--decoder` value becomes a `Decoder`.

A decoder turns a detector's raw outputs (output name -> array, samples on axis 0) into one `Detections` per
sample, boxes in the model's input pixels (the letterboxed image); `trtq.metrics.detection` maps them back to the
original images. A decoder checks the output shapes it reads and says, in one line, which shape it expected.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtq.errors import TrtqError, UsageError
from trtq.registry import Registry

__all__ = [
    "Detections",
    "DecodeSettings",
    "Decoder",
    "BoundDecoder",
    "DECODERS",
    "register_decoder",
    "resolve_decoder",
    "as_detections",
]

Outputs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Detections:
    """The detections of one image.

    Attributes:
        boxes: (K, 4) float32 x1, y1, x2, y2 (input pixels from a decoder, original pixels after mapping back).
        scores: (K,) float32 confidences.
        labels: (K,) int64 class ids (0-based, the model's class index).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, np.float32).reshape(-1))
        object.__setattr__(self, "labels", np.asarray(self.labels, np.int64).reshape(-1))
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise TrtqError(
                f"detections with {len(self.boxes)} boxes, {len(self.scores)} scores and {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return int(len(self.scores))


@dataclass(frozen=True)
class DecodeSettings:
    """Post-processing settings every decoder honours (`trtq.config.TaskConfig`).

    Attributes:
        conf_threshold: drop detections scoring below this.
        iou_threshold: NMS IoU threshold (decoders that run NMS).
        max_det: detections kept per image, best first.
        num_classes: the model's class count where the outputs do not show it.
    """

    conf_threshold: float = 0.001
    iou_threshold: float = 0.7
    max_det: int = 300
    num_classes: int | None = None


DecodeFn = Callable[[Outputs, DecodeSettings], Sequence[Any]]


@dataclass(frozen=True)
class Decoder:
    """A named way to read a detector's outputs.

    Attributes:
        name: registry name (what `--decoder` takes) or the package.module:function given.
        fn: `fn(outputs, settings) -> [Detections or (boxes, scores, labels)] per sample`.
        expects: the output shapes it reads, for messages ("[batch, 4 + classes, anchors]").
        classes: `classes(outputs) -> int | None`: the class count the outputs show (None when they do not).
        description: one line for help texts and docs.
    """

    name: str
    fn: DecodeFn
    expects: str = ""
    classes: Callable[[Outputs], int | None] | None = None
    description: str = ""

    def __call__(self, outputs: Outputs, settings: DecodeSettings | None = None) -> list[Detections]:
        settings = settings or DecodeSettings()
        batch = _batch(outputs)
        try:
            raw = self.fn(outputs, settings)
        except (TrtqError, UsageError):
            raise
        except Exception as e:
            raise TrtqError(f"decoder {self.name} failed: {type(e).__name__}: {e}") from None
        dets = [as_detections(d, self.name) for d in raw]
        if batch is not None and len(dets) != batch:
            raise TrtqError(
                f"decoder {self.name} returned {len(dets)} images' detections for a batch of {batch}"
            )
        return dets

    def num_classes(self, outputs: Outputs) -> int | None:
        return None if self.classes is None else self.classes(outputs)


@dataclass(frozen=True)
class BoundDecoder:
    """A decoder with its settings and the model's class count, as a run's detection targets carry it;
    `reference_conf`: without labels, the reference's detections scoring at least this are the ground truth."""

    decoder: Decoder
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    num_classes: int | None = None
    reference_conf: float = 0.25

    def __call__(self, outputs: Outputs) -> list[Detections]:
        return self.decoder(outputs, self.settings)


def _batch(outputs: Outputs) -> int | None:
    for v in outputs.values():
        a = np.asarray(v)
        if a.ndim:
            return int(a.shape[0])
    return None


def as_detections(item: Any, name: str = "decoder") -> Detections:
    """A `Detections` from one, from a (boxes, scores, labels) tuple, or from a dict with those keys."""
    if isinstance(item, Detections):
        return item
    if isinstance(item, Mapping) and {"boxes", "scores", "labels"} <= set(item):
        return Detections(item["boxes"], item["scores"], item["labels"])
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return Detections(*item)
    raise TrtqError(
        f"decoder {name} returned {type(item).__name__} for an image; return Detections or (boxes, scores, labels)"
    )


DECODERS: Registry[Decoder] = Registry("decoder", "--decoder")


def register_decoder(
    name: str,
    *,
    expects: str,
    classes: Callable[[Outputs], int | None] | None = None,
    aliases: Sequence[str] = (),
    description: str = "",
) -> Callable[[DecodeFn], DecodeFn]:
    """Decorator: register `fn(outputs, settings) -> [Detections per sample]` as the decoder `name`."""

    def deco(fn: DecodeFn) -> DecodeFn:
        doc = (inspect.getdoc(fn) or "").splitlines()
        DECODERS.register(
            name,
            Decoder(name=name, fn=fn, expects=expects, classes=classes,
                    description=description or (doc[0] if doc else "")),
        )  # fmt: skip
        for alias in aliases:
            DECODERS.alias(alias, name)
        return fn

    return deco


_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def resolve_decoder(decoder: str | Decoder | DecodeFn) -> Decoder:
    """A registered decoder by name or alias, `package.module:function`, a `Decoder` or a callable.

    Raises:
        UsageError: an unknown name, or an entry point that does not import or is not a function.
    """
    if isinstance(decoder, Decoder):
        return decoder
    if callable(decoder):
        return Decoder(getattr(decoder, "__name__", "decoder"), decoder, expects="what the function reads")
    name = str(decoder)
    if name in DECODERS:
        return DECODERS.get(name)
    if not _ENTRY.match(name):
        raise UsageError(DECODERS.unknown_message(name) + ", or give package.module:function")
    module_name, fn_name = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"cannot import {module_name!r} for --decoder {name}: {e}") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise UsageError(f"{module_name} has no function {fn_name!r} (--decoder {name})")
    return Decoder(name, fn, expects="what the function reads", description="user decoder")
