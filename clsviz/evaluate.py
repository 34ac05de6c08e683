"""Accuracy on a labelled folder, per mode: ``clsviz.evaluate`` and ``python -m clsviz evaluate``.

A labelled folder is either a folder per class (``FOLDER/circle/001.png``) or a flat
folder with ``labels.txt`` (``filename class`` per line; extra words such as ``hard``
are ignored, and ``class`` may be a name from the bundle's label list or a class id,
as in PaddleClas's ``val_list.txt``).

Images stream through batch by batch, here or on a Ray cluster (``ray=``, see
:mod:`clsviz.cluster`); either way the answer is the same :class:`Evaluation`, and only
the per-image top-k answers are kept, so memory does not grow with the images' pixels.
An image that cannot be read is recorded in :attr:`ModeEval.unreadable`, never a crash.

Locally, several modes score the folder side by side through the one interleaved harness
(:mod:`clsviz.timing`): each batch is scored by every mode, in an order shuffled per batch, so
the per-mode throughput is measured under the same conditions.  On Ray each mode has its own
pass over the folder (its own actor pool), one after another; the workers time each batch.

This module is callable: ``clsviz.evaluate(folder, bundle, ...)`` is :func:`evaluate`.
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import os
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .engines import ALL_MODES, MODES, EngineOptions, load, load_config
from .errors import ClsvizError, EngineError, FormatError, OptionError, OutputError
from .explain import report_section
from .safe_io import check_output_dir, read_text, translate_os_errors
from .timing import clock, interleaved_laps, peak_rss_mb, spanned
from .transforms import IMAGE_SUFFIXES, PathLike

LABELS_TXT = "labels.txt"
TOP_K = 5  # answers kept per image and mode: enough to say how far two modes agree
INTERLEAVED = "interleaved per batch"  # RunFacts.timing, local: each batch scored by every mode, shuffled order
SEQUENTIAL = "one mode after another"  # RunFacts.timing, Ray: a pass over the folder per mode

__all__ = [
    "evaluate",
    "Evaluation",
    "EvalReport",
    "ModeEval",
    "ModeAgreement",
    "RunFacts",
    "Misclassified",
    "Unreadable",
    "read_labelled_folder",
    "write_evaluation_html",
    "evaluate_cli",
]


@dataclass(frozen=True)
class Misclassified:
    path: str
    true: str
    pred: str
    score: float

    def to_dict(self) -> dict:
        return {"path": self.path, "true": self.true, "pred": self.pred, "score": round(self.score, 6)}


@dataclass(frozen=True)
class Unreadable:
    """An image of the folder that could not be read; it is left out of the accuracy."""

    path: str
    true: str
    error: str

    def to_dict(self) -> dict:
        return {"path": self.path, "true": self.true, "error": self.error}


@dataclass(frozen=True, eq=False, repr=False)
class ModeEval:
    """One mode's results on the folder."""

    mode: str
    accuracy: float  # over the images that could be read
    per_class: Mapping[str, float | None]  # None: no readable image of that class in the folder
    confusion: np.ndarray  # [classes, classes] counts; rows true, columns predicted
    misclassified: tuple[Misclassified, ...]
    y_pred: tuple[int, ...]  # -1: the image could not be read
    scores: tuple[float, ...]  # top-1 probability (NaN: unreadable)
    build_seconds: float
    seconds: float  # local: this mode's batches, summed; Ray: its pass (actor start and engine build included)
    unreadable: tuple[Unreadable, ...] = ()
    topk_ids: np.ndarray | None = None  # [images, k] class ids, best first; -1 rows: unreadable
    topk_probs: np.ndarray | None = None  # [images, k]
    busy_seconds: float = float("nan")  # time the engines spent reading, preprocessing and running, summed
    scoring_seconds: float = float("nan")  # first batch started → last batch done (no build, no actor start)

    @property
    def scored(self) -> int:
        return len(self.y_pred) - len(self.unreadable)

    def __repr__(self) -> str:  # the per-image fields would print the whole folder
        return (
            f"<ModeEval {self.mode}: accuracy {self.accuracy:.2%} on {self.scored} images, "
            f"{len(self.misclassified)} wrong, {len(self.unreadable)} unreadable>"
        )

    @property
    def images_per_second(self) -> float:
        """End to end: images / :attr:`seconds`."""
        return len(self.y_pred) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def steady_images_per_second(self) -> float:
        """Once every engine is up: images / :attr:`scoring_seconds`."""
        return len(self.y_pred) / self.scoring_seconds if self.scoring_seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "accuracy": _round(self.accuracy),
            "per_class": {k: (None if v is None else round(v, 6)) for k, v in self.per_class.items()},
            "confusion": self.confusion.tolist(),
            "misclassified": [m.to_dict() for m in self.misclassified],
            "unreadable": [u.to_dict() for u in self.unreadable],
            "build_seconds": round(self.build_seconds, 3),
            "seconds": round(self.seconds, 3),
            "images_per_second": _round(self.images_per_second, 2),
            "busy_seconds": _round(self.busy_seconds, 3),
            "scoring_seconds": _round(self.scoring_seconds, 3),
            "steady_images_per_second": _round(self.steady_images_per_second, 2),
        }


