"""Peak resident memory per stage, recorded beside the stage's wall time (report.json `memory_mb`).

`ru_maxrss` (and /proc's VmHWM) is the peak of the whole process so far, so it cannot say which stage used
the memory once an earlier stage set a higher peak. `RssPeak` samples the resident set size from
/proc/self/statm in a light background thread (every `interval` seconds, about 10 microseconds a read)
while a stage runs, and takes the process's VmHWM at the end where the stage raised it (then the stage's
peak is exact, not sampled). A spike shorter than the interval that does not raise the process peak can be
missed; memory that a stage holds long enough to matter is not. Where /proc is missing (not Linux) the
peaks are not recorded.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

__all__ = ["RssPeak", "current_rss_mb", "process_peak_mb", "release_memory"]

_MB = 1024.0 * 1024.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mb() -> float | None:
    """This process's resident set size now, in MiB (None where /proc/self/statm is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / _MB
    except (OSError, IndexError, ValueError):
        return None


def process_peak_mb() -> float | None:
    """The peak resident set size of this process so far (VmHWM), in MiB (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, IndexError, ValueError):
        return None
    return None


def release_memory() -> None:
    """Collect garbage and hand the C allocator's free memory back to the system (glibc's `malloc_trim`).

    Between stages: freed arrays and ONNX Runtime sessions otherwise stay in the allocator's pools, so the
    process keeps the peak of every earlier stage resident. A no-op where glibc is not the C library.
    """
    import gc

    gc.collect()
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)
    except OSError:  # no C library to load (not a POSIX system)
        pass


class RssPeak:
    """Context manager: the peak resident memory (MiB) while the block ran, in `peak_mb` (None without /proc).

    Args:
        interval: seconds between samples.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hwm_start: float | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = current_rss_mb()
            if now is not None and (self.peak_mb is None or now > self.peak_mb):
                self.peak_mb = now

    def __enter__(self) -> RssPeak:
        self.peak_mb = current_rss_mb()
        if self.peak_mb is None:
            return self
        self._hwm_start = process_peak_mb()
        self._thread = threading.Thread(target=self._sample, name="trtq-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        now, hwm = current_rss_mb(), process_peak_mb()
        peaks = [p for p in (self.peak_mb, now) if p is not None]
        if hwm is not None and self._hwm_start is not None and hwm > self._hwm_start:
            peaks.append(hwm)  # the stage set a new process peak: VmHWM is its exact peak
        self.peak_mb = max(peaks) if peaks else None
