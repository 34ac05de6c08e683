"""How a comparison looks, in one place: HTML and text tables shared by every view.

``Comparison._repr_html_`` / ``to_text``, ``report.html``, the demo's console summary and the
Explorer widget all draw their latency table, agreement badge and top-1 table from here.
Pure functions of a :class:`~clsviz.results.Comparison`: no widget toolkit, no matplotlib.
"""

from __future__ import annotations

import html
import os.path

__all__ = [
    "latency_table",
    "latency_text",
    "agreement_badge",
    "agreement_lines",
    "failed_list",
    "top1_table",
    "short_name",
    "LATENCY_NOTE",
    "MEMORY_NOTE",
]

LATENCY_NOTE = (
    "milliseconds per batch: median (p50) and p90 of the timed batches after warm-up, every mode "
    "timed in the same interleaved rounds (shuffled order per round); build s: seconds to build the engine"
)
MEMORY_NOTE = (
    "memory per mode: build +MB is how much this process grew while the engine was built, "
    "run peak +MB how far it rose during one run on these images; a mode that runs in a worker "
    "process keeps its engine's memory there, outside these numbers, and its latency includes "
    "the round trip to it"
)


def _e(x) -> str:
    return html.escape(str(x))


def short_name(name: str) -> str:
    """An image's file name without its folder (``<array 0>``-style names stay as they are)."""
    return name if name.startswith("<") else os.path.basename(name)


def _mb(x: float) -> str:
    return "–" if x != x else f"{x:+.0f}"


def _stage_names(cmp) -> tuple[str, ...]:
    first = next(iter(cmp.modes.values()))
    return tuple(first.stages)


def latency_table(cmp, *, mark_fastest: bool = True, notes: bool = True) -> str:
    """The per-mode latency table (``<table class='clsviz-table clsviz-latency-table'>``).

    Columns: mode, where it runs, build time, p50 of each stage, total p50 / p90, batch size,
    and the per-mode memory; ``notes`` adds the legend below it.
    """
    stages = _stage_names(cmp)
    fastest = min(cmp.modes.values(), key=lambda r: r.total.p50).mode if len(cmp.modes) > 1 else None
    rows = []
    for m, r in cmp.modes.items():
        tag = " <span class='badge ok clsviz-fastest'>fastest</span>" if mark_fastest and m == fastest else ""
        rows.append(
            f"<tr data-mode='{_e(m)}'><td><b>{_e(m)}</b>{tag}</td><td style='white-space:nowrap'>{_e(r.isolation)}</td>"
            f"<td class='num'>{r.build_seconds:.2f}</td>"
            + "".join(f"<td class='num'>{r.stages[s].p50:.2f}</td>" for s in stages)
            + f"<td class='num'><b>{r.total.p50:.2f}</b></td><td class='num'>{r.total.p90:.2f}</td>"
            f"<td class='num'>{r.batch_size}</td><td class='num'>{_mb(r.build_rss_mb)}</td>"
            f"<td class='num'>{_mb(r.run_peak_mb)}</td></tr>"
        )
    head = (
        "<tr><th>mode</th><th>runs in</th><th class='num'>build s</th>"
        + "".join(f"<th class='num'>{_e(s)}</th>" for s in stages)
        + "<th class='num'>total p50</th><th class='num'>p90</th><th class='num'>batch</th>"
        "<th class='num'>build +MB</th><th class='num'>run peak +MB</th></tr>"
    )
    n = next(iter(cmp.modes.values())).total.n
    legend = (
        (
            f"<p class='legend clsviz-legend'><small>{_e(LATENCY_NOTE)} ({n} timed batches per mode).<br>"
            f"{_e(MEMORY_NOTE)}.</small></p>"
        )
        if notes
        else ""
    )
    return f"<table class='clsviz-table clsviz-latency-table'>{head}{''.join(rows)}</table>{legend}"


