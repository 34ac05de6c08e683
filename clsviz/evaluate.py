"""Accuracy on a labelled folder, per mode: ``clsviz.evaluate`` and ``python -m clsviz evaluate``.

A labelled folder is either a folder per class (``FOLDER/circle/001.png``) or a flat
folder with ``labels.txt`` (``filename class`` per line; extra words such as ``hard``
are ignored, and ``class`` may be a name from the bundle's label list or a class id,
as in PaddleClas's ``val_list.txt``).
"""
from __future__ import annotations

import base64
import html
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import FormatError, OptionError
from .transforms import IMAGE_SUFFIXES

LABELS_TXT = "labels.txt"

__all__ = ["evaluate", "EvalReport", "ModeEval", "Misclassified", "read_labelled_folder",
           "write_evaluation_html", "evaluate_cli"]


@dataclass(frozen=True)
class Misclassified:
    path: str
    true: str
    pred: str
    score: float

    def to_dict(self) -> dict:
        return {"path": self.path, "true": self.true, "pred": self.pred, "score": round(self.score, 6)}


@dataclass(frozen=True, eq=False)
class ModeEval:
    """One mode's results on the folder."""

    mode: str
    accuracy: float
    per_class: Mapping[str, float | None]  # None: no image of that class in the folder
    confusion: np.ndarray  # [classes, classes] counts; rows true, columns predicted
    misclassified: tuple[Misclassified, ...]
    y_pred: tuple[int, ...]
    scores: tuple[float, ...]
    build_seconds: float
    seconds: float

    def to_dict(self) -> dict:
        return {"mode": self.mode, "accuracy": round(self.accuracy, 6),
                "per_class": {k: (None if v is None else round(v, 6)) for k, v in self.per_class.items()},
                "confusion": self.confusion.tolist(),
                "misclassified": [m.to_dict() for m in self.misclassified],
                "build_seconds": round(self.build_seconds, 3), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, eq=False)
class EvalReport:
    """Accuracy, per-class accuracy, confusion matrix and misclassified images, per mode."""

    folder: str
    bundle: str
    layout: str  # "folders" or "labels_txt"
    labels: tuple[str, ...]
    paths: tuple[str, ...]
    y_true: tuple[int, ...]
    modes: Mapping[str, ModeEval]

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

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.y_true, int), minlength=len(self.labels))
        return {lab: int(c) for lab, c in zip(self.labels, counts)}

    def to_dict(self) -> dict:
        return {"folder": self.folder, "bundle": self.bundle, "layout": self.layout,
                "labels": list(self.labels), "images": len(self.paths),
                "class_counts": self.class_counts(),
                "accuracy": {m: round(a, 6) for m, a in self.accuracy.items()},
                "modes": {m: r.to_dict() for m, r in self.modes.items()}}

    def to_text(self, *, max_errors: int = 10) -> str:
        modes = list(self.modes)
        lines = [f"{len(self.paths)} images in {len(self.labels)} classes from {self.folder} "
                 f"({self.layout}); model {self.bundle}", ""]
        lines.append(f"{'mode':<10} {'accuracy':>9} {'correct':>11} {'wrong':>6} {'build s':>8} {'run s':>7}")
        n = len(self.paths)
        for m, r in self.modes.items():
            ok = n - len(r.misclassified)
            lines.append(f"{m:<10} {r.accuracy:>9.2%} {f'{ok}/{n}':>11} {len(r.misclassified):>6} "
                         f"{r.build_seconds:>8.2f} {r.seconds:>7.2f}")
        counts = self.class_counts()
        w = max([len("class")] + [len(x) for x in self.labels])
        lines += ["", f"{'class':<{w}} {'n':>5} " + " ".join(f"{m:>10}" for m in modes)]
        for lab in self.labels:
            cells = " ".join(f"{'—' if r.per_class[lab] is None else format(r.per_class[lab], '.1%'):>10}"
                             for r in self.modes.values())
            lines.append(f"{lab:<{w}} {counts[lab]:>5} {cells}")
        first = self.modes[modes[0]]
        if first.misclassified:
            lines += ["", f"misclassified ({modes[0]}, {min(max_errors, len(first.misclassified))} of "
                          f"{len(first.misclassified)}):"]
            for e in first.misclassified[:max_errors]:
                lines.append(f"  {_rel(e.path, self.folder)}: {e.true} → {e.pred} ({e.score:.3f})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><b>{html.escape(m)}</b></td><td style='text-align:right'>{r.accuracy:.2%}</td>"
                       f"<td style='text-align:right'>{len(r.misclassified)}</td></tr>"
                       for m, r in self.modes.items())
        per = "".join(
            f"<tr><td>{html.escape(lab)}</td>" + "".join(
                f"<td style='text-align:right'>{'—' if r.per_class[lab] is None else f'{r.per_class[lab]:.1%}'}</td>"
                for r in self.modes.values()) + "</tr>" for lab in self.labels)
        heads = "".join(f"<th>{html.escape(m)}</th>" for m in self.modes)
        return (f"<div><b>{len(self.paths)} images</b>, {len(self.labels)} classes from "
                f"<code>{html.escape(self.folder)}</code>"
                f"<table><tr><th>mode</th><th>accuracy</th><th>wrong</th></tr>{rows}</table>"
                f"<details><summary>per class</summary><table><tr><th>class</th>{heads}</tr>{per}</table>"
                f"</details></div>")


