"""The marker `.trtq-run` every run folder carries, the process identity staging folders are named by, and the
file modes the umask asks for."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["MARKER", "MARKER_FORMAT", "RunMarker", "read_marker", "current_umask", "file_mode", "folder_mode",
           "start_ticks", "alive", "command_name"]  # fmt: skip

#: The marker file in every folder trtq makes for a run.
MARKER = ".trtq-run"
#: The `format` of the marker.
MARKER_FORMAT = "trtq.run/1"


def current_umask() -> int:
    """The process umask (read from /proc where possible, so it is never changed, even for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file under the umask (0644 with the usual umask 022)."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """Mode of a new folder under the umask (0755 with the usual umask 022)."""
    return 0o777 & ~current_umask()


# the process identity a staging folder is named by ---------------------------------------------------------
def start_ticks(pid: int) -> int:
    """The start time of process `pid` in clock ticks since boot (0 where /proc does not say)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def alive(pid: int, start: int) -> bool:
    """Whether process `pid` is running and is the one that started at `start` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return True
    now = start_ticks(pid)
    return not (start and now and now != start)


# the marker -----------------------------------------------------------------------------------------------
@dataclass
class RunMarker:
    """What `.trtq-run` says about a folder.

    Attributes:
        command: the trtq command that made it ("build", "qat", "sensitivity", "demo", or "python").
        state: "staging" (being assembled), "complete" (renamed into place), "in-place" (written in place).
        files: the top-level entries trtq wrote there (the marker itself excluded).
    """

    command: str
    state: str = "staging"
    files: list[str] = field(default_factory=list)
    format: str = MARKER_FORMAT
    trtq_version: str = ""
    created: str = ""
    host: str = ""
    pid: int = 0
    pid_start: int = 0

    @classmethod
    def new(cls, command: str, state: str) -> RunMarker:
        from trtq import __version__

        return cls(
            command=command, state=state, trtq_version=__version__, host=socket.gethostname(), pid=os.getpid(),
            pid_start=start_ticks(os.getpid()), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip

    def write(self, folder: Path) -> None:
        from trtq.files import write_text

        write_text(folder / MARKER, json.dumps(asdict(self), indent=2) + "\n")


def read_marker(folder: str | os.PathLike) -> RunMarker | None:
    """The marker of `folder`, or None when there is none (or it is not trtq's)."""
    path = Path(folder) / MARKER
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT:
        return None
    known = RunMarker.__dataclass_fields__
    try:
        return RunMarker(**{k: v for k, v in doc.items() if k in known})
    except TypeError:
        return None


def command_name() -> str:
    from trtq.errors import in_cli

    if in_cli() and len(sys.argv) > 1:
        return next((a for a in sys.argv[1:] if not a.startswith("-")), "trtq")
    return "python"