def latency_text(cmp, *, note: str = "ms per batch") -> list[str]:
    """The latency table as aligned text lines, for terminals."""
    lines = [
        f"{'mode':<10} {'runs in':<15} {'build s':>8} {'pre p50':>8} {'fwd p50':>8} {'post p50':>9} "
        f"{'total p50':>9} {'p90':>8}  ({note}, p50 over {next(iter(cmp.modes.values())).total.n} runs)"
    ]
    for m, r in cmp.modes.items():
        lines.append(
            f"{m:<10} {r.isolation:<15} {r.build_seconds:>8.2f} {r.stages['preprocess'].p50:>8.2f} "
            f"{r.stages['forward'].p50:>8.2f} {r.stages['postprocess'].p50:>9.3f} "
            f"{r.total.p50:>9.2f} {r.total.p90:>8.2f}"
        )
    return lines


def agreement_lines(cmp) -> list[str]:
    """One text line per mode pair, then the verdict."""
    lines = [
        f"{a.mode} vs {a.reference}: max|Δ|={a.max_abs_diff:.2e} cos={a.cosine:.6f} "
        f"top1 {a.top1_agree:.0%} top-k {a.topk_agree:.0%}"
        for a in cmp.agreements
    ]
    verdict = "AGREE" if cmp.agree else "DISAGREE"
    lines.append(f"modes {verdict} (max|Δ| {cmp.max_abs_diff:.2e}, tolerance {cmp.tolerance:g})")
    lines.extend(f"{m} FAILED: {why}" for m, why in cmp.failed.items())
    return lines


def failed_list(cmp) -> str:
    """The modes that could not be built, and why (empty when every mode ran)."""
    failed = cmp.failed
    if not failed:
        return ""
    items = "".join(f"<li><b>{_e(m)} FAILED</b>: {_e(why)}</li>" for m, why in failed.items())
    return f"<ul class='clsviz-failed' style='color:#c62828'>{items}</ul>"


def agreement_badge(cmp) -> str:
    """Green/red badge: max |Δ| against the reference mode, top-1 and top-k agreement."""
    if not cmp.agreements:
        return (
            "<div class='clsviz-agreement'><span class='clsviz-badge' style='background:#757575'>"
            "one mode · nothing to compare</span></div>"
        )
    ok = cmp.agree
    top1 = min(a.top1_agree for a in cmp.agreements)
    topk = min(a.topk_agree for a in cmp.agreements)
    text = (
        f"{'✔ modes agree' if ok else '✘ modes DISAGREE'} · max |Δ| {cmp.max_abs_diff:.2e} "
        f"(tolerance {cmp.tolerance:g}) · top-1 agree {top1:.0%} · top-{cmp.top_k} agree {topk:.0%}"
    )
    pairs = " · ".join(f"{_e(a.mode)} vs {_e(a.reference)}: {a.max_abs_diff:.1e}" for a in cmp.agreements)
    return (
        f"<div class='clsviz-agreement' data-agree='{str(ok).lower()}'>"
        f"<span class='clsviz-badge' style='display:inline-block;padding:3px 10px;border-radius:12px;"
        f"color:#fff;font-weight:600;background:{'#2e7d32' if ok else '#c62828'}'>{_e(text)}</span>"
        f"<br><small>{pairs} · {len(cmp.images)} image(s)</small></div>"
    )


def top1_table(cmp, *, top: int = 1) -> str:
    """Every image's top-``top`` per mode; rows where the modes' top-1 differ are tinted."""
    names = list(cmp.modes)
    head = "".join(f"<th>{_e(m)}</th>" for m in names)
    body = []
    for i, img in enumerate(cmp.images):
        preds = [cmp.modes[m].predictions[i] for m in names]
        same = len({p.top1.class_id for p in preds}) == 1
        cells = "".join(
            "<td>" + "<br>".join(f"{_e(t.label)} <small>{t.score:.3f}</small>" for t in p.topk[:top]) + "</td>"
            for p in preds
        )
        mark = "" if same else " style='background:#ffebee'"
        body.append(f"<tr{mark}><td>{_e(short_name(img))}</td>{cells}</tr>")
    return f"<table class='clsviz-table clsviz-top1-table'><tr><th>image</th>{head}</tr>{''.join(body)}</table>"
