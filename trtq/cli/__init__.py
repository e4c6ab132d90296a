"""trtq's command line: a thin face over the library.

Each command lives in its own module in this package and defines:

    NAME = "build"                  # the sub-command
    HELP = "one line for trtq --help"
    def add_arguments(parser) -> None
    def run(args) -> int            # builds a config from the options, calls one library function, prints

Commands are discovered automatically, so adding one is adding a module. Errors: `UsageError` exits 2,
`TrtqError` exits 1, both as one line on stderr; `--debug` shows the traceback (same exit codes). Ctrl-C
(exit 130), SIGTERM (143) and SIGHUP (129) clean up like a failure and say so in one line; a full disk, a
read-only or unwritable folder is one line too (exit 1). With `--json` stdout holds the JSON result and
nothing else: everything else printed while the command runs goes to stderr.
`--plugin MODULE` (before or after the command; repeatable) imports a module that registers calibrators,
placement rules or metrics before the options are read.
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
from trtq.cli._guard import Terminated, fs_error_line, interrupted_line, json_stdout, termination_signals
from trtq.errors import TrtqError, UsageError, set_cli

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
    g.add_argument("--plugin", action="append", metavar="MODULE", default=argparse.SUPPRESS,
                   help="import a module that registers calibrators, rules or metrics (repeatable)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from trtq.cli._options import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="trtq",
        description="PyTorch model -> validated INT8 (Q/DQ) ONNX -> TensorRT engine.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trtq {__version__}")
    parser.add_argument("--plugin", action="append", metavar="MODULE", default=argparse.SUPPRESS,
                        help="import a module that registers calibrators, rules or metrics (repeatable)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=HelpFormatter,
        )
        mod.add_arguments(p)
        _add_common(p)
        long = {a.dest: max(a.option_strings, key=len) for a in p._actions if a.option_strings}
        p.set_defaults(_run=mod.run, _option_names=long)
    return parser


def _plugins_in(argv: Sequence[str]) -> list[str]:
    """The --plugin values of a command line, wherever they stand (read before the parser is built)."""
    out, args = [], list(argv)
    for i, a in enumerate(args):
        if a == "--plugin" and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def _quiet_dependencies() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPU hosts


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    set_cli(True)
    try:
        return _main(argv)
    finally:
        set_cli(False)


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        if not any(a in ("-h", "--help", "--version") for a in argv[:1]):
            from trtq.plugins import load_plugins

            load_plugins(_plugins_in(argv))
        parser = build_parser()
    except TrtqError as e:
        print(f"trtq: error: {e}", file=sys.stderr)
        if debug:
            import traceback

            traceback.print_exc()
        return e.exit_code
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from trtq.progress import set_quiet

    if not args.debug:  # torch's own deprecation chatter is not for trtq's users
        _quiet_dependencies()
    set_quiet(bool(args.quiet or args.json))
    try:
        from trtq.cli._options import check_paths

        check_paths(args)
        with termination_signals(), json_stdout(bool(args.json)):
            return int(args._run(args) or 0)
    except KeyboardInterrupt as e:  # Ctrl-C, and SIGTERM / SIGHUP (Terminated)
        print(interrupted_line(e), file=sys.stderr)
        if args.debug:
            import traceback

            traceback.print_exc()
        return 128 + (e.signum if isinstance(e, Terminated) else 2)
    except TrtqError as e:
        kind = "error" if isinstance(e, UsageError) else "failed"
        print(f"trtq {args.command}: {kind}: {e}", file=sys.stderr)
        if args.debug:
            import traceback

            traceback.print_exc()
        return e.exit_code
    except OSError as e:
        line = fs_error_line(e)
        if line is None:
            raise
        print(f"trtq {args.command}: failed: {line}", file=sys.stderr)
        if args.debug:
            import traceback

            traceback.print_exc()
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
