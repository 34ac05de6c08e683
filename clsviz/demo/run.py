"""``python -m clsviz demo``: the whole story on the bundled demo model, in under two minutes.

export the bundled checkpoint → build all three modes → run ``sample_images/`` through
:func:`clsviz.compare` → a side-by-side table in the terminal, ``report.html`` and
``results.json`` in the output folder.  The exit code says whether the demo holds up:
every labelled, non-hard sample right in every mode, and the modes agreeing.
"""

from __future__ import annotations

import html
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..compare import compare
from ..engines import MODES, load
from ..errors import FormatError
from ..explain import report_section
from ..export import export
from ..render import latency_text
from ..results import human_size
from ..transforms import IMAGE_SUFFIXES
from . import DEMO_ARCH as ARCH
from . import DEMO_CHECKPOINT as CHECKPOINT
from . import DEMO_DIR as HERE
from . import DEMO_LABELS as LABELS
from . import samples
from .train import DEMO_PREPROCESS

TOLERANCE = 1e-4

__all__ = ["run_demo", "export_demo", "sample_dir", "read_sample_labels", "demo_preprocess"]


def demo_preprocess():
    """The preprocessing the demo model was trained with (from :mod:`clsviz.demo.train`)."""
    return DEMO_PREPROCESS


def export_demo(out_dir, *, checkpoint=None, labels=None, preprocess=None, force: bool = True):
    """Export the bundled demo checkpoint (with its labels and preprocessing) into ``out_dir``."""
    pre = preprocess or demo_preprocess()
    h, w = pre.crop_hw
    return export(
        ARCH,
        Path(checkpoint or CHECKPOINT),
        out_dir,
        labels=Path(labels or LABELS),
        preprocess=pre,
        image_shape=(3, h, w),
        force=force,
    )


def sample_dir(out_dir=None) -> Path:
    """The repository's ``sample_images/``; if the checkout lacks it (an installed package),
    they are generated into ``out_dir/sample_images`` (default: a new temporary folder)."""
    repo = HERE.parent.parent / "sample_images"
    if repo.is_dir() and _images(repo):
        return repo
    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="clsviz-samples-")
    target = Path(out_dir) / "sample_images"
    samples.write_sample_images(target)
    return target


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def read_sample_labels(folder) -> dict[str, tuple[str, bool]]:
    """``labels.txt`` beside the samples: ``filename class [hard]`` per line → {name: (class, hard)}."""
    path = Path(folder) / "labels.txt"
    out: dict[str, tuple[str, bool]] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) < 2:
            raise FormatError(f"line {n}: expected 'filename class [hard]', found {line!r}", path=path)
        out[parts[0]] = (parts[1], "hard" in (p.lower() for p in parts[2:]))
    return out


def _say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def _cell(pred, truth) -> str:
    tops = " ".join(f"{t.label} {t.score:.2f}" for t in pred.topk[:3])
    mark = "" if truth is None else (" ✓" if pred.label == truth else " ✗")
    return tops + mark