@dataclass(frozen=True)
class ModeAgreement:
    """How often a mode gives the reference mode's answer, image by image, on the folder."""

    mode: str
    reference: str
    images: int  # images both modes could read
    top1_agree: float  # share of images with the same top-1 class
    topk_agree: float  # share with the same top-k classes in the same order
    max_prob_diff: float  # largest |Δ probability| in the top k, over the images ranked alike
    differing: tuple[str, ...]  # images whose top-1 class differs

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "reference": self.reference,
            "images": self.images,
            "top1_agree": _round(self.top1_agree),
            "topk_agree": _round(self.topk_agree),
            "max_prob_diff": float(self.max_prob_diff),
            "differing": list(self.differing),
        }


@dataclass(frozen=True)
class RunFacts:
    """Where and how fast the evaluation ran."""

    backend: str  # "local" or "ray"
    workers: int  # engines scoring at once (Ray actors; 1 here)
    threads_per_worker: int
    batch_size: int
    images: int  # per mode
    modes: int
    seconds: float  # wall time: set-up, then every mode run
    setup_seconds: float  # before the first image: folder listed, engines built here or Ray joined/started
    peak_rss_mb: float  # this (driver) process's peak resident memory so far
    address: str | None = None  # the Ray runtime's address
    processes: tuple[str, ...] = ()  # Ray: the worker processes (host:pid) that returned answers
    timing: str = INTERLEAVED  # how the modes shared the machine: INTERLEAVED (local) or SEQUENTIAL (Ray)

    @property
    def images_per_second(self) -> float:
        return self.images * self.modes / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "address": self.address,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "batch_size": self.batch_size,
            "images": self.images,
            "modes": self.modes,
            "seconds": round(self.seconds, 3),
            "setup_seconds": round(self.setup_seconds, 3),
            "images_per_second": _round(self.images_per_second, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "processes": list(self.processes),
            "timing": self.timing,
        }

    def to_text(self) -> str:
        where = "local" if self.backend == "local" else f"ray at {self.address}"
        return (
            f"{where}: {self.workers} worker{'s' * (self.workers != 1)} × {self.threads_per_worker} "
            f"thread{'s' * (self.threads_per_worker != 1)}, batch {self.batch_size} · "
            f"{self.images * self.modes} images in {self.seconds:.1f} s ({self.images_per_second:.1f}/s; "
            f"set-up {self.setup_seconds:.1f} s) · "
            f"peak RSS {self.peak_rss_mb:.0f} MB" + (f" · modes {self.timing}" if self.modes > 1 else "")
        )


def _round(v: float, nd: int = 6):
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


