"""`trtq demo`: the offline demo (a digits CNN trained on scikit-learn's data) built end to end."""

from __future__ import annotations

import argparse
import shlex

from trtq.cli._common import emit, summary_text

NAME = "demo"
HELP = "train a small CNN on scikit-learn's digits (offline) and run trtq build on it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", default="runs/demo", help="folder for the demo data, model and run")
    p.add_argument(
        "--calib", default="entropy", help="calibration method (any registered one, or all; default entropy)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing demo folder")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from trtq.demo import run_demo

    demo = run_demo(args.out, calib=args.calib, force=args.force, seed=args.seed)
    text = (
        f"demo model trained in {demo.files.train_seconds:.1f} s; same build by hand:\n"
        f"  {shlex.join(demo.command)}\n" + summary_text(demo.build)
    )
    emit(args, demo.to_json(), text)
    return 0
