"""Self-contained HTML reports: one file, every image and chart inline, no external CSS or JS.

:func:`write_report` turns a :class:`~clsviz.results.Comparison` into ``report.html``
(thumbnails with true labels, top-k per mode, latency per stage, build times, agreement).
:func:`page` is the shared shell (styles, header, footer) that other reports reuse.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from PIL import Image

from . import render
from ._version import __version__
from .errors import ImageError, OptionError
from .results import Comparison
from .transforms import load_image

__all__ = ["write_report", "render_report", "page", "card", "badge", "thumbnail_data_uri", "CSS"]

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;--blue:#2563eb;
--green:#16a34a;--green-bg:#dcfce7;--red:#dc2626;--red-bg:#fee2e2;--amber:#b45309;--amber-bg:#fef3c7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1180px;margin:0 auto;padding:28px 24px 40px}
header.hero{background:linear-gradient(135deg,#1e3a8a,#2563eb);color:#fff;padding:28px 0 72px}
header.hero h1{margin:0 0 4px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header.hero p{margin:0;opacity:.85}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px;margin-top:-52px}
.card{background:var(--card);border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08),0 1px 2px rgba(0,0,0,.04);
padding:16px 18px}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card .v{font-size:22px;font-weight:650;margin:2px 0}
.card .s{font-size:12.5px;color:var(--muted)}
section{background:var(--card);border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:20px 22px;
margin-top:22px}
section h2{margin:0 0 12px;font-size:17px;font-weight:650}
section h2 small{font-weight:400;color:var(--muted);font-size:13px;margin-left:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;
letter-spacing:.04em;border-bottom:1px solid var(--line);padding:6px 10px}
td{border-bottom:1px solid var(--line);padding:7px 10px;vertical-align:middle}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:none}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12.5px;font-weight:600;
white-space:nowrap}
.ok{background:var(--green-bg);color:var(--green)}
.bad{background:var(--red-bg);color:var(--red)}
.warn{background:var(--amber-bg);color:var(--amber)}
.neutral{background:#eef2ff;color:#3730a3}
.big.badge{font-size:15px;padding:4px 14px}
.chart{max-width:100%;height:auto;display:block}
.center{display:flex;justify-content:center;margin-top:14px}
.center img{max-width:760px;width:100%}
.s .bad-text{color:var(--red)}
.imgrow{display:grid;grid-template-columns:150px minmax(0,1fr);gap:18px;padding:14px 0 14px 14px;
border-bottom:1px solid var(--line);align-items:center}
.imgrow:last-child{border-bottom:none}
.imgrow.wrong{box-shadow:inset 3px 0 0 var(--red)}
.imgrow.hard{box-shadow:inset 3px 0 0 #f59e0b}
.thumb{width:128px;height:128px;object-fit:contain;border-radius:8px;border:1px solid var(--line);
background:#fafafa;display:block}
.noimg{width:128px;height:128px;border-radius:8px;border:1px dashed var(--line);display:flex;
align-items:center;justify-content:center;color:var(--muted);font-size:12px}
.name{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:var(--muted);
margin-top:6px;word-break:break-all}
.meta{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-bottom:6px}
.truth{font-weight:600;margin-right:6px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:14px}
.gallery figure{margin:0;border:1px solid var(--line);border-radius:10px;padding:10px;background:#fff}
.gallery figure img{width:100%;aspect-ratio:1;object-fit:contain;background:#fafafa;border-radius:6px}
.gallery figcaption{font-size:12.5px;margin-top:6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:26px}
.legend{font-size:12px;color:var(--muted);margin:0 0 8px}
"""


def _e(x) -> str:
    return html.escape(str(x))


def badge(text: str, kind: str = "neutral", *, big: bool = False) -> str:
    """A pill: ``kind`` is ``ok`` (green), ``bad`` (red), ``warn`` (amber) or ``neutral``."""
    return f'<span class="badge {kind}{" big" if big else ""}">{_e(text)}</span>'