@dataclass(frozen=True, eq=False, repr=False)
class Evaluation:
    """Accuracy, per-class accuracy, confusion matrix, misclassified and unreadable images per mode,
    agreement between the modes, and the facts of the run (local or Ray, workers, throughput, time)."""

    folder: str
    bundle: str
    layout: str  # "folders" or "labels_txt"
    labels: tuple[str, ...]
    paths: tuple[str, ...]
    y_true: tuple[int, ...]
    modes: Mapping[str, ModeEval]
    agreement: tuple[ModeAgreement, ...] = ()
    run: RunFacts | None = None

    @property
    def accuracy(self) -> dict[str, float]:
        return {m: r.accuracy for m, r in self.modes.items()}

    @property
    def per_class_accuracy(self) -> dict[str, dict[str, float | None]]:
        return {m: dict(r.per_class) for m, r in self.modes.items()}

    @property
    def confusion(self) -> dict[str, np.ndarray]:
        return {m: r.confusion for m, r in self.modes.items()}

    @property
    def misclassified(self) -> dict[str, tuple[Misclassified, ...]]:
        return {m: r.misclassified for m, r in self.modes.items()}

    @property
    def unreadable(self) -> tuple[Unreadable, ...]:
        """Images that could not be read (in any mode)."""
        seen: dict[str, Unreadable] = {}
        for r in self.modes.values():
            for u in r.unreadable:
                seen.setdefault(u.path, u)
        return tuple(seen.values())

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.y_true, int), minlength=len(self.labels))
        return {lab: int(c) for lab, c in zip(self.labels, counts)}

    def to_dict(self) -> dict:
        return {
            "folder": self.folder,
            "bundle": self.bundle,
            "layout": self.layout,
            "labels": list(self.labels),
            "images": len(self.paths),
            "class_counts": self.class_counts(),
            "accuracy": {m: _round(a) for m, a in self.accuracy.items()},
            "unreadable": [u.to_dict() for u in self.unreadable],
            "modes": {m: r.to_dict() for m, r in self.modes.items()},
            "agreement": [a.to_dict() for a in self.agreement],
            "run": None if self.run is None else self.run.to_dict(),
        }

    def to_text(self, *, max_errors: int = 10) -> str:
        modes = list(self.modes)
        lines = [
            f"{len(self.paths)} images in {len(self.labels)} classes from {self.folder} "
            f"({self.layout}); model {self.bundle}",
            "",
        ]
        lines.append(
            f"{'mode':<10} {'accuracy':>9} {'correct':>11} {'wrong':>6} {'build s':>8} {'run s':>7} {'img/s':>7}"
        )
        for m, r in self.modes.items():
            n = r.scored
            ok = n - len(r.misclassified)
            lines.append(
                f"{m:<10} {r.accuracy:>9.2%} {f'{ok}/{n}':>11} {len(r.misclassified):>6} "
                f"{r.build_seconds:>8.2f} {r.seconds:>7.2f} {r.images_per_second:>7.1f}"
            )
        if self.run is not None:
            lines.append(f"run: {self.run.to_text()}")
        for a in self.agreement:
            lines.append(
                f"{a.mode} vs {a.reference}: top-1 agrees on {a.top1_agree:.2%} of {a.images} images, "
                f"top-{TOP_K} on {a.topk_agree:.2%}; max |Δp| {a.max_prob_diff:.2g}"
            )
        counts = self.class_counts()
        w = max([len("class")] + [len(x) for x in self.labels])
        lines += ["", f"{'class':<{w}} {'n':>5} " + " ".join(f"{m:>10}" for m in modes)]
        for lab in self.labels:
            cells = " ".join(
                f"{'—' if r.per_class[lab] is None else format(r.per_class[lab], '.1%'):>10}"
                for r in self.modes.values()
            )
            lines.append(f"{lab:<{w}} {counts[lab]:>5} {cells}")
        first = self.modes[modes[0]]
        if first.misclassified:
            lines += [
                "",
                f"misclassified ({modes[0]}, {min(max_errors, len(first.misclassified))} of "
                f"{len(first.misclassified)}):",
            ]
            for e in first.misclassified[:max_errors]:
                lines.append(f"  {_rel(e.path, self.folder)}: {e.true} → {e.pred} ({e.score:.3f})")
        bad = self.unreadable
        if bad:
            lines += ["", f"unreadable, left out of the accuracy ({min(max_errors, len(bad))} of {len(bad)}):"]
            lines += [f"  {_rel(u.path, self.folder)}: {u.error}" for u in bad[:max_errors]]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:  # the per-image fields would print the whole folder
        acc = ", ".join(f"{m} {a:.2%}" for m, a in self.accuracy.items())
        run = f"; {self.run.backend}" if self.run is not None else ""
        return f"<Evaluation of {len(self.paths)} images in {len(self.labels)} classes: {acc}{run}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(m)}</b></td><td style='text-align:right'>{r.accuracy:.2%}</td>"
            f"<td style='text-align:right'>{len(r.misclassified)}</td>"
            f"<td style='text-align:right'>{r.images_per_second:.1f}</td></tr>"
            for m, r in self.modes.items()
        )
        per = "".join(
            f"<tr><td>{html.escape(lab)}</td>"
            + "".join(
                f"<td style='text-align:right'>{'—' if r.per_class[lab] is None else f'{r.per_class[lab]:.1%}'}</td>"
                for r in self.modes.values()
            )
            + "</tr>"
            for lab in self.labels
        )
        heads = "".join(f"<th>{html.escape(m)}</th>" for m in self.modes)
        agree = "".join(
            f"<br><small>{html.escape(a.mode)} vs {html.escape(a.reference)}: top-1 agrees on "
            f"{a.top1_agree:.2%}</small>"
            for a in self.agreement
        )
        bad = self.unreadable
        unread = (
            f"<br><small style='color:#b45309'>{len(bad)} unreadable image(s) left out: "
            f"{html.escape(', '.join(os.path.basename(u.path) for u in bad[:5]))}"
            f"{' …' if len(bad) > 5 else ''}</small>"
            if bad
            else ""
        )
        run = f"<br><small>{html.escape(self.run.to_text())}</small>" if self.run is not None else ""
        return (
            f"<div><b>{len(self.paths)} images</b>, {len(self.labels)} classes from "
            f"<code>{html.escape(self.folder)}</code>"
            f"<table><tr><th>mode</th><th>accuracy</th><th>wrong</th><th>img/s</th></tr>{rows}</table>"
            f"{run}{agree}{unread}"
            f"<details><summary>per class</summary><table><tr><th>class</th>{heads}</tr>{per}</table>"
            f"</details></div>"
        )


EvalReport = Evaluation  # the name before Ray runs arrived


def _rel(path: str, folder: str) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:  # pragma: no cover - other drive on Windows
        return path


