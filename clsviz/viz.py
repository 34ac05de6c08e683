"""Matplotlib figures: top-k bars, per-stage latency, confusion matrix.

Every function returns a :class:`matplotlib.figure.Figure` built directly (Agg canvas),
never through ``pyplot``, so nothing leaks into a notebook's or a script's global figure
state and the figures work headless.  Jupyter shows a returned ``Figure`` as usual.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .results import STAGES, Comparison, Prediction

# One palette for every chart and the HTML report.
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
BLUE = "#2563eb"
PALE = "#93c5fd"
GREEN = "#16a34a"
RED = "#dc2626"
STAGE_COLORS = {"preprocess": "#60a5fa", "forward": "#2563eb", "postprocess": "#1e3a8a"}

__all__ = ["topk_bars", "latency_bars", "confusion_matrix", "confusion_counts", "fig_to_png_bytes", "fig_to_data_uri"]


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=8, length=0)
    ax.title.set_color(INK)


def _by_mode(predictions) -> dict[str, Prediction]:
    if isinstance(predictions, Prediction):
        return {predictions.mode: predictions}
    if isinstance(predictions, Mapping):
        return dict(predictions)
    out: dict[str, Prediction] = {}
    for p in predictions:
        out[p.mode if p.mode not in out else f"{p.mode}#{len(out)}"] = p
    return out


def topk_bars(
    predictions,
    *,
    true_label: str | None = None,
    k: int | None = None,
    title: str | None = None,
    width: float | None = None,
) -> Figure:
    """Top-k scores as horizontal bars, one panel per mode, side by side.

    ``predictions`` is one :class:`Prediction`, a list of them (one per mode) or a dict
    mode → Prediction.  With ``true_label`` the true class's bar is green and a wrong
    top-1 red; otherwise the top-1 bar is dark blue.
    """
    per_mode = _by_mode(predictions)
    if not per_mode:
        raise ValueError("topk_bars needs at least one prediction")
    k = k or max(len(p.topk) for p in per_mode.values())
    n = len(per_mode)
    fig = Figure(figsize=(width or 3.0 * n, 0.26 * k + 0.5), dpi=100, facecolor="white", layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.08, h_pad=0.02, wspace=0.06)  # type: ignore[union-attr, call-arg]
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (mode, pred) in zip(axes, per_mode.items()):
        top = pred.topk[:k]
        y = np.arange(len(top))[::-1]
        colors = []
        for i, t in enumerate(top):
            if true_label is not None and t.label == true_label:
                colors.append(GREEN)
            elif i == 0:
                colors.append(RED if true_label is not None else BLUE)
            else:
                colors.append(PALE)
        ax.barh(y, [1.0] * len(top), color="#f3f4f6", height=0.7, zorder=0)
        ax.barh(y, [t.score for t in top], color=colors, height=0.7, zorder=1)
        for yi, t in zip(y, top):
            ax.text(
                1.03,
                yi,
                f"{t.score:.3f}",
                va="center",
                ha="left",
                fontsize=8,
                color=INK,
                transform=ax.get_yaxis_transform(),
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.55, len(top) - 0.45)
        ax.set_yticks(y, [t.label for t in top])
        ax.tick_params(axis="y", length=0, labelsize=8.5, colors=INK, pad=3)
        ax.set_xticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(mode, fontsize=9, color=MUTED, loc="left", pad=3)
    if title:
        fig.suptitle(title, fontsize=10, color=INK)
    return fig


def latency_bars(comparison: Comparison, *, title: str | None = None) -> Figure:
    """Per-mode latency: p50 of each stage stacked, with a whisker up to the total's p90."""
    modes = list(comparison.modes)
    fig = _figure(7.2, 0.55 * len(modes) + 1.25)
    ax = fig.subplots()
    _style(ax)
    y = np.arange(len(modes))[::-1]
    left = np.zeros(len(modes))
    for stage in STAGES:
        vals = np.array([comparison.modes[m].stages[stage].p50 for m in modes])
        ax.barh(y, vals, left=left, height=0.55, color=STAGE_COLORS[stage], label=stage, zorder=2)
        left += vals
    p90 = np.array([comparison.modes[m].total.p90 for m in modes])
    ax.errorbar(
        left,
        y,
        xerr=[np.zeros_like(left), np.maximum(p90 - left, 0)],
        fmt="none",
        ecolor=INK,
        elinewidth=1,
        capsize=4,
        zorder=3,
        label="p90 (total)",
    )
    for yi, m, hi in zip(y, modes, p90):
        ax.text(hi, yi, f"  {comparison.modes[m].total.p50:.2f} ms", va="center", fontsize=8, color=INK)
    ax.set_yticks(y, modes)
    ax.tick_params(axis="y", labelsize=9, colors=INK)
    bs = {comparison.modes[m].batch_size for m in modes}
    ax.set_xlabel(
        f"milliseconds per batch of {bs.pop() if len(bs) == 1 else 'N'} (p50 stacked)", fontsize=8, color=MUTED
    )
    ax.set_xlim(0, float(max(left.max(), p90.max())) * 1.18 or 1.0)
    ax.grid(axis="x", color=GRID, zorder=0)
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncol=4,
        frameon=False,
        fontsize=8,
        handlelength=1.2,
        borderaxespad=0.2,
    )
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def confusion_counts(y_true, y_pred, n: int) -> np.ndarray:
    """``n × n`` integer counts; rows are true classes, columns predicted.

    A prediction of -1 (an image that could not be read) is left out.
    """
    m = np.zeros((n, n), dtype=np.int64)
    t, p = np.asarray(y_true, int), np.asarray(y_pred, int)
    scored = p >= 0
    np.add.at(m, (t[scored], p[scored]), 1)
    return m