def _rel(path: str, folder: str) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:  # pragma: no cover - other drive on Windows
        return path


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
        raise FormatError("labelled folder not found", path=folder,
                          hint="pass a folder with one sub-folder per class, or images plus labels.txt")
    labels = [str(x) for x in labels]
    index = {name: i for i, name in enumerate(labels)}
    known = ", ".join(labels[:20]) + (" …" if len(labels) > 20 else "")
    paths, ys, unknown = [], [], {}
    txt = folder / LABELS_TXT
    if txt.is_file():
        layout = "labels_txt"
        for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) < 2:
                raise FormatError(f"{LABELS_TXT} line {n}: expected 'filename class', found {line.strip()!r}",
                                  path=txt)
            p = folder / parts[0]
            if not p.is_file():
                raise FormatError(f"{LABELS_TXT} line {n} names {parts[0]!r}, which is not in the folder",
                                  path=txt, hint="filenames are relative to the folder that holds labels.txt")
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
            raise FormatError("folder has neither labels.txt nor class sub-folders", path=folder,
                              hint="use FOLDER/<class name>/<image> or FOLDER/labels.txt ('filename class')")
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
        raise FormatError(f"unknown class name(s) {names}: the model's classes are {known}",
                          path=txt if layout == "labels_txt" else folder,
                          hint="name classes exactly as in the bundle's label list (inference.yml), or by id")
    if not paths:
        raise FormatError("no labelled images found", path=folder,
                          hint=f"image files end in {', '.join(IMAGE_SUFFIXES)}")
    return paths, ys, layout


def _parse_modes(modes) -> tuple[str, ...]:
    from .engines import MODES

    if isinstance(modes, str):
        modes = MODES if modes.strip() == "all" else [m.strip() for m in modes.split(",") if m.strip()]
    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise OptionError(f"unknown mode(s) {bad or modes}", hint=f"choose from {', '.join(MODES)} or 'all'")
    return modes


def evaluate(folder, bundle, *, modes=("predictor",), batch_size: int = 8, progress: bool = True,
             **engine_options) -> EvalReport:
    """Run every image of a labelled ``folder`` through ``bundle`` in each of ``modes``.

    ``modes`` is a sequence, a comma list, or ``"all"``.  Class names map to ids through
    the bundle's label list; an unknown name raises :class:`FormatError`.
    """
    from tqdm import tqdm

    from .engines import load
    from .viz import confusion_counts

    modes = _parse_modes(modes)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    clfs = {}
    try:
        for m in modes:
            clfs[m] = load(bundle, mode=m, batch_size=batch_size, **engine_options)
            if len(clfs) == 1:  # a bad folder fails before the other engines are built
                cfg = clfs[m].config
                n_cls = cfg.class_num or len(cfg.labels or ())
                labels = tuple(cfg.labels) if cfg.labels else tuple(str(i) for i in range(n_cls))
                paths, ys, layout = read_labelled_folder(folder, labels)
        y_true = np.asarray(ys, int)
        chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
        results = {}
        with tqdm(total=len(paths) * len(modes), desc="evaluating", unit="img", file=sys.stderr,
                  disable=not progress, leave=False) as bar:
            for m, clf in clfs.items():
                bar.set_postfix_str(m)
                t0 = time.perf_counter()
                preds, scores = [], []
                for chunk in chunks:
                    for p in clf.predict(chunk, top_k=1):
                        preds.append(p.top1.class_id)
                        scores.append(p.top1.score)
                    bar.update(len(chunk))
                secs = time.perf_counter() - t0
                y_pred = np.asarray(preds, int)
                cm = confusion_counts(y_true, y_pred, len(labels))
                rows = cm.sum(axis=1)
                per_class = {lab: (None if rows[i] == 0 else float(cm[i, i] / rows[i]))
                             for i, lab in enumerate(labels)}
                wrong = tuple(Misclassified(str(paths[i]), labels[y_true[i]], labels[y_pred[i]], float(scores[i]))
                              for i in np.flatnonzero(y_pred != y_true))
                results[m] = ModeEval(mode=m, accuracy=float(np.mean(y_pred == y_true)), per_class=per_class,
                                      confusion=cm, misclassified=wrong, y_pred=tuple(int(v) for v in y_pred),
                                      scores=tuple(float(s) for s in scores),
                                      build_seconds=float(clf.build_seconds), seconds=secs)
    finally:
        for c in clfs.values():
            c.close()
    return EvalReport(folder=str(folder), bundle=str(bundle), layout=layout, labels=labels,
                      paths=tuple(str(p) for p in paths), y_true=tuple(int(v) for v in y_true), modes=results)


