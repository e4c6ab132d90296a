"""A parser of trtexec command lines against the option list `trtexec --help` prints for a TensorRT version.

The lists in tests/data/trtexec/ were read from NVIDIA's TensorRT sources (`scripts/trtexec_options.py`; each
file names its tag and commit).
"""

from __future__ import annotations

import shlex
from pathlib import Path

DATA = Path(__file__).parents[1] / "data" / "trtexec"

#: TensorRT version of each list -> the hand-off target whose commands it must accept
VERSIONS = {
    "10.3.0": "trt10_weak", "10.8.0": "trt10_weak", "10.12": "trt10_strong", "10.16": "trt10_strong",
    "11.0": "trt11", "11.1": "trt11",
}  # fmt: skip


def trtexec_options(version: str) -> dict[str, bool]:
    """option name -> whether it takes a value, for one TensorRT version."""
    lines = (DATA / f"trtexec-{version}.txt").read_text(encoding="utf-8").splitlines()
    out: dict[str, bool] = {}
    for line in lines:
        if line and not line.startswith("#"):
            out[line.rstrip("=")] = line.endswith("=")
    return out


def parse_trtexec(command: str, version: str) -> dict[str, str | None]:
    """The options of a trtexec command line; ValueError naming the first flag that version does not have."""
    argv = shlex.split(command)
    if not argv or argv[0] != "trtexec":
        raise ValueError(f"not a trtexec command: {command!r}")
    known = trtexec_options(version)
    parsed: dict[str, str | None] = {}
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        if not name.startswith("--") or name not in known:
            raise ValueError(f"TensorRT {version}'s trtexec has no option {name}")
        if known[name] and not (eq and value):
            raise ValueError(f"{name} takes a value in TensorRT {version}'s trtexec")
        parsed[name] = value if eq else None
    return parsed
