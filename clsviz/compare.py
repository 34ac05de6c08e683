"""Run several classifiers on the same inputs and report top-k, latency and agreement."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .engines import Classifier, check_modes, load
from .errors import ClsvizError, OptionError
from .results import STAGES, Agreement, Comparison, ModeReport, StageStats
from .timing import interleaved_laps, peak_rss_mb, rss_mb, run_peak_mb, staged
from .transforms import Images, expand_images, image_name


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


def compare(
    images: Images,
    classifiers: Iterable[Classifier] | Mapping[str, Classifier | BaseException],
    *,
    top_k: int = 5,
    repeats: int = 10,
    warmup: int = 2,
    reference: str | None = None,
    tolerance: float = 1e-4,
    progress: Callable[[int, int, str], None] | None = None,
    seed: int = 0,
) -> Comparison:
    """Run every classifier on the same ``images``; per-stage latency over ``repeats``.

    ``classifiers`` is a list of :class:`Classifier` (keyed by their mode) or a dict
    name → classifier; a value that is an exception (a mode that could not be built, see
    :func:`load_modes`) is reported in ``Comparison.failed`` and the others still run.
    The modes are timed side by side by :func:`clsviz.timing.interleaved_laps`: after ``warmup``
    untimed rounds, each of ``repeats`` rounds runs every mode once over all the images, in an
    order shuffled per round (``seed``).  Latency is per batch of ``options.batch_size`` images.
    Agreement is measured on raw outputs against ``reference`` (default: the first).
    ``progress`` is an optional callable(step, total, name).
    """
    failed: dict[str, str] = {}
    if isinstance(classifiers, Mapping):
        named = {}
        for k, c in classifiers.items():
            if isinstance(c, BaseException):  # a mode that could not be built: shown as FAILED
                failed[k] = _failure(c)
            else:
                named[k] = c
    else:
        named = {}
        for c in classifiers:
            key = c.mode if c.mode not in named else f"{c.mode}#{len(named)}"
            named[key] = c
    if not named:
        raise OptionError(
            "compare needs at least one classifier" + (f" (every mode failed: {failed})" if failed else "")
        )
    if repeats < 1 or warmup < 0:
        raise OptionError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    reference = reference or next(iter(named))
    if reference not in named:
        raise OptionError(f"reference {reference!r} is not one of {list(named)}")
    items = expand_images(images)
    names = [image_name(x, i) for i, x in enumerate(items)]
    sinks: dict[str, dict] = {n: {} for n in named}
    contenders = {}
    for name, clf in named.items():
        bs = clf.options.batch_size
        chunks = [items[i : i + bs] for i in range(0, len(items), bs)]
        contenders[name] = staged(clf, chunks, top_k=top_k, names=names, sink=sinks[name])

    total_steps = len(named) * (warmup + repeats)
    step = 0

    def on_call(name, _timed):
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total_steps, name)

    laps = interleaved_laps(contenders, repeats=repeats, warmup=warmup, seed=seed, on_call=on_call)
    # memory, per mode and outside the timed rounds: one more run each, high-water mark reset first
    run_peaks = {name: run_peak_mb(contenders[name]) for name in named}
    process_rss, process_peak = rss_mb(), peak_rss_mb()
    reports, outputs = {}, {}
    for name, clf in named.items():
        outputs[name] = sinks[name]["outputs"]
        reports[name] = ModeReport(
            mode=name,
            predictions=tuple(sinks[name]["predictions"]),
            stages={s: StageStats.of(laps[name][s]) for s in STAGES},
            total=StageStats.of(laps[name]["total"]),
            build_seconds=float(clf.build_seconds),
            rss_mb=process_rss,
            peak_rss_mb=process_peak,
            batch_size=clf.options.batch_size,
            description=clf.describe(),
            build_rss_mb=float(getattr(clf, "build_rss_mb", float("nan"))),
            run_peak_mb=run_peaks[name],
            isolation=getattr(clf, "isolation", "in-process"),
        )
    k = min(top_k, outputs[reference].shape[1])
    agreements = tuple(_agreement(n, reference, outputs[n], outputs[reference], k) for n in named if n != reference)
    return Comparison(
        images=tuple(names),
        modes=reports,
        agreements=agreements,
        reference=reference,
        top_k=top_k,
        tolerance=tolerance,
        failed=failed,
    )


def _failure(e: BaseException) -> str:
    hint = getattr(e, "hint", None)
    return f"{type(e).__name__}: {e}" + (f" ({hint})" if hint and hint not in str(e) else "")


def load_modes(path, modes, **kw) -> dict:
    """``{mode: Classifier}`` for ``path``, a mode that cannot be built holding its
    :class:`~clsviz.errors.ClsvizError` instead; :func:`compare` shows those as FAILED."""
    out: dict = {}
    for m in check_modes(modes):
        try:
            out[m] = load(path, mode=m, **kw)
        except ClsvizError as e:
            out[m] = e
    return out
