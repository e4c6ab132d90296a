"""trtq's command line: a thin face over the library.

Each command lives in its own module in this package and defines:

    NAME = "build"                  # the sub-command
    HELP = "one line for trtq --help"
    def add_arguments(parser) -> None
    def run(args) -> int            # calls one library function, prints, returns the exit code

Commands are discovered automatically, so adding one is adding a module. Errors: `UsageError` exits 2,
`TrtqError` exits 1, both as one line on stderr; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import warnings
from collections.abc import Sequence

from trtq import __version__
from trtq.errors import TrtqError, UsageError

__all__ = ["main", "build_parser"]


def _command_modules() -> list:
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars or informational lines")
    g.add_argument("--json", action="store_true", help="print machine-readable results (JSON) on stdout")
    g.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtq",
        description="PyTorch model -> validated INT8 (Q/DQ) ONNX -> TensorRT engine.",
    )
    parser.add_argument("--version", action="version", version=f"trtq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        _add_common(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from trtq.progress import set_quiet

    if not args.debug:  # torch's own deprecation chatter is not for trtq's users
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        logging.getLogger("torch.utils.cpp_extension").setLevel(
            logging.ERROR
        )  # "No CUDA runtime" on CPU hosts

    set_quiet(bool(args.quiet or args.json))
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("trtq: interrupted; no partial artifacts were left behind", file=sys.stderr)
        return 130
    except TrtqError as e:
        if args.debug:
            raise
        kind = "error" if isinstance(e, UsageError) else "failed"
        print(f"trtq {args.command}: {kind}: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
