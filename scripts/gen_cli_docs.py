#!/usr/bin/env python3
"""Write docs/cli.md from trtq's own argument parser, so the CLI reference cannot drift from the CLI.

    python scripts/gen_cli_docs.py            # (re)write docs/cli.md
    python scripts/gen_cli_docs.py --check    # exit 1 if docs/cli.md differs from what the CLI says

The page is rendered from `trtq.cli.build_parser()` (every sub-command, argument group, option, default
and choice), not from `--help` text, whose wrapping and layout change with the terminal width and the
Python version. Option groups that every command shares (e.g. `--quiet/--json/--debug`) are listed once.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "cli.md"
REGENERATE = "python scripts/gen_cli_docs.py"

__all__ = ["render", "main"]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """name -> (sub-parser, one-line help), in the order the CLI lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (p, helps.get(name, "")) for name, p in action.choices.items()}
    return {}


def _cell(text: str) -> str:
    """Text made safe for one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _expand_help(action: argparse.Action, prog: str) -> str:
    text = str(action.help or "")  # str() renders trtq's LazyHelp texts
    if text == argparse.SUPPRESS:
        return ""
    if "%" in text:  # argparse's own %(default)s / %(choices)s expansion
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        if params.get("choices") is not None:
            params["choices"] = ", ".join(str(c) for c in params["choices"])
        text = text % params
    return text


def _choices(action: argparse.Action) -> str:
    choices = action.choices
    if choices is None or isinstance(action, argparse._SubParsersAction):
        return ""
    if isinstance(choices, range) and choices.step == 1 and len(choices) > 1:
        return f"{choices.start} to {choices.stop - 1}"
    return ", ".join(f"`{c}`" for c in choices)


def _metavar(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        mv = action.metavar
        return " ".join(mv) if isinstance(mv, tuple) else str(mv)
    if action.choices is not None and not isinstance(action.choices, range):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


def _signature(action: argparse.Action) -> str:
    """`-m, --model MODEL` for options, `NAME` for positionals."""
    mv = _metavar(action)
    if not action.option_strings:
        return mv or action.dest
    # long options first, the way users type them
    names = sorted(action.option_strings, key=lambda s: (not s.startswith("--"), s))
    names_text = ", ".join(names)
    if action.nargs in ("?",):
        return f"{names_text} [{mv}]"
    if action.nargs in ("*", "+"):
        return f"{names_text} {mv} ..."
    return f"{names_text} {mv}".rstrip()


def _default(action: argparse.Action) -> str:
    d = action.default
    if action.required:
        return "**required**"
    if d is None or d is argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(d, (list, tuple)) and not d:
        return ""
    if isinstance(d, tuple):
        d = ",".join(str(v) for v in d)
    return f"`{d}`"


def _row(action: argparse.Action, prog: str) -> str:
    desc = _expand_help(action, prog)
    extras = []
    choices = _choices(action)
    if choices and "{" not in _signature(action):  # the signature shows {a,b} already
        extras.append(choices if isinstance(action.choices, range) else f"one of {choices}")
    if isinstance(action, argparse._AppendAction) and "repeatable" not in desc:
        extras.append("repeatable")
    if extras:
        desc = f"{desc} ({'; '.join(extras)})" if desc else "; ".join(extras).capitalize()
    return f"| `{_cell(_signature(action))}` | {_cell(_default(action))} | {_cell(desc) or '-'} |"


def _groups(parser: argparse.ArgumentParser) -> list[tuple[str, list[argparse.Action]]]:
    """(title, actions) per argument group, without -h/--help and empty groups; stable titles."""
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        actions = [a for a in actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        if group is parser._positionals:
            title = "arguments"
        elif group is parser._optionals:
            title = "options"
        else:
            title = group.title or "options"
        out.append((title, actions))
    return out


def _table(actions: Sequence[argparse.Action], prog: str) -> list[str]:
    lines = ["| option | default | description |", "|---|---|---|"]
    lines += [_row(a, prog) for a in actions]
    return lines


def _group_key(title: str, actions: Sequence[argparse.Action], prog: str) -> tuple:
    return (title, tuple(_row(a, prog) for a in actions))


def _usage(name: str, parser: argparse.ArgumentParser) -> str:
    """`trtq build --model MODEL --out OUT [options]`: positionals and required options, then the rest."""
    parts = [f"trtq {name}"]
    for _, actions in _groups(parser):
        for a in actions:
            if not a.option_strings:
                parts.append(_metavar(a) or a.dest)
            elif a.required:
                long = max(a.option_strings, key=len)
                parts.append(f"{long} {_metavar(a)}".rstrip())
    parts.append("[options]")
    return " ".join(parts)


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole docs/cli.md text for `parser` (default: `trtq.cli.build_parser()`)."""
    if parser is None:
        from trtq.cli import build_parser

        parser = build_parser()
    commands = _subcommands(parser)

    # groups every command has, identical everywhere: documented once
    per_command = {name: _groups(p) for name, (p, _) in commands.items()}
    keys = [{_group_key(t, acts, "trtq") for t, acts in groups} for groups in per_command.values()]
    shared = set.intersection(*keys) if keys else set()

    lines = [
        "# Command line reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from `trtq.cli.build_parser()`. Do not edit by hand: -->",
        "<!-- change the command's module under trtq/cli/ and regenerate; tests/test_docs.py checks it. -->",
        "",
        f"`{parser.prog}`: {parser.description or ''}".rstrip(),
        "",
        "```text",
        f"{parser.prog} [--version] COMMAND [options]",
        f"{parser.prog} COMMAND --help",
        "```",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name, (_, help_text) in commands.items():
        lines.append(f"| [`{name}`](#trtq-{name}) | {_cell(help_text)} |")
    lines.append("")
    lines.append(
        "Exit codes: 0 success, 1 the work failed (`TrtqError`), 2 a usage error (bad option, missing file), "
        "130 interrupted. Errors are one line on stderr; `--debug` shows the traceback."
    )
    lines.append("")

    if shared:
        lines += ["## Options every command takes", ""]
        first = next(iter(per_command.values()))
        for title, actions in first:
            if _group_key(title, actions, "trtq") in shared:
                lines += [f"{title}:", "", *_table(actions, "trtq"), ""]

    for name, (sub, help_text) in commands.items():
        lines += [f"## trtq {name}", ""]
        description = sub.description or help_text
        if description:
            lines += [" ".join(description.split()), ""]
        lines += ["```text", _usage(name, sub), "```", ""]
        for title, actions in per_command[name]:
            if _group_key(title, actions, "trtq") in shared:
                continue
            lines += [f"{title}:", "", *_table(actions, sub.prog), ""]
        if shared:
            lines += ["Also the [options every command takes](#options-every-command-takes).", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is stale instead of writing it")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="file to write or check")
    args = ap.parse_args(argv)

    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current == text:
            print(f"{args.output} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), str(args.output), "generated", lineterm="", n=1
        )
        shown = list(diff)[:40]
        print("\n".join(shown), file=sys.stderr)
        print(f"{args.output} is stale: run `{REGENERATE}` and commit it", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    from trtq.files import write_text

    write_text(args.output, text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