def page(title: str, body: str, *, subtitle: str = "", cards: str = "") -> str:
    """The shared self-contained page shell: hero header, summary cards, sections, footer."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header class='hero'><div class='wrap' style='padding-bottom:0;padding-top:0'>"
        f"<h1>{_e(title)}</h1><p>{_e(subtitle)}</p></div></header>"
        f"<div class='wrap' style='padding-top:0'>"
        f"{f'<div class=cards>{cards}</div>' if cards else ''}{body}"
        f"<footer>clsviz {_e(__version__)} · generated {_e(stamp)} · one self-contained file</footer>"
        "</div></body></html>\n"
    )


def card(key: str, value: str, sub: str = "", *, value_html: bool = False) -> str:
    v = value if value_html else _e(value)
    return f"<div class='card'><div class='k'>{_e(key)}</div><div class='v'>{v}</div><div class='s'>{sub}</div></div>"


def thumbnail_data_uri(image, *, size: int = 256) -> str | None:
    """A small inline copy of ``image`` (path, PIL image, array or bytes), or None if unreadable."""
    try:
        img = load_image(image)
    except ImageError:
        return None
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    # flat synthetic images compress best as PNG; photos as JPEG
    small = img.width * img.height <= 128 * 128
    if small:
        img.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    else:
        img.save(buf, format="JPEG", quality=85)
        mime = "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _aligned(values, images: Sequence[str], what: str) -> list:
    """``values`` as a list aligned with ``images``: a sequence, or a mapping by path or file name."""
    if values is None:
        return [None] * len(images)
    if isinstance(values, Mapping):
        return [values.get(str(p), values.get(os.path.basename(str(p)))) for p in images]
    if isinstance(values, (set, frozenset)):
        return [(str(p) in values or os.path.basename(str(p)) in values) for p in images]
    values = list(values)
    if len(values) != len(images):
        raise OptionError(
            f"{what} has {len(values)} entries for {len(images)} images",
            hint="give one per image, or a dict keyed by file name",
        )
    return values


def _agreement_section(cmp: Comparison) -> str:
    failed = "".join(
        f"<tr><td><b>{_e(m)}</b></td><td colspan='4'>{_e(why)}</td><td>{badge('FAILED', 'bad')}</td></tr>"
        for m, why in cmp.failed.items()
    )
    if not cmp.agreements and not failed:
        return "<section><h2>Agreement</h2><p>Only one mode ran; nothing to compare.</p></section>"
    rows = [failed] if failed else []
    for a in cmp.agreements:
        good = a.max_abs_diff <= cmp.tolerance and a.top1_agree == 1.0
        rows.append(
            f"<tr><td><b>{_e(a.mode)}</b> vs {_e(a.reference)}</td>"
            f"<td class='num'>{a.max_abs_diff:.2e}</td><td class='num'>{a.cosine:.6f}</td>"
            f"<td class='num'>{a.top1_agree:.0%}</td><td class='num'>{a.topk_agree:.0%}</td>"
            f"<td>{badge('agree' if good else 'DISAGREE', 'ok' if good else 'bad')}</td></tr>"
        )
    return (
        "<section><h2>Agreement<small>raw outputs of each mode against "
        f"{_e(cmp.reference)}, tolerance max|Δ| ≤ {cmp.tolerance:g}</small></h2>"
        "<table><tr><th>pair</th><th class='num'>max |Δ|</th><th class='num'>cosine (min)</th>"
        "<th class='num'>top-1 agree</th><th class='num'>top-k agree</th><th></th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def _speed_section(cmp: Comparison) -> str:
    from .viz import fig_to_data_uri, latency_bars

    chart = fig_to_data_uri(latency_bars(cmp), dpi=120)
    n = next(iter(cmp.modes.values())).total.n
    descr = "".join(
        f"<li><b>{_e(m)}</b>: <span class='mono'>{_e(r.description)}</span></li>"
        for m, r in cmp.modes.items()
        if r.description
    )
    return (
        "<section><h2>Speed<small>milliseconds per batch, p50 over "
        f"{n} timed batches after warm-up, modes interleaved; build time in seconds</small></h2>"
        + render.latency_table(cmp)
        + f"<div class='center'><img class='chart' alt='latency per mode and stage' src='{chart}'></div>"
        + (f"<ul class='legend' style='margin-top:10px'>{descr}</ul>" if descr else "")
        + "</section>"
    )


def render_report(
    comparison: Comparison,
    *,
    title: str = "clsviz report",
    images=None,
    true_labels=None,
    hard=None,
    extra_sections: Iterable = (),
    subtitle: str = "",
    progress=None,
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    from .viz import fig_to_data_uri, topk_bars

    cmp = comparison
    names = list(cmp.images)
    images = names if images is None else [str(p) if isinstance(p, os.PathLike) else p for p in images]
    if len(images) != len(names):
        raise OptionError(f"{len(images)} images given for a comparison of {len(names)}")
    truths = _aligned(true_labels, names, "true_labels")
    hards = [bool(h) for h in _aligned(hard, names, "hard")]
    modes = list(cmp.modes)

    rows, n_lab, n_ok, n_hard, n_hard_ok = [], 0, 0, 0, 0
    wrong_names = []
    for i, (name, src) in enumerate(zip(names, images)):
        preds = {m: cmp.modes[m].predictions[i] for m in modes}
        truth = truths[i]
        correct = {m: (None if truth is None else p.label == truth) for m, p in preds.items()}
        all_ok = truth is not None and all(correct.values())
        if truth is not None:
            if hards[i]:
                n_hard += 1
                n_hard_ok += all_ok
            else:
                n_lab += 1
                n_ok += all_ok
                if not all_ok:
                    wrong_names.append(os.path.basename(name))
        uri = thumbnail_data_uri(src)
        thumb = (
            f"<img class='thumb' alt='{_e(os.path.basename(name))}' src='{uri}'>"
            if uri
            else "<div class='noimg'>no preview</div>"
        )
        chips = []
        if truth is not None:
            chips.append(f"<span class='truth'>true: {_e(truth)}</span>")
        for m in modes:
            p = preds[m]
            if correct[m] is None:
                chips.append(badge(f"{m}: {p.label}", "neutral"))
            else:
                chips.append(
                    badge(
                        f"{'✓' if correct[m] else '✗'} {m}: {p.label}",
                        "ok" if correct[m] else ("warn" if hards[i] else "bad"),
                    )
                )
        if hards[i]:
            chips.append(badge("hard case", "warn"))
        chart = fig_to_data_uri(topk_bars(preds, true_label=truth), dpi=100)
        wrong = truth is not None and not all_ok
        cls = (" hard" if hards[i] else " wrong") if wrong else ""
        rows.append(
            f"<div class='imgrow{cls}'><div>{thumb}"
            f"<div class='name'>{_e(os.path.basename(name))}</div></div>"
            f"<div><div class='meta'>{''.join(chips)}</div>"
            f"<img class='chart' alt='top-k per mode for {_e(os.path.basename(name))}' src='{chart}'>"
            f"</div></div>"
        )
        if progress is not None:
            progress(i + 1, len(names))

    # summary cards
    agree = cmp.agree
    if cmp.agreements:
        verdict = badge("✓ modes agree" if agree else "✗ modes DISAGREE", "ok" if agree else "bad", big=True)
        vsub = (
            f"max |Δ| {cmp.max_abs_diff:.1e} (tolerance {cmp.tolerance:g}); top-1 agree "
            f"{min(a.top1_agree for a in cmp.agreements):.0%}"
        )
    else:
        verdict, vsub = badge("single mode", "neutral", big=True), "nothing to compare"
    cards = [card("agreement", verdict, _e(vsub), value_html=True)]
    if n_lab or n_hard:
        acc_ok = n_ok == n_lab
        more = f", +{len(wrong_names) - 3} more" if len(wrong_names) > 3 else ""
        cards.append(
            card(
                "labelled images",
                f"{n_ok}/{n_lab} correct",
                (
                    "<span style='color:var(--green)'>✓ right in every mode</span>"
                    if acc_ok
                    else f"<span class='bad-text'>wrong: {_e(', '.join(wrong_names[:3]) + more)}</span>"
                )
                + (f"<br>hard cases: {n_hard_ok}/{n_hard} right" if n_hard else ""),
            )
        )
    fastest = min(cmp.modes.values(), key=lambda r: r.total.p50)
    cards.append(
        card("fastest mode", f"{fastest.mode}", f"{fastest.total.p50:.2f} ms p50 per batch of {fastest.batch_size}")
    )
    slow = max(cmp.modes.values(), key=lambda r: r.build_seconds)
    cards.append(
        card(
            "build time",
            f"≤ {slow.build_seconds:.2f} s",
            _e(" · ".join(f"{m} {r.build_seconds:.2f}s" for m, r in cmp.modes.items())),
        )
    )

    legend = (
        f"<p class='legend'>Bars: top-{cmp.top_k} scores per mode. Green = the true class, red = a wrong "
        "top-1, blue = top-1 when no label is known.</p>"
    )
    body = [
        _agreement_section(cmp),
        _speed_section(cmp),
        f"<section><h2>Images<small>{len(names)} images · {len(modes)} modes</small></h2>{legend}"
        + "".join(rows)
        + "</section>",
    ]
    for head, content in extra_sections or ():
        body.append(f"<section><h2>{_e(head)}</h2>{content}</section>")
    return page(title, "".join(body), subtitle=subtitle, cards="".join(cards))


def write_report(
    path,
    comparison: Comparison,
    *,
    title: str = "clsviz report",
    images=None,
    true_labels=None,
    hard=None,
    extra_sections: Iterable = (),
    subtitle: str = "",
    progress=None,
) -> Path:
    """Write a self-contained ``report.html`` for ``comparison``; returns its path.

    ``images`` are the inputs (paths; default: the comparison's image names) for the
    thumbnails.  ``true_labels`` and ``hard`` are sequences aligned with the images or
    dicts keyed by path or file name.  ``extra_sections`` is a list of ``(heading, html)``.
    ``progress`` is an optional callable(done, total) called per image.
    """
    text = render_report(
        comparison,
        title=title,
        images=images,
        true_labels=true_labels,
        hard=hard,
        extra_sections=extra_sections,
        subtitle=subtitle,
        progress=progress,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
