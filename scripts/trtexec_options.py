#!/usr/bin/env python3
"""Write the option list of `trtexec --help` for TensorRT releases, read from NVIDIA's TensorRT sources.

    python scripts/trtexec_options.py TENSORRT_GIT_DIR [REF ...]

trtexec prints its help from `AllOptions::help` in `samples/common/sampleOptions.cpp` of NVIDIA/TensorRT;
this script reads that file at each release ref (a tag or release branch), keeps the option names the help
text lists (up to the safety builder's separate help), and writes `tests/data/trtexec/trtexec-<version>.txt`:
one option per line, `--name=` when the help shows it taking a value, under a header naming the source
(repository, ref, commit, file). The tests parse every trtexec command trtq prints against these lists.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "trtexec"
DEFAULT_REFS = ("v10.3.0", "v10.8.0", "release/10.12", "v10.16", "v11.0", "v11.1")
_FILE = "samples/common/sampleOptions.cpp"
_OPTION = re.compile(r'"\s{2}(--[A-Za-z][A-Za-z0-9]*)(=\S*)?((?:,\s*--[A-Za-z][A-Za-z0-9]*)*)')


def options(source: str) -> list[str]:
    """`--name` or `--name=` for every option the trtexec help text lists, in help order."""
    start = source.index("void BaseModelOptions::help")
    end = source.find("void SafeBuilderOptions::printHelp", start)
    out: list[str] = []
    for m in _OPTION.finditer(source[start : end if end > 0 else None]):
        value = "=" if m.group(2) else ""
        for name in [m.group(1), *re.findall(r"--[A-Za-z][A-Za-z0-9]*", m.group(3) or "")]:
            if name + value not in out:
                out.append(name + value)
    return out


def version_of(ref: str) -> str:
    return ref.split("/")[-1].lstrip("v")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    repo, refs = argv[0], argv[1:] or list(DEFAULT_REFS)
    OUT.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        git = ["git", "-C", repo]
        commit = subprocess.run(
            [*git, "rev-parse", ref], check=True, capture_output=True, text=True
        ).stdout.strip()
        text = subprocess.run(
            [*git, "show", f"{ref}:{_FILE}"], check=True, capture_output=True, text=True
        ).stdout
        names = options(text)
        path = OUT / f"trtexec-{version_of(ref)}.txt"
        header = [
            f"# trtexec options of TensorRT {version_of(ref)}: the options `trtexec --help` lists",
            f"# source: NVIDIA/TensorRT {ref} (commit {commit}), {_FILE}, AllOptions::help and the help",
            "# functions it calls; written by scripts/trtexec_options.py. '--name=' takes a value.",
        ]
        path.write_text("\n".join(header + names) + "\n", encoding="utf-8")
        print(f"{path.name}: {len(names)} options")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
