"""Argument groups several commands share (data, preprocessing, placement), and their conversion."""

from __future__ import annotations

import argparse
from typing import Any

from trtq.errors import UsageError

__all__ = [
    "add_model_args",
    "add_data_args",
    "add_preprocess_args",
    "add_placement_args",
    "preprocess_from",
    "placement_from",
    "floats",
    "names",
]


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def names(values: list[str] | None) -> list[str]:
    """Flatten repeatable, comma-separated name options."""
    return [v.strip() for group in values or [] for v in group.split(",") if v.strip()]


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        "-m",
        required=required,
        help="torchvision name (resnet50), package.module:factory, TorchScript/.pt2 file, or .onnx",
    )
    g.add_argument("--weights", help="torchvision weights, e.g. DEFAULT (downloads them)")
    g.add_argument("--checkpoint", help="state dict to load into the model (read with weights_only=True)")
    g.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling a full-model file you made yourself (never for files from others)",
    )
    g.add_argument("--opset", type=int, default=17, help="ONNX opset for the export (default 17)")


def add_data_args(p: argparse.ArgumentParser, calib_required: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--calib-data",
        required=calib_required,
        help="calibration images (folder, flat or one sub-folder per class) or .npy/.npz (N,C,H,W)",
    )
    g.add_argument(
        "--calib-samples", type=int, default=512, help="reproducible subset size (default 512; 0 = all)"
    )
    g.add_argument("--eval-data", help="evaluation data (class sub-folders or .npz with y give top-1/top-5)")
    g.add_argument(
        "--eval-samples", type=int, default=0, help="reproducible subset of the eval data (0 = all)"
    )
    g.add_argument("--batch-size", type=int, default=32, help="batch size for calibration and evaluation")
    g.add_argument("--seed", type=int, default=0, help="seed for subsets and random-init models")


def add_preprocess_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing (image folders)")
    g.add_argument(
        "--preset",
        default="imagenet",
        choices=["imagenet", "raw"],
        help="imagenet: resize 256, centre crop 224, ImageNet mean/std (default)",
    )
    g.add_argument("--size", type=int, help="final (centre-cropped) side length")
    g.add_argument("--resize", type=int, help="resize the shorter side to this before cropping")
    g.add_argument("--no-resize", action="store_true", help="resize straight to --size, no crop")
    g.add_argument("--mean", type=floats, help="per-channel mean, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=floats, help="per-channel std")
    g.add_argument(
        "--channels", type=int, choices=[1, 3], help="1 = grey, 3 = RGB (default: what the model takes)"
    )


def add_placement_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Q/DQ placement")
    g.add_argument(
        "--exclude",
        action="append",
        metavar="NAME_OR_REGEX",
        help="keep these nodes out of INT8 (repeatable, comma-separated)",
    )
    g.add_argument("--exclude-op-type", action="append", metavar="OP", help="keep these op types out of INT8")
    g.add_argument(
        "--keep-first-last", action="store_true", help="keep the first and last weighted layers FP16"
    )
    g.add_argument(
        "--quantize-small",
        action="store_true",
        help="also quantize convs with < 16 channels and matrix-vector Gemm/MatMul, which NVIDIA's quantizer "
        "(and trtq by default) leaves in FP16 because Q/DQ there costs TensorRT more than it saves",
    )


def preprocess_given(args: argparse.Namespace) -> bool:
    """Whether the user set any preprocessing option (else a recorded or default one may apply)."""
    return (
        args.preset != "imagenet"
        or args.no_resize
        or any(getattr(args, k) is not None for k in ("size", "resize", "mean", "std", "channels"))
    )


def preprocess_from(args: argparse.Namespace) -> Any:
    from trtq.data import PRESETS

    pre = PRESETS[args.preset]
    channels = args.channels
    if channels == 1 and args.mean is None and len(pre.mean) == 3:
        args.mean, args.std = (sum(pre.mean) / 3,), (sum(pre.std) / 3,)
    kw: dict[str, Any] = {
        "size": args.size,
        "resize": args.resize,
        "mean": args.mean,
        "std": args.std,
        "channels": channels,
    }
    pre = pre.with_overrides(**kw)
    if args.no_resize:
        from dataclasses import replace

        pre = replace(pre, resize=None)
    if pre.resize is not None and pre.size is not None and pre.resize < pre.size:
        raise UsageError(f"--resize {pre.resize} is smaller than --size {pre.size}")
    return pre


def placement_from(args: argparse.Namespace) -> Any:
    from trtq.placement import PlacementConfig

    return PlacementConfig(
        exclude_nodes=tuple(names(args.exclude)),
        exclude_op_types=tuple(names(args.exclude_op_type)),
        keep_first_last=bool(args.keep_first_last),
        skip_small_convs=not getattr(args, "quantize_small", False),
        skip_gemv=not getattr(args, "quantize_small", False),
    )