def confusion_matrix(y_true, y_pred, labels: Sequence[str], *, title: str | None = None) -> Figure:
    """Confusion matrix (rows: true, columns: predicted) with counts in the cells.

    Cell colour is the row-normalised rate, so classes of different sizes read alike.
    """
    labels = [str(x) for x in labels]
    n = len(labels)
    counts = confusion_counts(y_true, y_pred, n)
    rows = counts.sum(axis=1, keepdims=True)
    rate = counts / np.maximum(rows, 1)
    side = min(max(3.2, 0.48 * n + 1.6), 12)
    fig = _figure(side + 0.9, side)
    ax = fig.subplots()
    im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted", fontsize=9, color=MUTED)
    ax.set_ylabel("true", fontsize=9, color=MUTED)
    ax.tick_params(length=0, colors=INK)
    for s in ax.spines.values():
        s.set_visible(False)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    color = "white" if rate[i, j] > 0.55 else (RED if i != j else INK)
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color=color)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.ax.tick_params(labelsize=7, colors=MUTED, length=0)
    cb.outline.set_visible(False)
    cb.set_label("share of the true class", fontsize=8, color=MUTED)
    total = int(counts.sum())
    acc = float(np.trace(counts)) / total if total else float("nan")
    ax.set_title(title or f"accuracy {acc:.1%} ({int(np.trace(counts))}/{total})", fontsize=10, color=INK, loc="left")
    fig.tight_layout()
    return fig


def fig_to_png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes (tight bounding box)."""
    buf = io.BytesIO()
    # a constrained layout already fits everything; "tight" would draw the figure twice
    tight = "tight" if fig.get_layout_engine() is None else None
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=tight, pad_inches=0.05, facecolor=fig.get_facecolor())
    return buf.getvalue()


def fig_to_data_uri(fig: Figure, *, dpi: int = 110) -> str:
    """``data:image/png;base64,…`` for inlining ``fig`` in self-contained HTML."""
    return "data:image/png;base64," + base64.b64encode(fig_to_png_bytes(fig, dpi=dpi)).decode("ascii")