def _within(path, base: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies inside the (resolved) folder ``base``."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError):
        return False
    return real == base or base in real.parents


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _class_id(name: str, index: Mapping[str, int], n: int):
    if name in index:
        return index[name]
    if name.isdigit() and int(name) < n:
        return int(name)
    return None


def read_labelled_folder(folder, labels: Sequence[str]) -> tuple[list[Path], list[int], str]:
    """``(paths, class ids, layout)`` for a labelled folder; class names map through ``labels``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(
            "labelled folder not found",
            path=folder,
            hint="pass a folder with one sub-folder per class, or images plus labels.txt",
        )
    labels = [str(x) for x in labels]
    index = {name: i for i, name in enumerate(labels)}
    known = ", ".join(labels[:20]) + (" …" if len(labels) > 20 else "")
    paths: list[Path] = []
    ys: list[int] = []
    unknown: dict[str, str] = {}
    txt = folder / LABELS_TXT
    if os.path.lexists(txt):
        layout = "labels_txt"
        base = folder.resolve()
        if not _within(txt, base):
            raise FormatError(
                f"{LABELS_TXT} is a link to a file outside the folder",
                path=txt,
                hint="put the real labels.txt inside the folder",
            )
        for n, line in enumerate(read_text(txt, what=LABELS_TXT).splitlines(), 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) < 2:
                raise FormatError(f"{LABELS_TXT} line {n}: expected 'filename class', found {line.strip()!r}", path=txt)
            p = folder / parts[0]
            if not _within(p, base):  # '../x.png', '/etc/x.png', a link out: never read nor embedded
                raise FormatError(
                    f"{LABELS_TXT} line {n} names {parts[0]!r}, which is outside the folder",
                    path=txt,
                    hint="list images by their path inside the folder that holds "
                    "labels.txt; clsviz reads nothing outside it",
                )
            if not p.is_file():
                raise FormatError(
                    f"{LABELS_TXT} line {n} names {parts[0]!r}, which is not in the folder",
                    path=txt,
                    hint="filenames are relative to the folder that holds labels.txt",
                )
            cid = _class_id(parts[1], index, len(labels))
            if cid is None:
                unknown.setdefault(parts[1], f"line {n}")
                continue
            paths.append(p)
            ys.append(cid)
    else:
        layout = "folders"
        subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not subdirs:
            raise FormatError(
                "folder has neither labels.txt nor class sub-folders",
                path=folder,
                hint="use FOLDER/<class name>/<image> or FOLDER/labels.txt ('filename class')",
            )
        for d in subdirs:
            imgs = sorted(p for p in d.rglob("*") if _is_image(p))
            if not imgs:
                continue
            cid = _class_id(d.name, index, len(labels))
            if cid is None:
                unknown.setdefault(d.name, f"folder {d.name}/")
                continue
            paths.extend(imgs)
            ys.extend([cid] * len(imgs))
    if unknown:
        names = ", ".join(f"{k!r} ({v})" for k, v in list(unknown.items())[:8])
        raise FormatError(
            f"unknown class name(s) {names}: the model's classes are {known}",
            path=txt if layout == "labels_txt" else folder,
            hint="name classes exactly as in the bundle's label list (inference.yml), or by id",
        )
    if not paths:
        raise FormatError(
            "no labelled images found", path=folder, hint=f"image files end in {', '.join(IMAGE_SUFFIXES)}"
        )
    return paths, ys, layout


def _parse_modes(modes) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = MODES if modes.strip() == "all" else [m.strip() for m in modes.split(",") if m.strip()]
    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in ALL_MODES]
    if bad or not modes:
        raise OptionError(
            f"unknown mode(s) {bad or modes}", hint=f"choose from {', '.join(ALL_MODES)} or 'all' (Paddle's three)"
        )
    return modes


class _LocalScorer:
    """Every mode's engine in this process, built up front (a bad option fails before any work)."""

    backend = "local"
    address = None
    workers = 1

    def __init__(self, bundle, *, modes, batch_size: int, top_k: int, options: dict):
        self.batch_size, self.top_k = batch_size, top_k
        self.clfs = {}
        try:
            for m in modes:
                self.clfs[m] = load(bundle, mode=m, batch_size=batch_size, **options)
        except BaseException:
            self.close()
            raise
        self.threads = next(iter(self.clfs.values())).options.threads
        self.processes: set[str] = set()

    def build_seconds(self, mode: str) -> float:
        return float(self.clfs[mode].build_seconds)

    def score(self, mode: str, paths: Sequence, labels: Sequence[int]) -> Iterator[tuple]:
        clf, bs = self.clfs[mode], self.batch_size
        for start in range(0, len(paths), bs):
            chunk = paths[start : start + bs]
            # wall clock, as on Ray, where the spans come from other processes
            (ids, probs, errors), span = spanned(partial(clf.score_batch, chunk, top_k=self.top_k))
            yield np.arange(start, start + len(chunk)), ids, probs, errors, span

    def close(self) -> None:
        for c in self.clfs.values():
            c.close()


class _Tally:
    """One mode's per-image answers, filled batch by batch in any order (Ray returns them unordered)."""

    def __init__(self, n: int, k: int):
        self.ids = np.full((n, k), -1, dtype=np.int64)
        self.probs = np.full((n, k), np.nan, dtype=np.float64)
        self.errors: dict[int, str] = {}
        self.done = np.zeros(n, dtype=bool)
        self.busy, self.first, self.last = 0.0, float("inf"), float("-inf")

    def add(self, index, ids, probs, errors, span) -> int:
        """Record a batch scored from ``span[0]`` to ``span[1]`` (epoch seconds); returns how many
        images it adds (a retried batch adds none)."""
        index = np.asarray(index, dtype=np.int64)
        self.busy += span[1] - span[0]
        self.first, self.last = min(self.first, span[0]), max(self.last, span[1])
        k = min(self.ids.shape[1], np.shape(ids)[1])
        fresh = int((~self.done[index]).sum())
        self.ids[index, :k] = np.asarray(ids)[:, :k]
        self.probs[index, :k] = np.asarray(probs)[:, :k]
        for i, err in zip(index.tolist(), errors):
            if err:
                self.errors[i] = err
            else:
                self.errors.pop(i, None)
        self.done[index] = True
        return fresh


def _mode_eval(
    mode: str,
    tally: _Tally,
    y_true: np.ndarray,
    labels,
    paths,
    *,
    build_seconds: float,
    seconds: float,
    scoring_seconds: float | None = None,
) -> ModeEval:
    from .viz import confusion_counts

    if not tally.done.all():
        missing = int((~tally.done).sum())
        raise EngineError(
            f"mode {mode!r} returned answers for {len(y_true) - missing} of {len(y_true)} images",
            hint="this is a bug in clsviz or a lost Ray result; rerun with CLSVIZ_VERBOSE=1",
        )
    y_pred = tally.ids[:, 0].copy()
    scores = tally.probs[:, 0].copy()
    unread = np.zeros(len(y_true), dtype=bool)
    unread[list(tally.errors)] = True
    y_pred[unread] = -1
    ok = ~unread
    cm = confusion_counts(y_true, y_pred, len(labels))
    rows = cm.sum(axis=1)
    per_class = {lab: (None if rows[i] == 0 else float(cm[i, i] / rows[i])) for i, lab in enumerate(labels)}
    wrong = tuple(
        Misclassified(str(paths[i]), labels[y_true[i]], labels[y_pred[i]], float(scores[i]))
        for i in np.flatnonzero(ok & (y_pred != y_true))
    )
    unreadable = tuple(Unreadable(str(paths[i]), labels[y_true[i]], tally.errors[i]) for i in sorted(tally.errors))
    accuracy = float(np.mean(y_pred[ok] == y_true[ok])) if ok.any() else float("nan")
    return ModeEval(
        mode=mode,
        accuracy=accuracy,
        per_class=per_class,
        confusion=cm,
        misclassified=wrong,
        y_pred=tuple(int(v) for v in y_pred),
        scores=tuple(float(v) for v in scores),
        build_seconds=float(build_seconds),
        seconds=float(seconds),
        unreadable=unreadable,
        topk_ids=tally.ids,
        topk_probs=tally.probs,
        busy_seconds=tally.busy,
        scoring_seconds=(max(0.0, tally.last - tally.first) if scoring_seconds is None else scoring_seconds),
    )


def _agreement(mode: ModeEval, ref: ModeEval, paths) -> ModeAgreement:
    a_ids, b_ids = mode.topk_ids, ref.topk_ids
    assert a_ids is not None and b_ids is not None and mode.topk_probs is not None and ref.topk_probs is not None
    both = (a_ids[:, 0] >= 0) & (b_ids[:, 0] >= 0)
    n = int(both.sum())
    same1 = both & (a_ids[:, 0] == b_ids[:, 0])
    samek = both & (a_ids == b_ids).all(axis=1)
    diff = np.abs(mode.topk_probs[samek] - ref.topk_probs[samek])
    return ModeAgreement(
        mode=mode.mode,
        reference=ref.mode,
        images=n,
        top1_agree=float(same1.sum() / n) if n else float("nan"),
        topk_agree=float(samek.sum() / n) if n else float("nan"),
        max_prob_diff=float(diff.max()) if diff.size else 0.0,
        differing=tuple(str(paths[i]) for i in np.flatnonzero(both & ~same1)),
    )


class _Progress:
    """One bar in images over every mode (tqdm.auto: a widget in notebooks), or a callable
    ``progress(done, total, mode)``, or nothing."""

    def __init__(self, progress, total: int, desc: str):
        self.total, self.done, self.bar, self.fn = total, 0, None, None
        if callable(progress):
            self.fn = progress
        elif progress:
            self.bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)

    def mode(self, mode: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(mode)

    def update(self, n: int, mode: str) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.fn is not None:
            self.fn(self.done, self.total, mode)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _split_options(options: dict) -> tuple[dict, dict]:
    """``evaluate``'s keyword options → (``load_config`` keywords, the rest), checked up front."""
    cfg_keys = set(inspect.signature(load_config).parameters) - {"path"}
    load_keys = {k for k, p in inspect.signature(load).parameters.items() if p.kind is p.KEYWORD_ONLY}
    engine = {k: v for k, v in options.items() if k not in load_keys}
    if "mode" in options:
        raise OptionError("pass modes=, not mode=", hint="a mode, a comma list, a sequence or 'all'")
    EngineOptions.from_kwargs(**engine)  # an unknown or bad engine option fails before any work
    return {k: v for k, v in options.items() if k in cfg_keys}, options


def evaluate(
    folder: PathLike,
    bundle: PathLike,
    *,
    modes: str | Sequence[str] = ("predictor",),
    batch_size: int = 8,
    progress: bool | Callable[[int, int, str], None] = True,
    ray: bool | str | None = None,
    workers: int | None = None,
    **engine_options,
) -> Evaluation:
    """Run every image of a labelled ``folder`` through ``bundle`` in each of ``modes``.

    ``modes`` is a sequence, a comma list, or ``"all"``.  Class names map to ids through
    the bundle's label list; an unknown name raises :class:`FormatError`.

    ``ray=True`` runs on a local Ray runtime sized to this machine; ``ray="auto"`` or
    ``ray="ray://host:port"`` (or ``"host:port"``) on an existing cluster, with ``workers``
    actors (default: one per CPU / ``cpu_threads``).  The result is the same either way.
    ``progress`` is a bar (True), nothing (False) or a callable ``(done, total, mode)``.
    Other keywords go to :func:`clsviz.load` (``arch=``, ``cpu_threads=``, ``precision=``, …).
    """
    t0 = clock()
    modes = _parse_modes(modes)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    if ray in (None, False) and workers is not None:
        raise OptionError("workers= sets the size of a Ray actor pool", hint="pass ray=True (or an address) too")
    cfg_kw, options = _split_options(engine_options)
    cfg = load_config(bundle, **cfg_kw)
    n_cls = cfg.class_num or len(cfg.labels or ())
    if not n_cls:
        raise OptionError(
            "cannot tell the model's classes", path=bundle, hint="pass labels= (a class list) or class_num="
        )
    labels = tuple(cfg.labels) if cfg.labels else tuple(str(i) for i in range(n_cls))
    paths, ys, layout = read_labelled_folder(folder, labels)  # a bad folder fails before any engine is built
    y_true = np.asarray(ys, dtype=np.int64)
    k = min(TOP_K, len(labels))
    scorer: Any  # _LocalScorer or cluster.RayScorer: the same calls
    if ray in (None, False):
        scorer = _LocalScorer(bundle, modes=modes, batch_size=batch_size, top_k=k, options=options)
    else:
        from .cluster import RayScorer

        scorer = RayScorer(bundle, address=ray, workers=workers, batch_size=batch_size, top_k=k, options=options)
    bar = _Progress(progress, len(paths) * len(modes), "evaluating" + (" on ray" if scorer.backend == "ray" else ""))
    results = {}
    setup = clock() - t0
    try:
        if scorer.backend == "local":
            results = _score_interleaved(scorer, modes, paths, ys, y_true, labels, k, bar)
        else:
            for m in modes:
                bar.mode(m)
                tally = _Tally(len(paths), k)
                t_mode = clock()
                for index, ids, probs, errors, span in scorer.score(m, paths, ys):
                    bar.update(tally.add(index, ids, probs, errors, span), m)
                results[m] = _mode_eval(
                    m, tally, y_true, labels, paths, build_seconds=scorer.build_seconds(m), seconds=clock() - t_mode
                )
    finally:
        bar.close()
        scorer.close()
    ref = results[modes[0]]
    run = RunFacts(
        backend=scorer.backend,
        workers=scorer.workers,
        threads_per_worker=scorer.threads,
        batch_size=batch_size,
        images=len(paths),
        modes=len(modes),
        seconds=clock() - t0,
        setup_seconds=setup,
        peak_rss_mb=peak_rss_mb(),
        address=scorer.address,
        processes=tuple(sorted(scorer.processes)),
        timing=INTERLEAVED if scorer.backend == "local" else SEQUENTIAL,
    )
    return Evaluation(
        folder=str(folder),
        bundle=str(bundle),
        layout=layout,
        labels=labels,
        paths=tuple(str(p) for p in paths),
        y_true=tuple(int(v) for v in y_true),
        modes=results,
        agreement=tuple(_agreement(r, ref, paths) for m, r in results.items() if m != modes[0]),
        run=run,
    )


def _score_interleaved(
    scorer: _LocalScorer,
    modes: Sequence[str],
    paths: Sequence,
    ys: Sequence[int],
    y_true: np.ndarray,
    labels: Sequence[str],
    k: int,
    bar: _Progress,
) -> dict[str, ModeEval]:
    """Every mode scores the folder side by side through the one interleaved harness
    (:func:`clsviz.timing.interleaved_laps`): a round per batch, in which each mode scores that
    batch once, in an order shuffled per round, so noise on a shared machine hits every mode alike.
    Batch by batch, as before: only the per-image answers are kept."""
    tallies = {m: _Tally(len(paths), k) for m in modes}
    streams = {m: scorer.score(m, paths, ys) for m in modes}

    def contender(m: str):
        def run() -> dict[str, float]:
            index, ids, probs, errors, span = next(streams[m])
            bar.mode(m)
            bar.update(tallies[m].add(index, ids, probs, errors, span), m)
            return {"total": span[1] - span[0]}

        return run

    rounds = -(-len(paths) // scorer.batch_size)
    laps = interleaved_laps({m: contender(m) for m in modes}, repeats=rounds, warmup=0, seed=0)
    results = {}
    for m in modes:
        own = float(sum(laps[m]["total"]))  # this mode's batches only: the others ran in between
        results[m] = _mode_eval(
            m,
            tallies[m],
            y_true,
            labels,
            paths,
            build_seconds=scorer.build_seconds(m),
            seconds=own,
            scoring_seconds=own,
        )
    return results


def write_evaluation_html(report: Evaluation, out_dir, *, max_gallery: int = 120, explain: int = 6) -> Path:
    """Write ``confusion.png`` (first mode; ``confusion-<mode>.png`` for the others) and a
    self-contained ``evaluation.html`` into ``out_dir``; returns the HTML path.  The gallery
    embeds only images inside ``report.folder`` (symlinks resolved).  ``explain``: saliency
    maps for up to that many misclassified images (Grad-CAM in the dygraph mode; 0: none)."""
    out = check_output_dir(out_dir)
    with translate_os_errors(OutputError, action="write the report"):
        out.mkdir(parents=True, exist_ok=True)
        return _write_evaluation_html(report, out, max_gallery=max_gallery, explain=explain)


def _explain_section(report: Evaluation, errors, base: Path, limit: int) -> str:
    """Where the model looked on the first misclassified images (inside the folder only):
    Grad-CAM in the dygraph mode (the bundle's checkpoint, or its program rebuilt as a Layer),
    else coarse occlusion in the predictor.  A model that cannot be explained gets a note."""

    picked = [err for err in errors if _within(err.path, base)][:limit]
    if not picked:
        return ""
    clf, why = None, ""
    for mode in ("dygraph", "predictor"):
        try:
            clf = load(report.bundle, mode=mode)
            break
        except ClsvizError as e:
            why = str(e)
    if clf is None:
        return f"<p class='legend'>no saliency maps: {html.escape(why)}</p>"
    try:
        captions = [
            f"<b>{html.escape(err.true)}</b> → <span style='color:var(--red)'>{html.escape(err.pred)}</span>"
            f"<div class='name'>{html.escape(_rel(err.path, report.folder))}</div>"
            for err in picked
        ]
        return report_section([err.path for err in picked], {clf.mode: clf}, captions=captions, limit=limit)
    finally:
        clf.close()


def _write_evaluation_html(report: Evaluation, out: Path, *, max_gallery: int, explain: int = 6) -> Path:
    from .report import badge, card, page, thumbnail_data_uri
    from .viz import confusion_matrix, fig_to_png_bytes

    e = html.escape
    modes = list(report.modes)
    matrices = []
    same = len({r.y_pred for r in report.modes.values()}) == 1
    for i, (m, r) in enumerate(report.modes.items()):
        fig = confusion_matrix(
            report.y_true,
            r.y_pred,
            report.labels,
            title=f"{m}: accuracy {r.accuracy:.1%} ({r.scored - len(r.misclassified)}/{r.scored})",
        )
        png = fig_to_png_bytes(fig)
        (out / ("confusion.png" if i == 0 else f"confusion-{m}.png")).write_bytes(png)
        if same and i > 0:
            continue  # identical answers: one matrix says it all
        matrices.append(
            f"<img class='chart' style='flex:1 1 440px;max-width:560px;min-width:0' "
            f"alt='confusion matrix {e(m)}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        )

    n = len(report.paths)
    cards = "".join(
        card(
            f"accuracy · {m}",
            f"{r.accuracy:.1%}",
            f"{r.scored - len(r.misclassified)}/{r.scored} right · "
            + (
                badge("no errors", "ok")
                if not r.misclassified
                else badge(f"{len(r.misclassified)} wrong", "bad" if r.accuracy < 0.9 else "warn")
            ),
        )
        for m, r in report.modes.items()
    )
    bad = report.unreadable
    cards += card(
        "data",
        f"{n} images",
        f"{len(report.labels)} classes · layout {e(report.layout)}"
        + (f" · {badge(f'{len(bad)} unreadable', 'warn')}" if bad else ""),
    )
    if report.run is not None:
        run = report.run
        cards += card(
            "run",
            f"{run.images_per_second:.1f} img/s",
            e(
                f"{'Ray' if run.backend == 'ray' else 'local'} · {run.workers} worker(s) × "
                f"{run.threads_per_worker} thread(s) · {run.seconds:.1f} s"
            ),
        )

    counts = report.class_counts()
    heads = "".join(f"<th class='num'>{e(m)}</th>" for m in modes)
    per_rows = []
    for lab in report.labels:
        cells = []
        for r in report.modes.values():
            v = r.per_class[lab]
            if v is None:
                cells.append("<td class='num'>—</td>")
            else:
                color = "var(--green)" if v >= 0.97 else ("var(--amber)" if v >= 0.8 else "var(--red)")
                cells.append(f"<td class='num'><span style='color:{color};font-weight:600'>{v:.1%}</span></td>")
        per_rows.append(f"<tr><td>{e(lab)}</td><td class='num'>{counts[lab]}</td>{''.join(cells)}</tr>")
    per_class = f"<table><tr><th>class</th><th class='num'>images</th>{heads}</tr>{''.join(per_rows)}</table>"

    first = report.modes[modes[0]]
    figs = []
    base = Path(report.folder).resolve()
    for err in first.misclassified[:max_gallery]:
        # only files that really live inside the evaluated folder are embedded in the page
        uri = thumbnail_data_uri(err.path, size=192) if _within(err.path, base) else None
        img = f"<img alt='{e(os.path.basename(err.path))}' src='{uri}'>" if uri else "<div class='noimg'>?</div>"
        figs.append(
            f"<figure>{img}<figcaption><b>{e(err.true)}</b> → "
            f"<span style='color:var(--red);font-weight:600'>{e(err.pred)}</span> "
            f"<small>({err.score:.2f})</small><div class='name'>{e(_rel(err.path, report.folder))}</div>"
            f"</figcaption></figure>"
        )
    if figs:
        more = (
            f"<p class='legend'>showing {len(figs)} of {len(first.misclassified)}</p>"
            if len(first.misclassified) > len(figs)
            else ""
        )
        gallery = f"{more}<div class='gallery'>{''.join(figs)}</div>"
    else:
        gallery = f"<p>{badge('every image classified correctly', 'ok')}</p>"

    why = _explain_section(report, first.misclassified, base, explain) if explain else ""
    if why:
        why = (
            f"<section><h2>Why did it say that?<small>{e(modes[0])} · misclassified images · "
            f"saliency for the predicted class</small></h2>{why}</section>"
        )
    agree = ""
    if report.agreement:
        rows = "".join(
            f"<tr><td>{e(a.mode)} vs {e(a.reference)}</td><td class='num'>{a.top1_agree:.2%}</td>"
            f"<td class='num'>{a.topk_agree:.2%}</td><td class='num'>{a.max_prob_diff:.2g}</td>"
            f"<td>{e(', '.join(_rel(x, report.folder) for x in a.differing[:10]))}"
            f"{' …' if len(a.differing) > 10 else ''}</td></tr>"
            for a in report.agreement
        )
        agree = (
            f"<section><h2>Agreement between modes<small>image by image, over {report.agreement[0].images} "
            f"images</small></h2><table><tr><th>modes</th><th class='num'>top-1 agrees</th>"
            f"<th class='num'>top-{TOP_K} agrees</th><th class='num'>max |Δp|</th><th>differing images</th>"
            f"</tr>{rows}</table></section>"
        )
    unread = ""
    if bad:
        rows = "".join(
            f"<tr><td>{e(_rel(u.path, report.folder))}</td><td>{e(u.true)}</td><td>{e(u.error)}</td></tr>"
            for u in bad[:max_gallery]
        )
        unread = (
            f"<section><h2>Unreadable images<small>left out of the accuracy</small></h2>"
            f"<table><tr><th>image</th><th>class</th><th>error</th></tr>{rows}</table></section>"
        )
    note = (
        f"<p class='legend'>{badge('identical in every mode', 'ok')} {e(', '.join(modes))} gave the same "
        f"answer for every image, so one matrix is shown.</p>"
        if same and len(modes) > 1
        else ""
    )
    body = (
        f"<section><h2>Confusion matrix<small>rows: true class · columns: predicted</small></h2>{note}"
        f"<div style='display:flex;flex-wrap:wrap;gap:18px;justify-content:center'>{''.join(matrices)}</div>"
        f"</section><section><h2>Per-class accuracy</h2>{per_class}</section>"
        f"<section><h2>Misclassified<small>{e(modes[0])} · true → predicted (score)</small></h2>"
        f"{gallery}</section>{why}{agree}{unread}"
    )
    text = page(
        f"Evaluation: {os.path.basename(os.path.abspath(report.folder))}",
        body,
        subtitle=f"{report.folder} · model {report.bundle} · modes: {', '.join(modes)}",
        cards=cards,
    )
    path = out / "evaluation.html"
    tmp = out / ".evaluation.html.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # a full disk: no half-written temporary file left behind
            tmp.unlink()
    return path


def evaluate_cli(a) -> int:
    """``python -m clsviz evaluate FOLDER --bundle B [--mode M|a,b|all] [--ray [ADDRESS]] [--workers N]
    [--batch_size N] [--cpu_threads N] [--out DIR] [--json]``."""
    out = Path(a.out or os.path.join("out", "evaluate"))
    check_output_dir(out, what="--out")  # before the evaluation, not after it
    options = {
        k: v
        for k, v in (("cpu_threads", getattr(a, "cpu_threads", None)), ("trust", getattr(a, "trust", None) or None))
        if v is not None
    }
    rep = evaluate(
        a.folder,
        a.bundle,
        modes=a.mode,
        batch_size=getattr(a, "batch_size", 8),
        ray=getattr(a, "ray", None),
        workers=getattr(a, "workers", None),
        **options,
    )
    page_path = write_evaluation_html(rep, out)
    if a.json:
        d = rep.to_dict()
        d["html"] = str(page_path)
        print(json.dumps(d, indent=2))
    else:
        print(rep.to_text())
        print(f"\nreport: {page_path}\nconfusion matrix: {out / 'confusion.png'}")
    return 0


class _CallableModule(types.ModuleType):
    """``clsviz.evaluate`` is this module, and calling it calls :func:`evaluate` (as ``clsviz.inspect``)."""

    def __call__(self, folder, bundle, **kwargs) -> Evaluation:
        return evaluate(folder, bundle, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
