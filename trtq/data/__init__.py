"""Calibration and evaluation data: sources, preprocessing and targets.

Every source becomes a `DataSource`: a fixed, deterministic list of samples that yields batches of model inputs
and typed targets (`ClassLabels` for class sub-folders or `.npz` labels; `DetectionTargets` and
`SegmentationTargets` for `--task detect|segment` folders, `trtq.data.detection`). See `load_data`.
"""

from trtq.data.load import IMAGE_EXTENSIONS, load_data, read_npz
from trtq.data.named import LABEL_KEYS, check_fits, check_limits, check_sequences, conform
from trtq.data.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    Preprocess,
    geometry,
    load_image,
    load_mask,
    resolve_preprocess,
)
from trtq.data.source import Batch, DataSource, Feed
from trtq.data.targets import ClassLabels, DetectionTargets, SegmentationTargets, Targets, concat_targets

__all__ = [
    "load_data",
    "read_npz",
    "check_fits",
    "check_limits",
    "check_sequences",
    "conform",
    "LABEL_KEYS",
    "Feed",
    "DataSource",
    "Batch",
    "Preprocess",
    "PRESETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "resolve_preprocess",
    "load_image",
    "load_mask",
    "geometry",
    "Targets",
    "ClassLabels",
    "DetectionTargets",
    "SegmentationTargets",
    "concat_targets",
]
