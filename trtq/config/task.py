"""The task section: what the model does (classify, detect, segment) and how its outputs are read.

Classification is today's behaviour (logits, top-1). Detection decodes the outputs into boxes with a decoder
(`trtq.decoders`) and scores them by COCO mAP; segmentation reads per-pixel class scores and scores them by mIoU.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from trtq.config.sections import from_args
from trtq.errors import UsageError

__all__ = ["TaskConfig", "TASKS", "DEFAULT_DECODER"]

#: The tasks `--task` takes, the default first.
TASKS = ("classify", "detect", "segment")
#: The decoder of `--task detect` when none is named.
DEFAULT_DECODER = "yolov8"
_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class TaskConfig:
    """What the model does and how its outputs become predictions.

    Attributes:
        task: "classify" (logits; top-1), "detect" (boxes; mAP) or "segment" (per-pixel classes; mIoU).
        decoder: detection only: a registered decoder (`trtq.decoders.DECODERS`: yolov8, boxes) or
            package.module:function; None = yolov8.
        num_classes: the model's class count, where the outputs do not say it (None = read from the outputs).
        conf_threshold: detections scoring below this are dropped before NMS (0.001, as COCO evaluation does:
            mAP integrates over every confidence, so a high threshold would cut the precision-recall curve).
        iou_threshold: NMS IoU threshold (0.7, Ultralytics' validation default for v8/v11 heads; YOLOv5's
            validation used 0.6-0.65).
        max_det: detections kept per image after NMS (300, Ultralytics' validation default); COCO evaluation
            counts this many per image.
        reference_conf: without labels, FP32's detections scoring at least this are the ground truth (0.25,
            Ultralytics' prediction default: what FP32 would report, not its low-confidence tail).
        labels: where the labels are: a COCO .json, a folder of YOLO .txt files or of PNG masks; None = found
            beside the images (instances.json, labels/*.txt, *.txt, masks/*.png).
    """

    task: str = "classify"
    decoder: str | None = None
    num_classes: int | None = None
    conf_threshold: float = 0.001
    iou_threshold: float = 0.7
    max_det: int = 300
    reference_conf: float = 0.25
    labels: str | None = None

    @property
    def decoder_name(self) -> str:
        """The decoder detection uses (the default when none is named)."""
        return self.decoder or DEFAULT_DECODER

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"--task {self.task!r}: choose from {', '.join(TASKS)}")
        if self.decoder is not None:
            if self.task != "detect":
                raise UsageError(
                    f"--decoder {self.decoder} applies to --task detect (the task is {self.task})"
                )
            from trtq.decoders import DECODERS

            if self.decoder not in DECODERS and not _ENTRY.match(str(self.decoder)):
                raise UsageError(DECODERS.unknown_message(self.decoder) + ", or give package.module:function")
        for option, value in (
            ("--conf-threshold", self.conf_threshold),
            ("--iou-threshold", self.iou_threshold),
            ("--reference-conf", self.reference_conf),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{option} {value!r}: give a number in [0, 1]")
            if not 0.0 <= float(value) <= 1.0:
                raise UsageError(f"{option} {value}: give a number in [0, 1]")
        if isinstance(self.max_det, bool) or not isinstance(self.max_det, int) or self.max_det < 1:
            raise UsageError(f"--max-det {self.max_det!r}: keep at least 1 detection per image")
        if self.num_classes is not None and (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, int)
            or self.num_classes < 1
        ):
            raise UsageError(f"--num-classes {self.num_classes!r}: give a positive number of classes")
        if self.labels is not None and self.task == "classify":
            raise UsageError(
                f"--labels {self.labels} applies to --task detect or segment (classification labels are class "
                "sub-folders or .npz y)"
            )

    @classmethod
    def from_args(cls, args: Any, base: TaskConfig | None = None) -> TaskConfig:
        mapping = {
            "task": "task",
            "decoder": "decoder",
            "num_classes": "num_classes",
            "conf_threshold": "conf_threshold",
            "iou_threshold": "iou_threshold",
            "max_det": "max_det",
            "reference_conf": "reference_conf",
            "labels": "labels",
        }
        return from_args(base or cls(), args, mapping)
