"""Models that already output boxes, scores and labels (post-processing in the graph).

Outputs are found by name: one containing "box" ([batch, K, 4], x1 y1 x2 y2 in input pixels), one containing
"score" or "conf" ([batch, K]), one containing "label" or "class" ([batch, K], class ids), and optionally one
containing "num" ([batch] or [batch, 1], how many of the K rows are real, as TensorRT's EfficientNMS writes).
Rows past that count, with a negative label, or scoring below the confidence threshold are dropped; the
`max_det` best are kept. No NMS: the graph ran it. A torchvision detector exports unbatched `[K, 4]` outputs;
wrap it so its outputs carry the batch axis (stack per-image results padded to K).
"""

from __future__ import annotations

import numpy as np

from trtq.decoders.base import DecodeSettings, Detections, Outputs, register_decoder
from trtq.errors import UsageError

__all__ = ["boxes", "find_outputs"]

EXPECTS = (
    "outputs named like boxes [batch, K, 4], scores [batch, K] and labels [batch, K] (optionally num_detections "
    "[batch])"
)
_ROLES = {"boxes": ("box",), "scores": ("score", "conf"), "labels": ("label", "class"), "num": ("num",)}


def find_outputs(outputs: Outputs) -> dict[str, np.ndarray]:
    """role (boxes, scores, labels, num) -> array, found by output name; UsageError naming what is missing."""
    found: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for role in ("num", "boxes", "scores", "labels"):
        for name, value in outputs.items():
            low = name.lower()
            if name not in used and any(k in low for k in _ROLES[role]):
                found[role] = np.asarray(value)
                used.add(name)
                break
    missing = [r for r in ("boxes", "scores", "labels") if r not in found]
    shapes = ", ".join(f"{n} {tuple(np.asarray(v).shape)}" for n, v in outputs.items())
    if missing:
        raise UsageError(f"decoder boxes expects {EXPECTS}; the model has no {missing[0]} output ({shapes})")
    b, s, lab = found["boxes"], found["scores"], found["labels"]
    if b.ndim != 3 or b.shape[2] != 4 or s.shape != b.shape[:2] or lab.shape != b.shape[:2]:
        raise UsageError(f"decoder boxes expects {EXPECTS}; the model's outputs are {shapes}")
    return found


@register_decoder("boxes", expects=EXPECTS, aliases=("postprocessed",))
def boxes(outputs: Outputs, settings: DecodeSettings) -> list[Detections]:
    """Outputs that are already boxes/scores/labels per image (NMS in the graph)."""
    found = find_outputs(outputs)
    b, s, lab = found["boxes"], found["scores"], found["labels"]
    num = found.get("num")
    out = []
    for i in range(len(b)):
        count = len(s[i]) if num is None else int(np.asarray(num[i]).reshape(-1)[0])
        keep = np.arange(len(s[i])) < count
        keep &= (lab[i] >= 0) & (s[i] >= settings.conf_threshold)
        idx = np.flatnonzero(keep)
        idx = idx[np.argsort(-s[i][idx], kind="stable")][: settings.max_det]
        out.append(Detections(b[i][idx], s[i][idx], np.round(lab[i][idx]).astype(np.int64)))
    return out
