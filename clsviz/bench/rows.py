"""Typed rows of the lab's report: one frozen object per measured thing, ``to_dict()`` for JSON.

Each row is built from its rounded JSON form (``from_dict``), so a report read back from
``bench.json`` renders exactly like the one that wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..results import StageStats


@dataclass(frozen=True)
class LatencyRow:
    """One mode at one batch size: per-stage latency in ms per batch, and throughput."""

    mode: str
    batch: int
    stages: Mapping[str, StageStats]
    total: StageStats
    images_per_s: float
    forward_images_per_s: float

    @classmethod
    def measured(cls, mode: str, batch: int, stats: Mapping[str, StageStats], stages) -> LatencyRow:
        """From the harness's stats of one contender (``stages`` + ``total``)."""
        return cls.from_dict(
            mode,
            batch,
            {
                "stages_ms": {k: stats[k].to_dict() for k in stages},
                "total_ms": stats["total"].to_dict(),
                "images_per_s": round(batch / (stats["total"].p50 / 1e3), 2),
                "forward_images_per_s": round(batch / (stats["forward"].p50 / 1e3), 2),
            },
        )

    @classmethod
    def from_dict(cls, mode: str, batch, d: Mapping) -> LatencyRow:
        return cls(
            mode=mode,
            batch=int(batch),
            stages={k: StageStats.from_dict(v) for k, v in d["stages_ms"].items()},
            total=StageStats.from_dict(d["total_ms"]),
            images_per_s=float(d["images_per_s"]),
            forward_images_per_s=float(d["forward_images_per_s"]),
        )

    def to_dict(self) -> dict:
        return {
            "stages_ms": {k: v.to_dict() for k, v in self.stages.items()},
            "total_ms": self.total.to_dict(),
            "images_per_s": self.images_per_s,
            "forward_images_per_s": self.forward_images_per_s,
        }


@dataclass(frozen=True)
class OverheadRow:
    """``Classifier.forward`` against the engine's raw call, side by side on one mode.

    ``ratio`` is p50(clsviz) / p50(raw); ``paired_ratio`` / ``paired_diff_ms`` the medians of the
    per-round ratios / differences; ``fixed_cost_ms`` and ``bound_ratio`` come from the
    tiny-network measurement (:func:`clsviz.bench.overhead.fixed_costs`), when it ran.
    """

    mode: str
    clsviz_ms: StageStats
    raw_ms: StageStats
    ratio: float
    paired_ratio: float
    paired_diff_ms: float
    ratio_ci95: tuple[float, float]
    max_abs_diff: float
    fixed_cost_ms: float | None = None
    bound_ratio: float | None = None

    @classmethod
    def from_dict(cls, mode: str, d: Mapping) -> OverheadRow:
        return cls(
            mode=mode,
            clsviz_ms=StageStats.from_dict(d["clsviz_ms"]),
            raw_ms=StageStats.from_dict(d["raw_ms"]),
            ratio=float(d["ratio"]),
            paired_ratio=float(d["paired_ratio"]),
            paired_diff_ms=float(d["paired_diff_ms"]),
            ratio_ci95=tuple(d["ratio_ci95"]),
            max_abs_diff=float(d["max_abs_diff"]),
            fixed_cost_ms=d.get("fixed_cost_ms"),
            bound_ratio=d.get("bound_ratio"),
        )

    def with_fixed_cost(self, fixed_cost_ms: float) -> OverheadRow:
        """This row plus the bound 1 + fixed cost / raw p50 (a noise-free estimate of the ratio)."""
        return replace(
            self, fixed_cost_ms=fixed_cost_ms, bound_ratio=round(1 + max(0.0, fixed_cost_ms) / self.raw_ms.p50, 5)
        )

    def to_dict(self) -> dict:
        d = {
            "clsviz_ms": self.clsviz_ms.to_dict(),
            "raw_ms": self.raw_ms.to_dict(),
            "ratio": self.ratio,
            "paired_ratio": self.paired_ratio,
            "paired_diff_ms": self.paired_diff_ms,
            "ratio_ci95": list(self.ratio_ci95),
            "max_abs_diff": self.max_abs_diff,
        }
        if self.fixed_cost_ms is not None:
            d.update(fixed_cost_ms=self.fixed_cost_ms, bound_ratio=self.bound_ratio)
        return d


@dataclass(frozen=True)
class SweepRow:
    """One predictor configuration of the sweep: its options, forward latency (batch 1) and CPU time."""

    name: str
    options: Mapping[str, object]
    build_s: float
    ms: StageStats
    cpu_ms: StageStats | None
    default: bool

    @property
    def precision(self) -> str:
        return str(self.options["precision"])

    @classmethod
    def from_dict(cls, name: str, d: Mapping) -> SweepRow:
        cpu = d.get("cpu_ms")
        return cls(
            name=name,
            options=dict(d["options"]),
            build_s=float(d["build_s"]),
            ms=StageStats.from_dict(d["ms"]),
            cpu_ms=StageStats.from_dict(cpu) if cpu else None,
            default=bool(d["default"]),
        )

    def to_dict(self) -> dict:
        d = {"options": dict(self.options), "build_s": self.build_s, "ms": self.ms.to_dict(), "default": self.default}
        if self.cpu_ms is not None:
            d["cpu_ms"] = self.cpu_ms.to_dict()
        return d


