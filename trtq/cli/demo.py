"""`trtq demo`: the offline demos built end to end: a digits CNN (`--task classify`, the default) or a digits
detector scored by mAP (`--task detect`), both trained on scikit-learn's data."""

from __future__ import annotations

import argparse
import shlex

from trtq.cli._common import emit, summary_text

NAME = "demo"
HELP = (
    "train a small CNN (or, with --task detect, a detector) on scikit-learn's digits, offline, and build it"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        choices=("classify", "detect"),
        default="classify",
        help="classify: a digits CNN, scored by top-1; detect: a detector on scenes of digits, scored by COCO mAP",
    )
    p.add_argument(
        "--out",
        "-o",
        default=None,
        help="folder for the demo data, model and run (default runs/demo, runs/demo-detect)",
    )
    p.add_argument(
        "--calib", default="entropy", help="calibration method (any registered one, or all; default entropy)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing demo folder")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the demo data, training and calibration (default 0)"
    )
    det = p.add_argument_group("detection demo (--task detect)")
    det.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs of the detector (default 10, about two minutes)",
    )
    det.add_argument(
        "--train-scenes", type=int, default=None, help="training scenes of the detector (default 2000)"
    )
    det.add_argument(
        "--disable-rule",
        action="append",
        default=[],
        metavar="NAME",
        help="placement rule to turn off in the demo's build (e.g. DetectionHead, to see what it is worth)",
    )


def run(args: argparse.Namespace) -> int:
    if args.task == "detect":
        return _detect(args)
    from trtq.errors import UsageError

    for option, given in (("--epochs", args.epochs is not None), ("--train-scenes", args.train_scenes is not None),
                          ("--disable-rule", bool(args.disable_rule))):  # fmt: skip
        if given:
            raise UsageError(f"{option} applies to the detection demo: add --task detect")
    from trtq.demo import run_demo

    demo = run_demo(args.out or "runs/demo", calib=args.calib, force=args.force, seed=args.seed)
    text = (
        f"demo model trained in {demo.files.train_seconds:.1f} s; same build by hand:\n"
        f"  {shlex.join(demo.command)}\n" + summary_text(demo.build)
    )
    emit(args, demo.to_json(), text)
    return 0


def _detect(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from trtq.demo_detect import TrainSettings
    from trtq.demo_detect_run import run_detect_demo
    from trtq.errors import UsageError
    from trtq.placement import PlacementConfig

    settings = TrainSettings(seed=args.seed)
    for option, value, name in (
        ("--epochs", args.epochs, "epochs"),
        ("--train-scenes", args.train_scenes, "scenes"),
    ):
        if value is not None:
            if value < 1:
                raise UsageError(f"{option} {value}: give a positive number")
            settings = replace(settings, **{name: value})

    PlacementConfig(disable_rules=tuple(args.disable_rule)).validate()  # unknown names fail before training
    demo = run_detect_demo(
        args.out or "runs/demo-detect", calib=args.calib, force=args.force, seed=args.seed, settings=settings,
        disable_rules=tuple(args.disable_rule),
    )  # fmt: skip
    emit(args, demo.to_json(), demo.text() + "\n" + summary_text(demo.build))
    return 0
