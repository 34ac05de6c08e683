"""Latency lab: per-mode, per-stage latency, predictor sweeps, overhead, and the physical limit.

    >>> from clsviz.bench import run_bench
    >>> report = run_bench("ResNet50_vd", repeats=30, out="out/bench")
    >>> report.ratios                       # the headline numbers
    >>> report.to_markdown(); report.figure()

Layout: ``machine`` (CPU and its peak), ``fixtures`` (bundles and images), ``cold``
(fresh-process cold starts), ``overhead`` (forward vs the engine's raw call), ``lab`` (the
experiments, :func:`run_bench`), ``report`` (:class:`BenchReport`), ``cli``.  The timing
harness itself is :mod:`clsviz.timing`; the FLOP counter :mod:`clsviz.archs.flops`.

Method, for every number here:

* warm-up runs are excluded; each contender then runs ``repeats`` timed times;
* timed runs are **interleaved**: every round runs each contender once, in a
  shuffled order, so a burst of noise from a shared machine hits all of them alike;
* latency is reported as p50 / p90 / mean in milliseconds; ratios are ratios of
  the p50s (medians) of contenders timed in the same interleaved rounds;
* cold starts (build time, first run, peak RSS) run in a fresh subprocess per mode,
  so no mode inherits another's warm caches or memory high-water mark.
"""

from __future__ import annotations

from ..archs.flops import FlopCount, count_flops
from ..timing import interleaved, interleaved_laps
from .cli import bench_cli, bench_modes
from .cold import cold_start
from .fixtures import SAMPLE_IMAGES, bench_images, prepare_bundle, synthetic_jpeg
from .lab import preprocessing_check, run_bench, sweep_configs
from .machine import machine_info
from .overhead import overhead, overhead_only
from .report import BenchReport
from .rows import AgreementRow, ColdStart, LatencyRow, Machine, Method, OverheadRow, PreprocessingCheck, SweepRow

__all__ = [
    "run_bench",
    "BenchReport",
    "overhead",
    "overhead_only",
    "preprocessing_check",
    "machine_info",
    "count_flops",
    "FlopCount",
    "interleaved",
    "interleaved_laps",
    "sweep_configs",
    "prepare_bundle",
    "bench_images",
    "synthetic_jpeg",
    "cold_start",
    "bench_cli",
    "bench_modes",
    "SAMPLE_IMAGES",
    "LatencyRow",
    "OverheadRow",
    "SweepRow",
    "ColdStart",
    "AgreementRow",
    "PreprocessingCheck",
    "Machine",
    "Method",
]