@dataclass(frozen=True)
class ColdStart:
    """One mode built and run in a fresh process: start-up, build, first runs, memory.

    ``error`` is set (and the numbers are None) when that process failed.  ``values`` keeps
    every number the worker reported, by its JSON name, for the file.
    """

    mode: str
    values: Mapping[str, object]
    error: str | None = None

    def _num(self, key: str) -> float | None:
        v = self.values.get(key)
        return None if v is None else float(v)  # type: ignore[arg-type]

    @property
    def build_s(self) -> float | None:
        return self._num("build_s")

    @property
    def first_forward_ms(self) -> float | None:
        return self._num("first_forward_ms")

    @property
    def peak_rss_mb(self) -> float | None:
        return self._num("peak_rss_mb")

    @classmethod
    def from_dict(cls, mode: str, d: Mapping) -> ColdStart:
        values = {k: v for k, v in d.items() if k not in ("mode", "error")}
        return cls(mode=mode, values=values, error=d.get("error"))

    def to_dict(self) -> dict:
        d = {"mode": self.mode, **self.values}
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass(frozen=True)
class AgreementRow:
    """A reduced-precision sweep configuration's outputs against the fp32 default's, on the same batch."""

    config: str
    top1_agree: float  # share of images with the same top-1 class
    n: int  # images
    max_abs_diff: float
    min_cosine: float  # lowest cosine similarity of two output rows

    @classmethod
    def measured(cls, config: str, outputs: np.ndarray, reference: np.ndarray) -> AgreementRow:
        a, b = np.asarray(outputs, np.float64), np.asarray(reference, np.float64)
        cos = np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        return cls(
            config=config,
            top1_agree=float(np.mean(a.argmax(1) == b.argmax(1))),
            n=len(a),
            max_abs_diff=float(np.abs(a - b).max()),
            min_cosine=float(cos.min()),
        )

    @classmethod
    def from_dict(cls, config: str, d: Mapping) -> AgreementRow:
        return cls(
            config=config,
            top1_agree=float(d["top1_agree"]),
            n=int(d["n"]),
            max_abs_diff=float(d["max_abs_diff"]),
            min_cosine=float(d["min_cosine"]),
        )

    def to_dict(self) -> dict:
        return {
            "top1_agree": self.top1_agree,
            "n": self.n,
            "max_abs_diff": self.max_abs_diff,
            "min_cosine": self.min_cosine,
        }


@dataclass(frozen=True)
class PreprocessingCheck:
    """Preprocessing one large JPEG against one forward pass (batch 1), side by side; and the
    what-if of letting the JPEG decoder downscale first (``draft``)."""

    image: str
    ms: Mapping[str, StageStats]  # preprocess, forward, decode, resize_crop, normalize, preprocess_draft
    ratio: float  # p50 preprocess / p50 forward
    draft_ratio_vs_exact: float
    draft_max_abs_diff_levels: float  # in 8-bit pixel levels
    draft_mean_abs_diff_levels: float

    @classmethod
    def from_dict(cls, d: Mapping) -> PreprocessingCheck:
        draft = d["draft"]
        return cls(
            image=d["image"],
            ms={k: StageStats.from_dict(v) for k, v in d["ms"].items()},
            ratio=float(d["ratio"]),
            draft_ratio_vs_exact=float(draft["ratio_vs_exact"]),
            draft_max_abs_diff_levels=float(draft["max_abs_diff_levels"]),
            draft_mean_abs_diff_levels=float(draft["mean_abs_diff_levels"]),
        )

    def to_dict(self) -> dict:
        return {
            "image": self.image,
            "ms": {k: v.to_dict() for k, v in self.ms.items()},
            "ratio": self.ratio,
            "draft": {
                "ratio_vs_exact": self.draft_ratio_vs_exact,
                "max_abs_diff_levels": self.draft_max_abs_diff_levels,
                "mean_abs_diff_levels": self.draft_mean_abs_diff_levels,
            },
        }


@dataclass(frozen=True)
class Machine:
    """The machine the lab ran on (:func:`clsviz.bench.machine.machine_info`), with its fp32 peak."""

    cpu: str
    vendor: str
    cores: int
    logical_cpus: int | None
    mhz: float
    mhz_source: str
    isa: str
    fp32_lanes: int
    fma_units: int
    flags: tuple[str, ...]
    hypervisor: bool
    peak_gflops_fp32: float
    peak_gflops_fp32_datapath: float
    peak_note: str
    python: str
    platform: str

    @classmethod
    def from_dict(cls, d: Mapping) -> Machine:
        return cls(**{f.name: d[f.name] for f in fields(cls)} | {"flags": tuple(d["flags"])})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"flags": list(self.flags)}


@dataclass(frozen=True)
class Method:
    """How the lab measured: rounds, order, statistics, and how busy the machine was with other work."""

    warmup: int
    repeats: int
    repeats_batch: int
    interleaved: bool
    order: str
    percentiles: str
    ratios: str
    cold_start: str
    images: str
    loadavg_before: tuple[float, ...] | None
    loadavg_after: tuple[float, ...] | None
    wall_s: float | None = None  # the background-load measurement (absent in older bench.json)
    other_processes_cores_busy: float | None = None
    steal_fraction: float | None = None

    _OPTIONAL = ("wall_s", "other_processes_cores_busy", "steal_fraction")

    @classmethod
    def from_dict(cls, d: Mapping) -> Method:
        def seq(v):
            return None if v is None else tuple(v)

        values: dict[str, Any] = {f.name: d.get(f.name) for f in fields(cls)}
        values.update(loadavg_before=seq(values["loadavg_before"]), loadavg_after=seq(values["loadavg_after"]))
        return cls(**values)

    def to_dict(self) -> dict:
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in self._OPTIONAL or getattr(self, f.name) is not None
        }
        for k in ("loadavg_before", "loadavg_after"):
            out[k] = None if out[k] is None else list(out[k])
        return out
