"""Cold starts: build, first run and peak RSS of one mode in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import psutil

from ..engines import load
from ..timing import _vm_hwm_mb, clock, peak_rss_mb, rss_mb
from ..timing import reset_peak_rss as _reset_peak_rss
from .rows import ColdStart


def cold_start(bundle, mode: str, *, timeout: float = 600, **options) -> ColdStart:
    """Build ``mode`` from ``bundle`` in a fresh Python process; build time, first runs, RSS."""
    cmd = [sys.executable, "-m", "clsviz.bench", "--cold-start", str(bundle), mode, json.dumps(options)]
    env = dict(os.environ)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return ColdStart(mode, {}, error=" | ".join(tail) or f"exit {r.returncode}")
    return ColdStart.from_dict(mode, json.loads(lines[-1]))


def _cold_worker(bundle: str, mode: str, options: str) -> None:
    t_import = time.time() - psutil.Process().create_time()  # interpreter + numpy + paddle + clsviz

    rss_before = rss_mb()
    reset = _reset_peak_rss()
    clf = load(bundle, mode=mode, **json.loads(options))
    rss_built = rss_mb()
    x1 = clf.config.preprocess.probe(1)  # the model's own input signature
    t0 = clock()
    clf.forward(x1)
    first = clock() - t0
    t0 = clock()
    clf.forward(x1)
    second = clock() - t0
    x8 = np.repeat(x1, 8, axis=0)
    t0 = clock()
    clf.forward(x8)
    first8 = clock() - t0
    hwm = _vm_hwm_mb() if reset else None
    peak = hwm if hwm is not None else peak_rss_mb()
    print(
        json.dumps(
            {
                "mode": mode,
                "startup_s": round(t_import, 3),
                "build_s": round(clf.build_seconds, 4),
                "first_forward_ms": round(first * 1e3, 2),
                "second_forward_ms": round(second * 1e3, 2),
                "first_forward_b8_ms": round(first8 * 1e3, 2),
                "rss_after_import_mb": round(rss_before, 1),
                "rss_after_build_mb": round(rss_built, 1),
                "rss_after_runs_mb": round(rss_mb(), 1),
                "peak_rss_mb": round(peak, 1),
                "peak_over_import_mb": round(peak - rss_before, 1),
                "peak_source": "VmHWM reset after import" if hwm is not None else "ru_maxrss (includes import)",
            }
        )
    )