def _table(cmp, samples) -> str:
    modes = list(cmp.modes)
    head = ["image", "true"] + [f"{m} top-3" for m in modes]
    rows = [head]
    for i, name in enumerate(cmp.images):
        s = samples[i]
        img = os.path.basename(name) + (" (hard)" if s["hard"] else "")
        rows.append(
            [img, s["true_label"] or "?"] + [_cell(cmp.modes[m].predictions[i], s["true_label"]) for m in modes]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", *latency_text(cmp, note="ms per image")]
    lines.append("")
    for a in cmp.agreements:
        lines.append(
            f"{a.mode} vs {a.reference}: max|Δ| {a.max_abs_diff:.2e}, cosine {a.cosine:.6f}, "
            f"top-1 agree {a.top1_agree:.0%}"
        )
    return "\n".join(lines)


def run_demo(
    out_dir="out/demo", *, repeats: int = 5, checkpoint=None, labels=None, samples=None, preprocess=None
) -> int:
    """Run the demo into ``out_dir``; returns the exit code (0: everything holds up).

    ``checkpoint``, ``labels``, ``samples`` (a folder with ``labels.txt``) and ``preprocess``
    default to the bundled demo model, its labels, ``sample_images/`` and its training
    preprocessing; override them to run the same story on another small classifier.
    """
    from ..report import write_report

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(checkpoint or CHECKPOINT)
    labels = Path(labels or LABELS)
    pre = preprocess or demo_preprocess()
    folder = Path(samples) if samples is not None else sample_dir(out)
    h, w = pre.crop_hw

    _say(f"exporting {ARCH} ({checkpoint.name}) → {out / 'bundle'} …")
    exp = export_demo(out / "bundle", checkpoint=checkpoint, labels=labels, preprocess=pre)
    _say(f"exported in {exp.seconds:.1f}s; the program matches the network (max|Δ| {exp.max_abs_diff:.1e})")

    clfs = {}
    try:
        for m in MODES:
            clfs[m] = load(exp.out_dir, mode=m)
            _say(f"built {m:<9} in {clfs[m].build_seconds:.2f}s  ({clfs[m].describe()})")

        truth_by_name = read_sample_labels(folder)
        images = _images(folder)
        k = min(5, exp.class_num)
        warmup = 2
        with tqdm(
            total=len(clfs) * (warmup + repeats), desc="comparing modes", unit="pass", file=sys.stderr, leave=False
        ) as bar:

            def progress(step, total, name):
                bar.set_postfix_str(name)
                bar.update(step - bar.n)

            cmp = compare(images, clfs, top_k=k, repeats=repeats, warmup=warmup, tolerance=TOLERANCE, progress=progress)
        why = _explain_section(cmp, clfs, truth_by_name)
    finally:
        for c in clfs.values():
            c.close()

    samples_info: list[dict[str, Any]] = []
    problems = []
    for i, name in enumerate(cmp.images):
        base = os.path.basename(name)
        truth, hard = truth_by_name.get(base, (None, False))
        correct = {m: (None if truth is None else r.predictions[i].label == truth) for m, r in cmp.modes.items()}
        samples_info.append({"image": name, "file": base, "true_label": truth, "hard": hard, "correct": correct})
        wrong = [m for m, ok in correct.items() if ok is False]
        if wrong and not hard:
            got = cmp.modes[wrong[0]].predictions[i].label
            problems.append(f"{base}: true {truth}, predicted {got} in {', '.join(wrong)}")
    for a in cmp.agreements:
        if not a.max_abs_diff <= TOLERANCE:
            problems.append(f"{a.mode} vs {a.reference}: max|Δ| {a.max_abs_diff:.2e} > {TOLERANCE:g}")
        elif a.top1_agree < 1.0:
            problems.append(f"{a.mode} vs {a.reference}: top-1 differs on {1 - a.top1_agree:.0%} of images")

    print(_table(cmp, samples_info))

    n_lab = sum(1 for s in samples_info if s["true_label"] and not s["hard"])
    n_ok = sum(1 for s in samples_info if s["true_label"] and not s["hard"] and all(s["correct"].values()))
    hard_cases = [s for s in samples_info if s["hard"]]
    subtitle = (
        f"{ARCH} · {exp.class_num} classes · input {h}×{w} · {len(images)} sample images · "
        f"modes: {', '.join(cmp.modes)}"
    )
    extra = ([("Why did it say that? Hard and misclassified images", why)] if why else []) + [
        ("Bundle", _bundle_html(exp))
    ]
    with tqdm(total=len(images), desc="writing report", unit="img", file=sys.stderr, leave=False) as bar:
        report = write_report(
            out / "report.html",
            cmp,
            title="clsviz demo: one model, three ways to run it",
            images=images,
            true_labels=[s["true_label"] for s in samples_info],
            hard=[s["hard"] for s in samples_info],
            extra_sections=extra,
            subtitle=subtitle,
            progress=lambda i, n: bar.update(i - bar.n),
        )

    results = cmp.to_dict()
    results.update(
        {
            "samples": samples_info,
            "export": exp.to_dict(),
            "ok": not problems,
            "problems": problems,
            "seconds": round(time.perf_counter() - t_start, 2),
        }
    )
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2), encoding="utf-8")
    os.replace(tmp, out / "results.json")

    print()
    print(
        f"{n_ok}/{n_lab} labelled samples right in every mode"
        + (
            f"; hard cases right: {sum(all(s['correct'].values()) for s in hard_cases)}/{len(hard_cases)}"
            if hard_cases
            else ""
        )
    )
    verdict = "AGREE" if cmp.agree else "DISAGREE"
    print(f"modes {verdict}: max|Δ| {cmp.max_abs_diff:.2e} (tolerance {TOLERANCE:g})")
    print(f"report:  {report}")
    print(f"results: {out / 'results.json'}   ({results['seconds']:.1f}s in all)")
    if problems:
        print("demo FAILED:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


def _explain_section(cmp, clfs, truth_by_name, *, limit: int = 6) -> str:
    """Saliency maps of the hard and misclassified samples: Grad-CAM (dygraph) beside occlusion
    (predictor), cheap enough for every demo run (well under a second in all)."""

    picked, captions = [], []
    for i, name in enumerate(cmp.images):
        truth, hard = truth_by_name.get(os.path.basename(name), (None, False))
        got = {r.predictions[i].label for r in cmp.modes.values()}
        wrong = truth is not None and got != {truth}
        if hard or wrong:
            picked.append(name)
            captions.append(
                f"<b>{html.escape(os.path.basename(name))}</b><br>true: {html.escape(str(truth))}"
                f"<br>predicted: {html.escape(', '.join(sorted(got)))}" + ("<br><i>hard case</i>" if hard else "")
            )
    engines = {m: clfs[m] for m in ("dygraph", "predictor") if m in clfs}
    return report_section(picked, engines, captions=captions, limit=limit) if picked else ""


def _bundle_html(exp) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(f.name)}</code></td><td class='num'>{human_size(f.size)}</td>"
        f"<td>{html.escape(f.role)}</td></tr>"
        for f in exp.files
    )
    return (
        f"<p>Exported <b>{html.escape(exp.model_name)}</b> ({exp.class_num} classes) in "
        f"{exp.seconds:.1f}s to <code>{html.escape(str(exp.out_dir))}</code>; the saved program was "
        f"checked against the network (max|Δ| {exp.max_abs_diff:.1e}).</p>"
        "<table><tr><th>file</th><th class='num'>size</th><th>role</th></tr>" + rows + "</table>"
    )
