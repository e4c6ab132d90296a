"""Decoders: a detector's raw outputs -> boxes, scores and labels per image (`--decoder`).

Built in: `yolov8` (aliases `yolo11`, `ultralytics`: Ultralytics v8/v11 heads `[batch, 4 + classes, anchors]`,
per-class NMS with torchvision's `batched_nms`) and `boxes` (models with post-processing in the graph: outputs
named like boxes/scores/labels). A plugin adds one with `@register_decoder("name", expects=...)`;
`--decoder package.module:function` uses `function(outputs, settings)` without registering it.
"""

from trtq.decoders import boxes, yolo  # noqa: F401  (registers the built-in decoders)
from trtq.decoders.base import (
    DECODERS,
    BoundDecoder,
    Decoder,
    DecodeSettings,
    Detections,
    as_detections,
    register_decoder,
    resolve_decoder,
)

__all__ = [
    "DECODERS",
    "Decoder",
    "BoundDecoder",
    "DecodeSettings",
    "Detections",
    "register_decoder",
    "resolve_decoder",
    "as_detections",
]
