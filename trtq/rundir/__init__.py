"""Run folders: made, marked, replaced and removed so that a user's own files are never lost.

Every folder trtq makes for a run (`trtq build --out`, `trtq sensitivity --out`, `trtq qat --out`, the demo)
carries a marker file, `.trtq-run` (JSON: trtq version, command, creation time, process, and the entries
trtq wrote). The rules that follow from it:

- `--force` replaces only a folder with trtq's marker, and only when every entry in it is one the marker
  lists; otherwise trtq refuses and names the files it did not write. It never replaces the current folder,
  a parent of it, the home folder, `/`, or a folder holding one of the run's inputs.
- A staged run (`staged_dir`) is assembled in a hidden sibling, `.NAME.partial-PID.START-XXXX`; the old run
  is removed only after the new one is complete, and the swap is one rename (`renameat2(RENAME_EXCHANGE)`
  where the kernel has it, two renames otherwise).
- The staging folder carries its process id and start time in its name and the marker from its first
  moment, so a folder left by SIGKILL or a power cut is recognised by the next run into the same `--out`
  (its process is gone) and removed.
- Folders and files get the modes the umask asks for, like any other tool's output.

`remove_run_folder` is the one function that deletes a run folder; it removes only what the marker lists
(everything, for a staging folder of this process) and leaves anything else where it is.
"""

from trtq.rundir.checks import FS_ERRNOS, check_out_folder, os_error_message
from trtq.rundir.folders import (
    clean_stale,
    finish_in_place,
    note_written,
    open_runs,
    prepare_out_dir,
    record,
    remove_run_folder,
    staged_dir,
)
from trtq.rundir.marker import (
    MARKER,
    MARKER_FORMAT,
    RunMarker,
    current_umask,
    file_mode,
    folder_mode,
    read_marker,
)

__all__ = [
    "MARKER",
    "MARKER_FORMAT",
    "RunMarker",
    "read_marker",
    "check_out_folder",
    "staged_dir",
    "prepare_out_dir",
    "remove_run_folder",
    "clean_stale",
    "note_written",
    "record",
    "open_runs",
    "finish_in_place",
    "file_mode",
    "folder_mode",
    "current_umask",
    "os_error_message",
    "FS_ERRNOS",
]