def write_evaluation_html(report: EvalReport, out_dir, *, max_gallery: int = 120) -> Path:
    """Write ``confusion.png`` (first mode; ``confusion-<mode>.png`` for the others) and a
    self-contained ``evaluation.html`` into ``out_dir``; returns the HTML path."""
    from .report import badge, card, page, thumbnail_data_uri
    from .viz import confusion_matrix, fig_to_png_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    modes = list(report.modes)
    matrices = []
    same = len({r.y_pred for r in report.modes.values()}) == 1
    for i, (m, r) in enumerate(report.modes.items()):
        fig = confusion_matrix(report.y_true, r.y_pred, report.labels,
                               title=f"{m}: accuracy {r.accuracy:.1%} ({len(report.paths) - len(r.misclassified)}"
                                     f"/{len(report.paths)})")
        png = fig_to_png_bytes(fig)
        (out / ("confusion.png" if i == 0 else f"confusion-{m}.png")).write_bytes(png)
        if same and i > 0:
            continue  # identical answers: one matrix says it all
        matrices.append(f"<img class='chart' style='flex:1 1 440px;max-width:560px;min-width:0' alt='confusion matrix {e(m)}' "
                        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>")

    n = len(report.paths)
    cards = "".join(
        card(f"accuracy · {m}", f"{r.accuracy:.1%}",
             f"{n - len(r.misclassified)}/{n} right · "
             + (badge("no errors", "ok") if not r.misclassified else badge(f"{len(r.misclassified)} wrong",
                                                                          "bad" if r.accuracy < 0.9 else "warn")))
        for m, r in report.modes.items())
    cards += card("data", f"{n} images", f"{len(report.labels)} classes · layout {e(report.layout)}")

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
    per_class = (f"<table><tr><th>class</th><th class='num'>images</th>{heads}</tr>{''.join(per_rows)}</table>")

    first = report.modes[modes[0]]
    figs = []
    for err in first.misclassified[:max_gallery]:
        uri = thumbnail_data_uri(err.path, size=192)
        img = f"<img alt='{e(os.path.basename(err.path))}' src='{uri}'>" if uri else "<div class='noimg'>?</div>"
        figs.append(f"<figure>{img}<figcaption><b>{e(err.true)}</b> → "
                    f"<span style='color:var(--red);font-weight:600'>{e(err.pred)}</span> "
                    f"<small>({err.score:.2f})</small><div class='name'>{e(_rel(err.path, report.folder))}</div>"
                    f"</figcaption></figure>")
    if figs:
        more = (f"<p class='legend'>showing {len(figs)} of {len(first.misclassified)}</p>"
                if len(first.misclassified) > len(figs) else "")
        gallery = f"{more}<div class='gallery'>{''.join(figs)}</div>"
    else:
        gallery = f"<p>{badge('every image classified correctly', 'ok')}</p>"

    note = (f"<p class='legend'>{badge('identical in every mode', 'ok')} {e(', '.join(modes))} gave the same "
            f"answer for every image, so one matrix is shown.</p>" if same and len(modes) > 1 else "")
    body = (f"<section><h2>Confusion matrix<small>rows: true class · columns: predicted</small></h2>{note}"
            f"<div style='display:flex;flex-wrap:wrap;gap:18px;justify-content:center'>{''.join(matrices)}</div>"
            f"</section><section><h2>Per-class accuracy</h2>{per_class}</section>"
            f"<section><h2>Misclassified<small>{e(modes[0])} · true → predicted (score)</small></h2>"
            f"{gallery}</section>")
    text = page(f"Evaluation: {os.path.basename(os.path.abspath(report.folder))}", body,
                subtitle=f"{report.folder} · model {report.bundle} · modes: {', '.join(modes)}", cards=cards)
    path = out / "evaluation.html"
    tmp = out / ".evaluation.html.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def evaluate_cli(a) -> int:
    """``python -m clsviz evaluate FOLDER --bundle B [--mode M|a,b|all] [--out DIR] [--json]``."""
    rep = evaluate(a.folder, a.bundle, modes=a.mode)
    out = Path(a.out or os.path.join("out", "evaluate"))
    page_path = write_evaluation_html(rep, out)
    if a.json:
        d = rep.to_dict()
        d["html"] = str(page_path)
        print(json.dumps(d, indent=2))
    else:
        print(rep.to_text())
        print(f"\nreport: {page_path}\nconfusion matrix: {out / 'confusion.png'}")
    return 0
