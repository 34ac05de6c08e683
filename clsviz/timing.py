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


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


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
