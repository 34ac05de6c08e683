"""What clsviz adds around each engine: ``Classifier.forward`` vs the engine's raw call."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..engines import Classifier, load
from ..results import StageStats
from ..timing import Contender, clock, interleaved_laps, timed
from .fixtures import bench_images, prepare_bundle
from .machine import machine_info
from .rows import OverheadRow


def overhead(
    classifiers: Mapping[str, Classifier], batch: np.ndarray, *, repeats: int = 30, warmup: int = 5, seed: int = 0
) -> dict:
    """``Classifier.forward`` vs the raw Paddle loop, side by side on the same engine and input.

    For each mode the two run interleaved (shuffled order per round) for ``max(30, repeats)``
    rounds after ``warmup``; the ratio is median(clsviz) / median(raw), with a bootstrap
    95 % interval, the median of the per-round ratios and of the per-round differences.
    The raw side is the engine's own :meth:`~clsviz.engines.base.Classifier.raw_call`; a mode
    without one in this process (the legacy executor's worker) is left out.
    """
    repeats = max(30, int(repeats))
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    result = {}
    for mode, clf in classifiers.items():
        rc = clf.raw_call()
        if rc is None:  # e.g. the legacy executor: its engine lives in a worker process
            continue

        def raw_timed(rc=rc):
            # a raw script sits in its engine's state throughout (static mode for the executor),
            # so only the engine call is on its clock; clsviz enters and leaves that state on
            # every call, and that counts as overhead
            with rc.scope():
                t0 = clock()
                out = rc.fn(batch)
                dt = clock() - t0
            return {"total": dt, "_out": out}

        same = float(np.max(np.abs(np.asarray(clf.forward(batch)) - np.asarray(raw_timed()["_out"]))))
        contenders: dict[str, Contender] = {
            "clsviz": timed(functools.partial(clf.forward, batch)),
            "raw": functools.partial(_total_only, raw_timed),
        }
        laps = interleaved_laps(contenders, repeats=repeats, warmup=warmup, seed=seed)
        lc, lr = np.asarray(laps["clsviz"]["total"]), np.asarray(laps["raw"]["total"])
        c, r = StageStats.of(lc), StageStats.of(lr)
        result[mode] = OverheadRow.from_dict(
            mode,
            {
                "clsviz_ms": c.to_dict(),
                "raw_ms": r.to_dict(),
                "ratio": round(c.p50 / r.p50, 4),
                # the same, round by round: robust to slow drifts in machine load
                "paired_ratio": round(float(np.median(lc / lr)), 4),
                "paired_diff_ms": round(float(np.median(lc - lr)) * 1e3, 4),
                "ratio_ci95": _bootstrap_ratio_ci(lc, lr, seed=seed),
                "max_abs_diff": same,
            },
        )
    return result


def _bootstrap_ratio_ci(a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0) -> list[float]:
    """95 % interval of median(a) / median(b), resampling whole rounds (the pairs stay together)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    r = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    return [round(float(v), 4) for v in np.percentile(r, [2.5, 97.5])]


FIXED_COST_ARCH, FIXED_COST_SIZE, FIXED_COST_ROUNDS = "ResNet18_vd_x0_25", 32, 300
OVERHEAD_ROUNDS = 60  # twice the minimum: a 5 % effect is near the noise of a shared machine


def fixed_costs(
    workdir, *, modes=("predictor", "dygraph", "executor"), rounds: int = FIXED_COST_ROUNDS, seed: int = 0
) -> dict:
    """What clsviz adds per ``forward`` call, in ms, measured where it is not drowned by the network.

    The wrapper's work (argument checks, mode scopes, thread count) does not depend on the
    network, so it is timed on a tiny one (ResNet18_vd_x0_25 at 32×32, ~1 ms a run) over
    ``rounds`` interleaved rounds: the median of the per-round differences clsviz − raw.
    On a big network the same cost hides inside run-to-run noise of several percent.
    """
    bundle, _ = prepare_bundle(FIXED_COST_ARCH, Path(workdir) / "fixed_cost", image_size=FIXED_COST_SIZE, seed=seed)
    clfs = {m: load(bundle, mode=m) for m in modes}
    x = np.random.default_rng(seed).standard_normal((1, 3, FIXED_COST_SIZE, FIXED_COST_SIZE)).astype(np.float32)
    res = overhead(clfs, x, repeats=rounds, warmup=10, seed=seed)
    for c in clfs.values():
        c.close()
    return {
        m: {"fixed_cost_ms": v.paired_diff_ms, "tiny_raw_ms": v.raw_ms.p50, "rounds": rounds} for m, v in res.items()
    }


def _with_bounds(ovh: dict[str, OverheadRow], fixed: dict) -> dict[str, OverheadRow]:
    """Add ``bound_ratio`` = 1 + fixed cost / raw p50 on the big network (noise-free estimate)."""
    return {m: v.with_fixed_cost(fixed[m]["fixed_cost_ms"]) if m in fixed else v for m, v in ovh.items()}


def overhead_only(
    model: str = "ResNet50_vd",
    *,
    repeats: int = 30,
    image_size: int = 224,
    modes=("predictor", "dygraph", "executor"),
    seed: int = 0,
    workdir=None,
) -> dict:
    """Just the overhead check (what ``bench --overhead`` runs)."""
    tmp = tempfile.TemporaryDirectory(prefix="clsviz-bench-") if workdir is None else None
    try:
        wd = Path(tmp.name if tmp is not None else workdir)
        bundle, arch = prepare_bundle(model, wd, image_size=image_size, seed=seed)
        clfs = {m: load(bundle, mode=m) for m in modes}
        paths, _ = bench_images(1, wd)
        x = clfs[modes[0]].preprocess(paths[:1])
        res = overhead(clfs, x, repeats=max(OVERHEAD_ROUNDS, repeats), seed=seed)
        for c in clfs.values():
            c.close()
        res = _with_bounds(res, fixed_costs(wd, modes=modes, seed=seed))
        return {
            "overhead_ratio": {m: v.ratio for m, v in res.items()},
            "overhead_bound": {m: v.bound_ratio for m, v in res.items()},
            "model": model,
            "arch": arch,
            "batch_size": 1,
            "repeats": max(OVERHEAD_ROUNDS, repeats),
            "overhead": {m: v.to_dict() for m, v in res.items()},
            "machine": machine_info()["cpu"],
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        }
    finally:
        if tmp is not None:
            tmp.cleanup()


def _total_only(timed_call) -> dict:
    """A contender that keeps only the ``total`` stage of a timed call."""
    return {"total": timed_call()["total"]}
