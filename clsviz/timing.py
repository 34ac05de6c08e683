"""Fair timing: warm-up excluded, repeats, percentiles, per-stage clocks, RSS."""
from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass

from .results import StageStats

clock = time.perf_counter


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / 2 ** 20
    except Exception:  # pragma: no cover
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (or since :func:`reset_peak_rss`), in MiB.

    On Linux this is the kernel's high-water mark of this process's own memory (``VmHWM``);
    ``ru_maxrss`` would also count the parent's peak, which survives fork and exec.
    """
    hwm = _vm_hwm_mb()
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Restart the kernel's RSS high-water mark (Linux ≥ 4.0), e.g. to leave imports out of a peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def time_call(fn, *, repeats: int = 30, warmup: int = 3) -> StageStats:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` timed; per-call stats."""
    for _ in range(warmup):
        fn()
    laps = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        laps.append(clock() - t0)
    return StageStats.of(laps)
