"""Typed, frozen result objects.  Each has ``to_dict()`` and an HTML repr."""

from __future__ import annotations

import html
import os.path
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import render


def _esc(x) -> str:
    return html.escape(str(x))


def human_size(n: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``3.2 MB`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


@dataclass(frozen=True)
class TopK:
    class_id: int
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"class_id": self.class_id, "label": self.label, "score": round(self.score, 6)}


@dataclass(frozen=True)
class Prediction:
    """Top-k answer for one image from one mode."""

    image: str
    mode: str
    topk: tuple[TopK, ...]

    @property
    def top1(self) -> TopK:
        return self.topk[0]

    @property
    def label(self) -> str:
        return self.topk[0].label

    @property
    def score(self) -> float:
        return self.topk[0].score

    def to_dict(self) -> dict:
        return {"image": self.image, "mode": self.mode, "topk": [t.to_dict() for t in self.topk]}

    def __str__(self) -> str:
        tops = ", ".join(f"{t.label} {t.score:.3f}" for t in self.topk)
        return f"{self.image} [{self.mode}]: {tops}"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{t.class_id}</td><td>{_esc(t.label)}</td><td style='width:160px'>"
            f"<div style='background:#1976d2;height:10px;width:{max(1, int(150 * t.score))}px'></div></td>"
            f"<td style='text-align:right'>{t.score:.4f}</td></tr>"
            for t in self.topk
        )
        return (
            f"<div><b>{_esc(self.image)}</b> <i>({_esc(self.mode)})</i>"
            f"<table><tr><th>id</th><th>label</th><th></th><th>score</th></tr>{rows}</table></div>"
        )


@dataclass(frozen=True)
class StageStats:
    """Latency of one stage over N timed repeats (warm-up excluded), in milliseconds."""

    p50: float
    p90: float
    mean: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float] | np.ndarray) -> StageStats:
        a = np.asarray(seconds, dtype=np.float64) * 1e3
        if a.size == 0:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(float(np.percentile(a, 50)), float(np.percentile(a, 90)), float(a.mean()), int(a.size))

    def to_dict(self) -> dict:
        return {"p50": round(self.p50, 4), "p90": round(self.p90, 4), "mean": round(self.mean, 4), "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping) -> StageStats:
        return cls(float(d["p50"]), float(d["p90"]), float(d["mean"]), int(d["n"]))


STAGES = ("preprocess", "forward", "postprocess")


@dataclass(frozen=True)
class ModeReport:
    """One mode's side of a comparison.

    Memory: ``build_rss_mb`` is how much this process's RSS grew while this mode's engine was
    built, ``run_peak_mb`` how far it rose during one run of this mode on the images (both
    per mode); ``rss_mb`` and ``peak_rss_mb`` are the whole process's current and peak RSS
    when the comparison ended (running totals, the same for every mode).  ``isolation`` says
    where the engine runs: ``"in-process"``, or ``"worker process"`` (its latency then
    includes a pipe round trip, and its memory is not in this process's numbers).
    """

    mode: str
    predictions: tuple[Prediction, ...]
    stages: Mapping[str, StageStats]
    total: StageStats
    build_seconds: float
    rss_mb: float
    peak_rss_mb: float
    batch_size: int
    description: str = ""
    build_rss_mb: float = float("nan")
    run_peak_mb: float = float("nan")
    isolation: str = "in-process"

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "description": self.description,
            "batch_size": self.batch_size,
            "build_seconds": round(self.build_seconds, 4),
            "isolation": self.isolation,
            "build_rss_mb": round(self.build_rss_mb, 1),
            "run_peak_mb": round(self.run_peak_mb, 1),
            "process_rss_mb": round(self.rss_mb, 1),
            "process_peak_rss_mb": round(self.peak_rss_mb, 1),
            "latency_ms": self.total.to_dict(),
            "stages_ms": {k: v.to_dict() for k, v in self.stages.items()},
            "topk": [p.to_dict() for p in self.predictions],
        }


@dataclass(frozen=True)
class Agreement:
    """How closely one mode's raw outputs match the reference mode's."""

    mode: str
    reference: str
    max_abs_diff: float
    cosine: float
    top1_agree: float
    topk_agree: float

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "reference": self.reference,
            "max_abs_diff": float(self.max_abs_diff),
            "cosine": float(self.cosine),
            "top1_agree": self.top1_agree,
            "topk_agree": self.topk_agree,
        }


@dataclass(frozen=True)
class Comparison:
    """Every mode on the same inputs: top-k, per-stage latency, build time, agreement."""

    images: tuple[str, ...]
    modes: Mapping[str, ModeReport]
    agreements: tuple[Agreement, ...]
    reference: str
    top_k: int
    tolerance: float = 1e-4
    #: modes that could not be built or run: mode → what went wrong (shown as FAILED)
    failed: Mapping[str, str] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> float:
        return max((a.max_abs_diff for a in self.agreements), default=0.0)

    @property
    def agree(self) -> bool:
        return self.max_abs_diff <= self.tolerance and all(a.top1_agree == 1.0 for a in self.agreements)

    def to_dict(self) -> dict:
        return {
            "images": list(self.images),
            "top_k": self.top_k,
            "reference": self.reference,
            "modes": {k: v.to_dict() for k, v in self.modes.items()},
            "agreement": {
                "max_abs_diff": float(self.max_abs_diff),
                "tolerance": self.tolerance,
                "agree": self.agree,
                "pairs": [a.to_dict() for a in self.agreements],
            },
            "failed": dict(self.failed),
        }

    def to_text(self, top: int = 3) -> str:
        """A readable side-by-side table for terminals."""
        names = list(self.modes)
        rows = [["image"] + [f"{m} top-{top}" for m in names]]
        for i, img in enumerate(self.images):
            row = [os.path.basename(img)]
            for m in names:
                p = self.modes[m].predictions[i]
                row.append(", ".join(f"{t.label} {t.score:.3f}" for t in p.topk[:top]))
            rows.append(row)
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append("")
        lines.extend(render.latency_text(self))
        lines.append("")
        lines.extend(render.agreement_lines(self))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            f"<div>{render.agreement_badge(self)}{render.top1_table(self, top=3)}"
            f"{render.latency_table(self)}{render.failed_list(self)}</div>"
        )
