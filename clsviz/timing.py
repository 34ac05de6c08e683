"""Fair timing, in one place: the interleaved harness, per-stage clocks, percentiles, RSS.

Every latency clsviz reports (``compare``, ``bench``, ``evaluate``, the Explorer, the
notebooks) comes from :func:`interleaved_laps`:

* warm-up rounds run every contender untimed;
* each timed round runs every contender once, in an order shuffled per round by a seeded
  RNG, so a burst of noise on a shared machine hits all contenders alike;
* a contender is a callable returning ``{stage: seconds}`` (or ``{stage: [seconds, ...]}``
  when one call times several batches); :func:`staged` builds one from a classifier with
  the preprocess / forward / postprocess clocks; :func:`timed` wraps a plain callable;
* :func:`interleaved` reduces the laps to :class:`StageStats` (p50 / p90 / mean).
"""

from __future__ import annotations

import gc
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar, cast

import numpy as np
import psutil

from .errors import OptionError
from .results import StageStats

clock = time.perf_counter
wall_clock = time.time  # epoch seconds: spans from several processes (Ray workers) line up

T = TypeVar("T")

Laps = Mapping[str, "float | Sequence[float]"]  # a string: `|` on types needs Python 3.10 at run time
Contender = Callable[[], Laps]


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    try:
        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    except (psutil.Error, OSError):  # pragma: no cover
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


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
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Restart the kernel's RSS high-water mark (Linux ≥ 4.0), e.g. to leave imports out of a peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_peak_mb(fn: Callable[[], object]) -> float:
    """How far this process's RSS rose above its level at the start of one ``fn()`` call, in MiB.

    Uses the kernel's high-water mark (reset first), so transient buffers count; ``nan`` where
    the mark cannot be reset.  Call it outside any timed region.
    """
    gc.collect()  # garbage freed during fn() would otherwise hide fn's own rise
    if not reset_peak_rss():
        return float("nan")
    base = rss_mb()
    fn()
    return max(0.0, peak_rss_mb() - base)


def spanned(fn: Callable[[], T]) -> tuple[T, tuple[float, float]]:
    """Call ``fn()`` once: its result and the wall-clock span ``(start, end)`` it ran in (epoch
    seconds, comparable across processes, so a Ray worker's batches line up with the driver's)."""
    t0 = wall_clock()
    out = fn()
    return out, (t0, wall_clock())


# --------------------------------------------------------------------------------------------
# contenders
# --------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> Contender:
    """A contender that times one plain call as stage ``total``."""

    def run() -> dict[str, float]:
        t0 = clock()
        fn()
        return {"total": clock() - t0}

    return run


def timed_cpu(fn: Callable[[], object]) -> Contender:
    """A contender that records wall time (``total``) and process CPU time, all threads (``cpu``)."""

    def run() -> dict[str, float]:
        c0, t0 = time.process_time(), clock()
        fn()
        return {"total": clock() - t0, "cpu": time.process_time() - c0}

    return run


def staged(
    clf, chunks: Sequence[Sequence], *, top_k: int = 5, names: Sequence[str] | None = None, sink: dict | None = None
) -> Contender:
    """A contender running ``clf`` on each chunk (one batch each) with three clocks per batch.

    Returns per-batch laps for ``preprocess``, ``forward`` (engine call + output check),
    ``postprocess`` and ``total``.  If ``sink`` is given, the last call's raw outputs
    (concatenated) and predictions are left in ``sink["outputs"]`` / ``sink["predictions"]``.
    """
    offsets = [sum(len(c) for c in chunks[:i]) for i in range(len(chunks))]

    def run() -> dict[str, list[float]]:
        laps: dict[str, list[float]] = {"preprocess": [], "forward": [], "postprocess": [], "total": []}
        outs, preds = [], []
        for off, chunk in zip(offsets, chunks):
            t0 = clock()
            batch = clf.preprocess(chunk)
            t1 = clock()
            o = clf.check_output(clf.forward(batch), len(batch))
            t2 = clock()
            p = clf.postprocess(o, top_k, None if names is None else list(names[off : off + len(chunk)]))
            t3 = clock()
            outs.append(o)
            preds.extend(p)
            laps["preprocess"].append(t1 - t0)
            laps["forward"].append(t2 - t1)
            laps["postprocess"].append(t3 - t2)
            laps["total"].append(t3 - t0)
        if sink is not None:
            sink["outputs"] = np.concatenate(outs) if outs else None
            sink["predictions"] = preds
        return laps

    return run


# --------------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------------


def interleaved_laps(
    contenders: Mapping[str, Contender],
    *,
    repeats: int,
    warmup: int = 3,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
    on_call: Callable[[str, bool], object] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Run contenders side by side and return their raw laps (seconds), ``{name: {stage: [...]}}``.

    ``warmup`` untimed rounds run every contender in the given order; then each of ``repeats``
    timed rounds runs every contender once, in an order shuffled per round by
    ``random.Random(seed)``.  ``progress(round, repeats)`` is called after each timed round,
    ``on_call(name, timed)`` after every call (warm-up included).
    """
    if repeats < 1 or warmup < 0:
        raise OptionError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    if not contenders:
        raise OptionError("nothing to time: no contenders")
    for _ in range(warmup):
        for k, fn in contenders.items():
            fn()
            if on_call is not None:
                on_call(k, False)
    rng = random.Random(seed)
    order = list(contenders)
    laps: dict[str, dict[str, list[float]]] = {k: {} for k in contenders}
    for r in range(repeats):
        rng.shuffle(order)
        for k in order:
            for stage, dt in contenders[k]().items():
                got = laps[k].setdefault(stage, [])
                if isinstance(dt, (list, tuple)):
                    got.extend(dt)
                else:
                    got.append(cast(float, dt))
            if on_call is not None:
                on_call(k, True)
        if progress is not None:
            progress(r + 1, repeats)
    return laps


def interleaved(
    contenders: Mapping[str, Contender],
    *,
    repeats: int,
    warmup: int = 3,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> dict[str, dict[str, StageStats]]:
    """:func:`interleaved_laps` reduced to ``{name: {stage: StageStats}}`` (milliseconds)."""
    laps = interleaved_laps(contenders, repeats=repeats, warmup=warmup, seed=seed, progress=progress)
    return {k: {s: StageStats.of(v) for s, v in d.items()} for k, d in laps.items()}


def time_call(fn: Callable[[], object], *, repeats: int = 30, warmup: int = 3) -> StageStats:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` timed; per-call stats.

    One contender alone; to compare several, time them together with :func:`interleaved`.
    """
    return interleaved({"fn": timed(fn)}, repeats=repeats, warmup=warmup)["fn"]["total"]
