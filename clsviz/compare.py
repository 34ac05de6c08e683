"""Run several classifiers on the same inputs and report top-k, latency and agreement."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .errors import OptionError
from .results import STAGES, Agreement, Comparison, ModeReport, StageStats
from .timing import clock, peak_rss_mb, rss_mb
from .transforms import expand_images, image_name


def _agreement(mode, ref, out, ref_out, k) -> Agreement:
    a = np.asarray(out, np.float64)
    b = np.asarray(ref_out, np.float64)
    if a.shape != b.shape:
        return Agreement(mode, ref, float("inf"), float("nan"), 0.0, 0.0)
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = float(np.min(np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-30)))
    ta, tb = a.argmax(1), b.argmax(1)
    ka = np.argsort(-a, axis=1, kind="stable")[:, :k]
    kb = np.argsort(-b, axis=1, kind="stable")[:, :k]
    topk = float(np.mean([set(x) == set(y) for x, y in zip(ka, kb)]))
    return Agreement(mode, ref, diff, cos, float(np.mean(ta == tb)), topk)


def compare(images, classifiers, *, top_k: int = 5, repeats: int = 10, warmup: int = 2,
            reference: str | None = None, tolerance: float = 1e-4, progress=None) -> Comparison:
    """Run every classifier on the same ``images``; per-stage latency over ``repeats``.

    ``classifiers`` is a list of :class:`Classifier` (keyed by their mode) or a dict
    name → classifier.  Agreement is measured on raw outputs against ``reference``
    (default: the first).  ``progress`` is an optional callable(step, total, name).
    """
    if isinstance(classifiers, Mapping):
        named = dict(classifiers)
    else:
        named = {}
        for c in classifiers:
            key = c.mode if c.mode not in named else f"{c.mode}#{len(named)}"
            named[key] = c
    if not named:
        raise OptionError("compare needs at least one classifier")
    if repeats < 1 or warmup < 0:
        raise OptionError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    reference = reference or next(iter(named))
    if reference not in named:
        raise OptionError(f"reference {reference!r} is not one of {list(named)}")
    items = expand_images(images)
    names = [image_name(x, i) for i, x in enumerate(items)]
    reports, outputs = {}, {}
    total_steps = len(named) * (warmup + repeats)
    step = 0
    for name, clf in named.items():
        bs = clf.options.batch_size
        chunks = [items[i:i + bs] for i in range(0, len(items), bs)]
        laps = {s: [] for s in STAGES}
        totals = []
        out = preds = None
        for r in range(warmup + repeats):
            outs, preds = [], []
            for chunk_i, chunk in enumerate(chunks):
                t0 = clock()
                batch = clf.preprocess(chunk)
                t1 = clock()
                o = clf.check_output(clf.forward(batch), len(batch))
                t2 = clock()
                p = clf.postprocess(o, top_k, names[chunk_i * bs: chunk_i * bs + len(chunk)])
                t3 = clock()
                outs.append(o)
                preds.extend(p)
                if r >= warmup:
                    laps["preprocess"].append(t1 - t0)
                    laps["forward"].append(t2 - t1)
                    laps["postprocess"].append(t3 - t2)
                    totals.append(t3 - t0)
            out = np.concatenate(outs)
            step += 1
            if progress is not None:
                progress(step, total_steps, name)
        outputs[name] = out
        reports[name] = ModeReport(
            mode=name, predictions=tuple(preds),
            stages={s: StageStats.of(v) for s, v in laps.items()}, total=StageStats.of(totals),
            build_seconds=float(clf.build_seconds), rss_mb=rss_mb(), peak_rss_mb=peak_rss_mb(),
            batch_size=bs, description=clf.describe())
    k = min(top_k, outputs[reference].shape[1])
    agreements = tuple(_agreement(n, reference, outputs[n], outputs[reference], k)
                       for n in named if n != reference)
    return Comparison(images=tuple(names), modes=reports, agreements=agreements, reference=reference,
                      top_k=top_k, tolerance=tolerance)
