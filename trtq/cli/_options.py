"""Option groups several commands share, and turning parsed options into a `BuildConfig`.

Every option here has no argparse default (`argparse.SUPPRESS`): the namespace holds only what the user typed,
and the defaults live in one place, the configuration dataclasses (`trtq.config`). That is also what lets
`trtq build --config report.json --calib mse` override just the calibration method of a recorded run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "S",
    "LazyHelp",
    "HelpFormatter",
    "check_paths",
    "add_model_args",
    "add_data_args",
    "add_preprocess_args",
    "add_task_args",
    "add_placement_args",
    "add_calibration_args",
    "add_fallback_args",
    "add_weights_args",
    "add_typing_args",
    "add_engine_args",
    "add_output_args",
    "config_from_args",
    "floats",
    "version_triple",
]

#: No default: the option is absent from the namespace unless given.
S = argparse.SUPPRESS


class LazyHelp(str):
    """Help text made only when help is shown: it lists registry names, and the modules that register them import
    onnx and numpy, which `trtq --version` and `trtq COMMAND --help` must not pay for."""

    def __new__(cls, render: Callable[[], str]) -> LazyHelp:
        obj = super().__new__(cls, "(listed when help is shown)")
        obj._render = render  # type: ignore[attr-defined]
        return obj

    def __str__(self) -> str:
        return self._render()  # type: ignore[attr-defined]


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, rendering `LazyHelp` texts when they are shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if isinstance(action.help, LazyHelp):
            return str(action.help)
        return super()._get_help_string(action)


#: the dests of options that name input files or folders (checked before anything heavy is imported)
_PATH_OPTIONS = (
    "calib_data", "eval_data", "train_data", "val_data", "checkpoint", "config", "from_qat", "fp32_onnx",
    "calib_cache", "engine_calib_cache", "reference", "labels",
)  # fmt: skip
_MODEL_SUFFIXES = (".onnx", ".pt", ".pth", ".ts", ".pt2", ".jit", ".torchscript", ".plan", ".engine")


def check_paths(args: argparse.Namespace) -> None:
    """Refuse a missing input file or folder in one line before torch and onnx are imported (seconds).

    `--model` counts as a file when it has a model file suffix or a path separator (names such as
    `resnet50`, `timm:vit_small_patch16_224` or `pkg.mod:factory` are not files). The library checks again.

    Raises:
        UsageError: an input path that does not exist, naming the option.
    """
    from trtq.errors import UsageError

    names = getattr(args, "_option_names", {})
    for dest in ("model", "candidate"):
        model = getattr(args, dest, None)
        looks_like_file = isinstance(model, str) and (
            model.lower().endswith(_MODEL_SUFFIXES) or os.sep in model or "/" in model
        )
        if looks_like_file and not Path(model).exists():
            raise UsageError(f"model file {model} does not exist ({names.get(dest, '--model')})")
    for dest in _PATH_OPTIONS:
        value = getattr(args, dest, None)
        if isinstance(value, str) and value and not Path(value).exists():
            raise UsageError(f"{names.get(dest, '--' + dest.replace('_', '-'))} {value} does not exist")
    for artifact in getattr(args, "artifacts", None) or []:
        if isinstance(artifact, str) and not Path(artifact).exists():
            raise UsageError(f"{artifact} does not exist")


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def version_triple(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected MAJOR.MINOR.PATCH, got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def add_model_args(p: argparse.ArgumentParser, *, onnx_only: bool = False, required: bool = False) -> None:
    g = p.add_argument_group("model")
    if onnx_only:
        g.add_argument("--model", "-m", required=True, default=S, help="the FP32 .onnx model")
        return
    g.add_argument(
        "--model", "-m", default=S, required=required,
        help="torchvision name (resnet50), timm:NAME (timm:efficientnet_b0), package.module:factory, "
        "TorchScript/.pt2 file, or .onnx",
    )  # fmt: skip
    g.add_argument("--weights", default=S,
                   help="pretrained weights (downloads them): torchvision's, e.g. DEFAULT; for timm models DEFAULT "
                   "or a pretrained tag such as in1k")  # fmt: skip
    g.add_argument(
        "--checkpoint", default=S, help="state dict to load into the model (read with weights_only=True)"
    )
    g.add_argument(
        "--trust-pickle", action="store_true", default=S,
        help="allow unpickling a full-model file you made yourself (never for files from others)",
    )  # fmt: skip
    g.add_argument("--opset", type=int, default=S, help="ONNX opset for the export (default 17)")
    g.add_argument("--exporter", default=S, choices=("auto", "dynamo", "legacy"),
                   help="torch.onnx exporter: legacy (TorchScript-based), dynamo (torch.export-based, opset >= 18) "
                   "or auto (legacy while torch has it, dynamo when it is missing or fails; default)")  # fmt: skip


def add_data_args(p: argparse.ArgumentParser, *, calib: bool = True, eval_: bool = True) -> None:
    g = p.add_argument_group("data")
    if calib:
        g.add_argument("--calib-data", default=S,
                       help="calibration images (folder, flat or one sub-folder per class) or .npy/.npz (N,C,H,W)")  # fmt: skip
        g.add_argument("--calib-samples", type=int, default=S,
                       help="reproducible subset size (default 512; 0 = all)")  # fmt: skip
    if eval_:
        g.add_argument("--eval-data", default=S,
                       help="evaluation data (class sub-folders or .npz with y give top-1/top-5)")  # fmt: skip
        g.add_argument(
            "--eval-samples", type=int, default=S, help="reproducible subset of the eval data (0 = all)"
        )
    g.add_argument(
        "--batch-size", type=int, default=S, help="batch size for calibration and evaluation (default 32)"
    )
    g.add_argument("--seed", type=int, default=S, help="seed for subsets and random-init models (default 0)")


def _preset_help() -> str:
    from trtq.data import PRESETS

    return (
        f"preprocessing preset: {', '.join(PRESETS)}; imagenet: resize 256, centre crop 224, ImageNet mean/std "
        "(default, except for timm models, which get their own data config); yolo: letterbox to 640 (aspect kept, "
        "grey 114 padding), RGB / 255 (default with --task detect)"
    )


def add_preprocess_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing (image folders)")
    g.add_argument("--preset", default=S, metavar="NAME", help=LazyHelp(_preset_help))
    g.add_argument("--size", type=int, default=S, help="final (centre-cropped) side length")
    g.add_argument("--resize", type=int, default=S, help="resize the shorter side to this before cropping")
    g.add_argument("--no-resize", action="store_true", default=S, help="resize straight to --size, no crop")
    g.add_argument("--mean", type=floats, default=S, help="per-channel mean, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=floats, default=S, help="per-channel std")
    g.add_argument("--channels", type=int, choices=[1, 3], default=S,
                   help="1 = grey, 3 = RGB (default: what the model takes)")  # fmt: skip


def _decoder_help() -> str:
    from trtq.decoders import DECODERS

    names = ", ".join(DECODERS.names())
    aliases = ", ".join(f"{a} = {n}" for a, n in DECODERS.aliases().items())
    return f"--task detect: how outputs become boxes: {names} ({aliases}) or package.module:function (default yolov8)"


def add_task_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("task (detection and segmentation)")
    g.add_argument("--task", default=S, choices=("classify", "detect", "segment"),
                   help="classify (logits, top-1; default), detect (boxes, COCO mAP) or segment (per-pixel "
                   "classes, mIoU)")  # fmt: skip
    g.add_argument("--labels", default=S, metavar="PATH",
                   help="detection/segmentation labels: a COCO .json, a folder of YOLO .txt or of PNG masks "
                   "(default: found beside the --eval-data images)")  # fmt: skip
    g.add_argument("--decoder", default=S, metavar="NAME", help=LazyHelp(_decoder_help))
    g.add_argument("--num-classes", type=int, default=S,
                   help="the model's class count where its outputs do not show it")  # fmt: skip
    g.add_argument("--conf-threshold", type=float, default=S,
                   help="drop detections scoring below this before NMS (default 0.001, as COCO evaluation)")  # fmt: skip
    g.add_argument("--iou-threshold", type=float, default=S,
                   help="NMS IoU threshold (default 0.7, Ultralytics' v8/v11 validation default)")  # fmt: skip
    g.add_argument("--max-det", type=int, default=S,
                   help="detections kept per image after NMS (default 300)")  # fmt: skip
    g.add_argument("--reference-conf", type=float, default=S,
                   help="without labels: FP32's detections scoring at least this are the ground truth (default "
                   "0.25)")  # fmt: skip


def _rules_help() -> str:
    from trtq.placement.rules import RULES

    return f"turn a placement rule on (repeatable); rules: {', '.join(RULES.names())}"


def add_placement_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Q/DQ placement")
    g.add_argument("--exclude", action="append", metavar="NAME_OR_REGEX", default=S,
                   help="keep these nodes out of INT8 (repeatable, comma-separated)")  # fmt: skip
    g.add_argument(
        "--exclude-op-type", action="append", metavar="OP", default=S, help="keep these op types out of INT8"
    )
    g.add_argument("--keep-first-last", action="store_true", default=S,
                   help="keep the first and last weighted layers FP16")  # fmt: skip
    g.add_argument(
        "--quantize-small", action="store_true", default=S,
        help="also quantize convs with < 16 channels and matrix-vector Gemm/MatMul (disables the SmallConv and "
        "SmallOrGemv rules, which NVIDIA's quantizer and trtq apply by default because Q/DQ there costs TensorRT "
        "more than it saves)",
    )  # fmt: skip
    g.add_argument("--enable-rule", action="append", metavar="RULE", default=S, help=LazyHelp(_rules_help))
    g.add_argument(
        "--disable-rule", action="append", metavar="RULE", default=S, help="turn a placement rule off"
    )


def _calib_help() -> str:
    from trtq.calibrators import CALIBRATORS

    methods = ", ".join(CALIBRATORS.names())
    aliases = ", ".join(f"{a} = {n}" for a, n in CALIBRATORS.aliases().items())
    return (
        f"calibration method: {methods} ({aliases}), 'all' (every method from one pass, the most faithful "
        "kept) or a comma-separated list (default entropy)"
    )


def add_calibration_args(
    p: argparse.ArgumentParser, *, cache: bool = False, smoothquant: bool = False
) -> None:
    g = p.add_argument_group("calibration")
    g.add_argument("--calib", default=S, metavar="METHOD", help=LazyHelp(_calib_help))
    g.add_argument("--calib-param", action="append", metavar="NAME=VALUE", default=S,
                   help="a parameter of the method (repeatable), e.g. percentile=99.9, num_bins=4096")  # fmt: skip
    g.add_argument(
        "--percentile", type=float, default=S, help="shortcut for --calib-param percentile=P (default 99.99)"
    )
    g.add_argument("--choose-metric", default=S, metavar="METRIC",
                   help="metric --calib all picks the method by, on held-out data (default cosine)")  # fmt: skip
    g.add_argument("--choose-samples", type=int, default=S, metavar="N",
                   help="held-out samples --calib all runs each method on: a reproducible subset of the "
                   "evaluation data (default 128; 0 = all)")  # fmt: skip
    if smoothquant:
        g.add_argument("--smoothquant", type=float, default=S, metavar="ALPHA",
                       help="SmoothQuant: move LayerNorm outputs' outlier channels into the following weights "
                       "with strength ALPHA in [0, 1] (0.5 typical) before calibrating (default off)")  # fmt: skip
    if cache:
        g.add_argument(
            "--calib-cache", default=S, help="take scales from a TensorRT calibration cache instead"
        )
        g.add_argument(
            "--trt-cache", dest="write_trt_cache", action="store_true", default=S,
            help="also write calibration.cache, TensorRT's calibration cache (every float tensor's scale, for "
            "TensorRT 10 implicit INT8 with trtq engine --calib-cache; the engine of a build does not use it). "
            "Off by default: it makes the calibration pass measure about twice as many tensors",
        )  # fmt: skip


def _weight_methods_help() -> str:
    from trtq.weights import WEIGHT_METHODS

    methods = "; ".join(f"{n}: {m.help}" for n, m in WEIGHT_METHODS.items())
    return (
        f"comma-separated weight methods, applied in this order ({methods}); 'none' = max |w| rounded to nearest "
        "(default none)"
    )


def add_weights_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("weight-side PTQ")
    g.add_argument("--weight-ptq", default=S, metavar="LIST", help=LazyHelp(_weight_methods_help))
    g.add_argument("--weight-batches", type=int, default=S,
                   help="calibration batches the weight methods measure layer inputs on (default 4)")  # fmt: skip
    g.add_argument("--adaround-iters", type=int, default=S,
                   help="learned-rounding steps per layer (default 300)")  # fmt: skip
    g.add_argument("--weight-storage", choices=("qdq", "int8"), default=S,
                   help="qdq: FP32 weights -> Q -> DQ; int8: INT8 weights -> DQ, about 4x smaller "
                   "(default qdq)")  # fmt: skip


def _metric_help() -> str:
    from trtq.metrics import METRICS

    return (
        f"metric of the budget (and reported by validation): {', '.join(METRICS.names())}; NAME@OUTPUT for one "
        "output (cosine@pooler_output), or package.module:function(fp32_outputs, outputs[, targets]) -> float "
        "(default top1_accuracy with labels, map50_95 with --task detect, miou with --task segment, else "
        "top1_agreement)"
    )


def add_fallback_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sensitivity and FP16 fallback")
    g.add_argument("--max-drop", type=float, default=S,
                   help="keep the fewest layers FP16 so the metric is at most this much below FP32 (percentage "
                   "points for top-1, mAP and other fraction metrics: 0.5 = half a mAP point)")  # fmt: skip
    g.add_argument(
        "--fallback", default=S, help="N (keep the N most sensitive layers FP16) or node names/regexes"
    )
    g.add_argument("--metric", default=S, help=LazyHelp(_metric_help))
    g.add_argument(
        "--workers", type=int, default=S, help="parallel evaluations (default: the CPUs available)"
    )
    g.add_argument("--rank-by", choices=("cosine", "kl", "metric"), default=S,
                   help="rank FP16 candidates on the mean output cosine to FP32 or the output KL (continuous; "
                   "greedy, re-measured given the layers already FP16) or on the budget metric (default "
                   "cosine)")  # fmt: skip
    g.add_argument("--rank-top-k", type=int, default=S, metavar="K",
                   help="candidates the greedy search re-evaluates per step (default 6)")  # fmt: skip
    g.add_argument("--alone-int8", action="store_true", default=S,
                   help="also measure each layer alone INT8 (the rest FP32) for the report: its damage in "
                   "isolation; doubles the analysis time and does not change the ranking")  # fmt: skip


def add_typing_args(p: argparse.ArgumentParser, *, keep: bool = False, switch: bool = True) -> None:
    g = p.add_argument_group("typed graph (model.trt.onnx)")
    if switch:
        g.add_argument(
            "--no-typed", action="store_true", default=S, help="do not write the FP16-typed model.trt.onnx"
        )
        g.add_argument("--typed-samples", type=int, default=S, metavar="N",
                       help="evaluation samples the typed graph is validated on: a reproducible subset, the "
                       "--calib all held-out samples at the same count (default 128; 0 = all)")  # fmt: skip
    if keep:
        g.add_argument("--keep-fp32", action="append", metavar="NAME_OR_REGEX", default=S,
                       help="nodes the typed model keeps FP32")  # fmt: skip
        g.add_argument("--keep-fp32-op-type", action="append", metavar="OP", default=S,
                       help="op types the typed model keeps FP32")  # fmt: skip


def add_engine_args(p: argparse.ArgumentParser, *, switch: bool = True) -> None:
    g = p.add_argument_group("engine (needs TensorRT and a GPU)")
    if switch:
        g.add_argument("--no-engine", action="store_true", default=S, help="stop after the ONNX stages")
    g.add_argument(
        "--batch", default=S, help="optimisation profile batch sizes min,opt,max or one size (default 1,8,32)"
    )
    g.add_argument("--workspace-gb", type=float, default=S, help="builder workspace limit in GiB")
    g.add_argument("--timing-cache", default=S, help="timing cache file to load and update")
    g.add_argument(
        "--opt-level",
        type=int,
        choices=range(6),
        default=S,
        help="builder optimisation level 0-5 (default 3)",
    )


def add_output_args(
    p: argparse.ArgumentParser, *, what: str = "run folder to create", default: str | None = None
) -> None:
    req = default is None
    p.add_argument("--out", "-o", required=req, default=S,
                   help=what + ("" if req else f" (default {default})"))  # fmt: skip
    p.add_argument(
        "--force", action="store_true", default=S, help="replace what a previous trtq run wrote there"
    )


def config_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """The `BuildConfig` of a command line: `--config` (or `base`) first, then every option given."""
    from dataclasses import replace

    from trtq.config import (
        BuildConfig,
        CalibrationConfig,
        DataConfig,
        ExportConfig,
        FallbackConfig,
        TaskConfig,
        TypingConfig,
        ValidationConfig,
        WeightsConfig,
        engine_from_args,
        placement_from_args,
    )

    cfg = base or (BuildConfig.load(args.config) if hasattr(args, "config") else BuildConfig())
    changes: dict[str, Any] = {
        "task": TaskConfig.from_args(args, cfg.task),
        "export": ExportConfig.from_args(args, cfg.export),
        "data": DataConfig.from_args(args, cfg.data),
        "placement": placement_from_args(args, cfg.placement),
        "calibration": CalibrationConfig.from_args(args, cfg.calibration),
        "weights": WeightsConfig.from_args(args, cfg.weights),
        "fallback": FallbackConfig.from_args(args, cfg.fallback),
        "typing": TypingConfig.from_args(args, cfg.typing),
        "validation": ValidationConfig.from_args(args, cfg.validation),
        "engine": engine_from_args(args, cfg.engine),
    }
    for dest, fld in (("model", "model"), ("out", "out"), ("seed", "seed"), ("force", "force"),
                      ("from_qat", "from_qat"), ("fp32_onnx", "fp32_onnx"), ("format", "format")):  # fmt: skip
        if hasattr(args, dest):
            changes[fld] = getattr(args, dest)
    if getattr(args, "plugin", None):
        changes["plugins"] = tuple(dict.fromkeys([*cfg.plugins, *args.plugin]))
    return replace(cfg, **changes)
