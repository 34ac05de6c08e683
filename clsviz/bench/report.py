"""The lab's report: ``bench.json`` / ``bench.md`` / ``bench.png``."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .rows import AgreementRow, ColdStart, LatencyRow, Machine, Method, OverheadRow, PreprocessingCheck, SweepRow

STAGES = ("preprocess", "forward", "postprocess")


@dataclass(frozen=True)
class BenchReport:
    """Everything one bench run measured; ``to_dict()`` is the JSON file."""

    model: str
    arch: str
    image_shape: tuple
    started: str
    finished: str
    method: Method
    machine: Machine
    versions: dict
    cold: Mapping[str, ColdStart]
    modes: Mapping[str, Mapping[str, LatencyRow]]  # mode → batch size (as a string) → row
    sweep: Mapping[str, SweepRow]
    default_config: str | None
    agreement: Mapping[str, AgreementRow]  # reduced-precision sweep config → against the fp32 default
    overhead: Mapping[str, OverheadRow]
    preprocessing: PreprocessingCheck | None
    flops: dict | None
    bf16_supported: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> BenchReport:
        """Rebuild a report from its ``to_dict()`` (``bench.json``), e.g. to re-render it."""
        return cls(
            model=d["model"],
            arch=d["arch"],
            image_shape=tuple(d["image_shape"]),
            started=d["started"],
            finished=d["finished"],
            method=Method.from_dict(d["method"]),
            machine=Machine.from_dict(d["machine"]),
            versions=d["versions"],
            cold={m: ColdStart.from_dict(m, v) for m, v in d["cold_start"].items()},
            modes={m: {b: LatencyRow.from_dict(m, b, r) for b, r in rows.items()} for m, rows in d["modes"].items()},
            sweep={k: SweepRow.from_dict(k, v) for k, v in d["sweep"].items()},
            default_config=d["default_config"],
            agreement={k: AgreementRow.from_dict(k, v) for k, v in d["agreement"].items()},
            overhead={m: OverheadRow.from_dict(m, r) for m, r in d["overhead"].items()},
            preprocessing=PreprocessingCheck.from_dict(d["preprocessing"]) if d["preprocessing"] else None,
            flops=d["flops"],
            bf16_supported=d.get("bf16_supported", False),
        )

    # -- derived numbers ----------------------------------------------------------------------
    def _best(self, precision="fp32"):
        rows = {k: v for k, v in self.sweep.items() if v.precision == precision}
        return min(rows.items(), key=lambda kv: kv[1].ms.p50) if rows else (None, None)

    def gflops(self) -> dict:
        """Achieved GFLOP/s of the predictor (conv + linear FLOPs / p50 forward) against the peak."""
        if not self.flops:
            return {}
        f = self.flops["flops"]
        peak = self.machine.peak_gflops_fp32
        peak_dp = self.machine.peak_gflops_fp32_datapath
        rows = {}

        def add(name, ms, images=1):
            g = f * images / (ms / 1e3) / 1e9
            rows[name] = {
                "gflops": round(g, 2),
                "of_peak": round(g / peak, 4),
                "of_datapath_peak": round(g / peak_dp, 4),
            }

        if self.default_config:
            add("default fp32, batch 1", self.sweep[self.default_config].ms.p50)
        name, best = self._best("fp32")
        if best:
            add(f"best fp32 ({name}), batch 1", best.ms.p50)
        name, bbest = self._best("bf16")
        if bbest:
            add(f"best bf16 ({name}), batch 1", bbest.ms.p50)
        pr = self.modes.get("predictor", {})
        for b, row in pr.items():
            if b != "1":
                add(f"default fp32, batch {b} (per-stage run)", row.stages["forward"].p50, int(b))
        return rows

    @property
    def ratios(self) -> dict:
        """The headline ratios (all ratios of medians measured side by side)."""
        r: dict = {"overhead_ratio": {m: v.ratio for m, v in self.overhead.items()}}
        if all(v.bound_ratio is not None for v in self.overhead.values()) and self.overhead:
            r["overhead_bound"] = {m: v.bound_ratio for m, v in self.overhead.items()}
            r["overhead_fixed_cost_ms"] = {m: v.fixed_cost_ms for m, v in self.overhead.items()}
        name, best = self._best("fp32")
        if best and self.default_config:
            r["default_vs_best_fp32"] = round(self.sweep[self.default_config].ms.p50 / best.ms.p50, 4)
            r["best_fp32_config"] = name
        bname, bbest = self._best("bf16")
        if bbest and best:
            r["bf16_speedup_vs_best_fp32"] = round(best.ms.p50 / bbest.ms.p50, 4)
            if self.default_config:
                r["bf16_speedup_vs_default"] = round(self.sweep[self.default_config].ms.p50 / bbest.ms.p50, 4)
            r["best_bf16_config"] = bname
            if bname in self.agreement:
                r["bf16_top1_agreement"] = self.agreement[bname].top1_agree
        r["preprocess_vs_forward"] = self.preprocessing.ratio if self.preprocessing is not None else None
        g = self.gflops()
        if g:
            first = next(iter(g.values()))
            r["gflops_default_b1"] = first["gflops"]
            r["gflops_of_peak"] = first["of_peak"]
            r["gflops_of_datapath_peak"] = first["of_datapath_peak"]
        return r

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "arch": self.arch,
            "image_shape": list(self.image_shape),
            "started": self.started,
            "finished": self.finished,
            "method": self.method.to_dict(),
            "machine": self.machine.to_dict(),
            "versions": self.versions,
            "ratios": self.ratios,
            "overhead_ratio": {m: v.ratio for m, v in self.overhead.items()},
            "cold_start": {m: v.to_dict() for m, v in self.cold.items()},
            "modes": {m: {b: row.to_dict() for b, row in rows.items()} for m, rows in self.modes.items()},
            "sweep": {k: v.to_dict() for k, v in self.sweep.items()},
            "default_config": self.default_config,
            "agreement": {k: v.to_dict() for k, v in self.agreement.items()},
            "overhead": {m: v.to_dict() for m, v in self.overhead.items()},
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing is not None else {},
            "flops": self.flops,
            "gflops": self.gflops(),
            "bf16_supported": self.bf16_supported,
            **self.extra,
        }

    def to_markdown(self) -> str:
        m, L = self.machine, []
        L.append(f"### {self.model} ({self.arch}, input {'×'.join(map(str, self.image_shape))}) — {self.started}")
        L.append("")
        L.append(
            f"Machine: {m.cpu}, {m.cores} cores, {m.mhz:.0f} MHz ({m.mhz_source}), "
            f"{m.isa}, flags {' '.join(m.flags)}; Paddle {self.versions['paddle']}. "
            f"{self.method.repeats} interleaved rounds after {self.method.warmup} warm-up; "
            f"images: {self.method.images}."
        )
        if self.method.other_processes_cores_busy is not None:
            la = self.method.loadavg_before
            L[-1] += (
                f" Background: other processes kept {self.method.other_processes_cores_busy:.2f} of "
                f"{m.logical_cpus} CPUs busy on average during the {self.method.wall_s:.0f} s run"
                + (f" (load average {la[0]:.1f} at the start)" if la else "")
                + "."
            )
        L.append("")
        if self.modes:
            L.append(
                "| mode | batch | preprocess p50 | forward p50 / p90 / mean | postprocess p50 | "
                "total p50 | images/s | build s (cold) | first run ms | peak RSS MiB |"
            )
            L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for mode, rows in self.modes.items():
                c = self.cold.get(mode)
                for b, row in rows.items():
                    s = row.stages
                    fw = s["forward"]
                    if c is not None and c.error is None and c.build_s is not None:
                        cold = f"{c.build_s:.2f} | {c.first_forward_ms:.0f} | {c.peak_rss_mb:.0f}"
                    else:
                        cold = "— | — | —" if c is None else f"error: {(c.error or '')[:40]} | | "
                    if b != "1":
                        cold = "| |"
                    L.append(
                        f"| {mode} | {b} | {s['preprocess'].p50:.2f} | {fw.p50:.2f} / {fw.p90:.2f} / "
                        f"{fw.mean:.2f} | {s['postprocess'].p50:.3f} | {row.total.p50:.2f} | "
                        f"{row.images_per_s:.1f} | {cold} |"
                    )
            L.append("")
            L.append(
                "Latency in ms per batch. Cold columns: build time, first forward (batch 1) and peak RSS "
                "of a fresh process that imports clsviz, builds the mode and runs batch 1 and 8."
            )
            L.append("")
        if self.sweep:
            best_name, _ = self._best("fp32")
            L.append(
                "| predictor configuration | p50 ms | p90 ms | mean ms | CPU ms p50 | vs default | build s | note |"
            )
            L.append("|---|---:|---:|---:|---:|---:|---:|---|")
            d = self.sweep[self.default_config].ms.p50 if self.default_config else None
            for name, srow in sorted(self.sweep.items(), key=lambda kv: kv[1].ms.p50):
                notes = []
                if srow.default:
                    notes.append("**default**")
                if name == best_name:
                    notes.append("best fp32")
                if name in self.agreement:
                    a = self.agreement[name]
                    notes.append(
                        f"vs default: top-1 {a.top1_agree:.0%} of {a.n}, "
                        f"max abs diff {a.max_abs_diff:.2g}, cos ≥ {a.min_cosine:.5f}"
                    )
                rel = f"{srow.ms.p50 / d:.2f}×" if d else ""
                cpu = srow.cpu_ms.p50 if srow.cpu_ms is not None else float("nan")
                L.append(
                    f"| {name} | {srow.ms.p50:.2f} | {srow.ms.p90:.2f} | {srow.ms.mean:.2f} | "
                    f"{cpu:.1f} | {rel} | {srow.build_s:.2f} | {'; '.join(notes)} |"
                )
            L.append("")
            L.append(
                "CPU ms = process CPU time during the run. It counts every thread of the process, "
                "including OpenMP workers that other predictors in the sweep started, so a 1-thread row "
                "can show more CPU time than wall time."
            )
            L.append("")
        r = self.ratios
        L.append("| ratio (side by side, medians) | value | target |")
        L.append("|---|---:|---|")
        for mode, v in r["overhead_ratio"].items():
            o = self.overhead[mode]
            ci = o.ratio_ci95
            L.append(
                f"| overhead: clsviz forward / raw Paddle loop, {mode} "
                + (f"(95% CI {ci[0]:.3f}–{ci[1]:.3f}; {o.clsviz_ms.n} rounds) " if ci else "")
                + f"| {v:.3f} | ≤ 1.05 |"
            )
        for mode, v in r.get("overhead_bound", {}).items():
            L.append(
                f"| overhead from the fixed cost per call, {mode}: 1 + "
                f"{(self.overhead[mode].fixed_cost_ms or 0.0) * 1e3:.0f} µs / raw p50 | {v:.4f} | ≤ 1.05 |"
            )
        if "default_vs_best_fp32" in r:
            L.append(
                f"| default predictor p50 / best fp32 p50 ({r['best_fp32_config']}) | "
                f"{r['default_vs_best_fp32']:.3f} | ≤ 1.10 |"
            )
        L.append(f"| preprocess 1920×1080 JPEG / predictor forward p50 | {r['preprocess_vs_forward']:.3f} | ≤ 0.5 |")
        if "bf16_speedup_vs_best_fp32" in r:
            L.append(f"| bf16 speed-up (best fp32 p50 / best bf16 p50) | {r['bf16_speedup_vs_best_fp32']:.3f} | |")
            if "bf16_top1_agreement" in r:
                L.append(f"| bf16 vs fp32 top-1 agreement | {r['bf16_top1_agreement']:.0%} | |")
        g = self.gflops()
        if g:
            f = self.flops
            assert f is not None  # gflops() needs it
            L.append("")
            L.append(
                f"Work: {f['gmacs']:.3f} GMACs = {f['gflops']:.3f} GFLOPs per image (conv + linear, counted "
                f"by forward hooks). Peak: {m.cores} cores × {m.mhz / 1e3:.3f} GHz × {m.fp32_lanes} "
                f"fp32 lanes × {m.fma_units} FMA units × 2 = **{m.peak_gflops_fp32:.0f} GFLOP/s** "
                f"({m.peak_note}; datapath peak {m.peak_gflops_fp32_datapath:.0f} GFLOP/s)."
            )
            L.append("")
            L.append("| predictor run | GFLOP/s | of peak | of datapath peak |")
            L.append("|---|---:|---:|---:|")
            for name, row in g.items():
                L.append(f"| {name} | {row['gflops']:.1f} | {row['of_peak']:.1%} | {row['of_datapath_peak']:.1%} |")
            dp_ratio = m.peak_gflops_fp32_datapath / m.peak_gflops_fp32
            fast = max((v["gflops"] for k, v in g.items() if "bf16" not in k), default=0.0)
            if fast > m.peak_gflops_fp32_datapath:
                per_cycle = m.cores * m.fp32_lanes * m.fma_units * 2 * dp_ratio
                L.append("")
                L.append(
                    f"fp32 here beats the {'datapath ' if dp_ratio < 1 else ''}peak computed at the reported "
                    f"{m.mhz / 1e3:.3f} GHz, which is impossible at that clock: the cores run at ≥ "
                    f"{fast / per_cycle:.2f} GHz even at 100 % efficiency (server parts boost above their "
                    f"base clock, and a hypervisor reports the base). Read the clock as a floor and the "
                    f"percentages as upper bounds."
                )
            if any("bf16" in k for k in g):
                L.append("")
                L.append(
                    "The bf16 row is measured against the fp32 peak; bf16 dot products (VDPBF16PS) do two "
                    "multiply-adds per fp32 lane, so the bf16 peak is twice the fp32 one."
                )
        return "\n".join(L) + "\n"

    def figure(self):
        """A matplotlib ``Figure`` (Agg; no pyplot state): stages per mode, the sweep, GFLOP/s vs peak."""
        from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads only for the figure

        fig = Figure(figsize=(13, 4.4), dpi=100, layout="constrained")
        axes = fig.subplots(1, 3, width_ratios=[1, 1.35, 1])
        ax = axes[0]
        modes = list(self.modes)
        colors = {"preprocess": "#90caf9", "forward": "#1565c0", "postprocess": "#ffb300"}
        left = np.zeros(len(modes))
        for s in STAGES:
            v = np.array([self.modes[m]["1"].stages[s].p50 for m in modes])
            ax.barh(modes, v, left=left, color=colors[s], label=s)
            left += v
        ax.set_xlabel("ms per image (p50, batch 1)")
        ax.set_title("stages per mode")
        ax.legend(fontsize=8, loc="lower right")
        ax.invert_yaxis()

        ax = axes[1]
        if self.sweep:
            items = sorted(self.sweep.items(), key=lambda kv: kv[1].ms.p50)
            names = [k for k, _ in items]
            p50 = [v.ms.p50 for _, v in items]
            p90 = [v.ms.p90 for _, v in items]
            cols = ["#2e7d32" if v.default else ("#8e24aa" if v.precision == "bf16" else "#78909c") for _, v in items]
            ax.barh(names, p50, color=cols)
            ax.errorbar(p90, names, fmt="|", color="black", ms=8, label="p90")
            ax.set_xlabel("forward ms, batch 1 (bars p50, ticks p90)")
            ax.set_title("predictor sweep (green = default, purple = bf16)")
            ax.tick_params(axis="y", labelsize=7)
            ax.invert_yaxis()
        else:
            ax.set_axis_off()

        ax = axes[2]
        g = self.gflops()
        if g:
            names = [k.split(" (")[0].replace(", batch", "\nbatch") for k in g]
            vals = [v["gflops"] for v in g.values()]
            ax.bar(range(len(vals)), vals, color="#1565c0")
            ax.set_xticks(range(len(vals)), names, fontsize=7)
            ax.axhline(
                self.machine.peak_gflops_fp32, color="#c62828", ls="-", label="fp32 FMA peak (formula, reported clock)"
            )
            dp = self.machine.peak_gflops_fp32_datapath
            if dp != self.machine.peak_gflops_fp32:
                ax.axhline(dp, color="#c62828", ls="--", label="datapath peak (reported clock)")
            ax.set_ylabel("GFLOP/s")
            ax.set_title("achieved vs peak")
            ax.legend(fontsize=7)
        else:
            ax.set_axis_off()
        fig.suptitle(f"{self.model} · {self.machine.cpu} · {self.machine.cores} cores · {self.started}", fontsize=9)
        return fig

    def save(self, out, *, dpi: int = 80) -> dict[str, Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "bench.json", "markdown": out / "bench.md", "plot": out / "bench.png"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=_jsonable), encoding="utf-8")
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        self.figure().savefig(paths["plot"], dpi=dpi)
        return paths

    def _repr_html_(self) -> str:
        r = self.ratios
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in r.items())
        return (
            f"<div><b>bench {html.escape(self.model)}</b> · {html.escape(self.machine.cpu)} · "
            f"{self.machine.cores} cores<table>{rows}</table></div>"
        )


def _jsonable(o):
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)
