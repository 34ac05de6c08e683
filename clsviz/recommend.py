"""Which engine to deploy on this machine: ``clsviz.recommend(model, images=None)``.

Every available engine × precision is built on the same model, checked against the Paddle
predictor in fp32 (the reference), and timed side by side (:func:`clsviz.timing.interleaved`:
one shuffled order per round, so machine noise falls on every candidate alike).  The
recommendation is the fastest candidate whose outputs agree with the reference:

* fp32: top-1 equal on every input, and max |Δ| ≤ ``rtol`` × max |reference| (1e-3);
* bf16: top-1 equal on every input; its relative max |Δ| is reported, not bounded (bf16 keeps
  8 bits of mantissa, so its outputs differ by ~1e-2 relative by design).

ONNX Runtime is tried twice: as clsviz runs it beside other engines (no spinning threads) and
as a deployment running only ONNX Runtime would (``spinning=True``, ONNX Runtime's default).
While the spinning candidate is timed, its threads also take CPU from the candidates timed
right after it; recommending it means: run ONNX Runtime alone in its process.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._paddle import paddle
from .engines import load
from .errors import ClsvizError, OptionError
from .timing import interleaved, timed

__all__ = ["recommend", "Recommendation", "Candidate", "CANDIDATES"]

#: (mode, precision[, engine options]) tried, in this order; the first is the reference
CANDIDATES = (
    ("predictor", "fp32"),
    ("predictor", "bf16"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "fp32", {"spinning": True}),
    ("executor", "fp32"),
    ("dygraph", "fp32"),
)


@dataclass(frozen=True)
class Candidate:
    """One engine × precision: whether it ran, how fast, how close to the reference."""

    mode: str
    precision: str
    status: str  # "ok", "disagrees" or "unavailable"
    detail: str = ""  # why unavailable / how it disagrees
    p50_ms: float | None = None
    p90_ms: float | None = None
    relative: float | None = None  # p50 / the reference's p50
    max_abs_diff: float | None = None
    rel_diff: float | None = None  # max |Δ| / max |reference|
    top1_agree: float | None = None  # share of inputs with the same top-1
    build_seconds: float | None = None
    options: tuple = ()  # further engine options, (name, value) pairs: (("spinning", True),)

    @property
    def name(self) -> str:
        extra = "".join(f" {k}" if v is True else f" {k}={v}" for k, v in self.options)
        return f"{self.mode} {self.precision}{extra}"

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "precision": self.precision,
            "options": dict(self.options),
            "status": self.status,
            "detail": self.detail,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "relative": self.relative,
            "max_abs_diff": self.max_abs_diff,
            "rel_diff": self.rel_diff,
            "top1_agree": self.top1_agree,
            "build_seconds": self.build_seconds,
        }


@dataclass(frozen=True)
class Recommendation:
    """The candidates, timed side by side, and the fastest one that agrees (``best``)."""

    model: str
    input_shape: tuple
    inputs: str  # what the agreement was checked on
    candidates: tuple  # Candidate, fastest first (unavailable last)
    best: Candidate | None
    repeats: int
    rtol: float
    machine: str

    @property
    def mode(self) -> str | None:
        return self.best.mode if self.best else None

    @property
    def precision(self) -> str | None:
        return self.best.precision if self.best else None

    def options(self) -> dict:
        """``clsviz.load`` arguments for the recommendation: ``load(model, **rec.options())``."""
        if not self.best:
            return {}
        return {"mode": self.best.mode, "precision": self.best.precision, **dict(self.best.options)}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "inputs": self.inputs,
            "best": self.best.to_dict() if self.best else None,
            "repeats": self.repeats,
            "rtol": self.rtol,
            "machine": self.machine,
            "candidates": [c.to_dict() for c in self.candidates],
        }

    def to_text(self) -> str:
        lines = [
            f"{'engine':<26} {'p50 ms':>8} {'p90 ms':>8} {'× ref':>6} {'max|Δ|':>9} {'rel Δ':>9} {'top-1':>6}  status"
        ]
        for c in self.candidates:
            if c.status == "unavailable":
                lines.append(f"{c.name:<26} {'':>8} {'':>8} {'':>6} {'':>9} {'':>9} {'':>6}  unavailable: {c.detail}")
                continue
            lines.append(
                f"{c.name:<26} {c.p50_ms:>8.2f} {c.p90_ms:>8.2f} {c.relative:>6.2f} "
                f"{c.max_abs_diff:>9.2e} {c.rel_diff:>9.2e} {c.top1_agree:>6.0%}  "
                + (c.status if not c.detail else f"{c.status}: {c.detail}")
            )
        lines.append("")
        lines.append(
            f"recommended: {self.best.name} ({self.best.p50_ms:.2f} ms, {self.best.relative:.2f}× the predictor fp32)"
            if self.best
            else "recommended: none (no candidate agrees)"
        )
        lines.append(
            f"{self.model}, input {list(self.input_shape)}, {self.repeats} interleaved rounds; "
            f"agreement on {self.inputs}; {self.machine}"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def figure(self):
        """Horizontal bars of p50 latency per candidate (the recommendation in green)."""
        from .viz import BLUE, GREEN, MUTED, _figure, _style

        ran = [c for c in self.candidates if c.p50_ms is not None][::-1]
        fig = _figure(6.4, 0.45 * max(2, len(ran)) + 0.9)
        ax = fig.add_subplot(111)
        colors = [GREEN if c is self.best else (BLUE if c.status == "ok" else MUTED) for c in ran]
        ax.barh([c.name for c in ran], [c.p50_ms for c in ran], color=colors)
        for i, c in enumerate(ran):
            ax.text(
                c.p50_ms,
                i,
                f"  {c.p50_ms:.2f} ms" + ("" if c.status == "ok" else f" ({c.status})"),
                va="center",
                fontsize=8,
            )
        ax.set_xlabel("p50 latency per batch (ms)")
        ax.set_title(f"{self.model}: engines side by side", fontsize=10)
        ax.set_xlim(0, max(c.p50_ms for c in ran) * 1.45 if ran else 1)
        _style(ax)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        from .viz import fig_to_data_uri

        e = html.escape
        rows = []
        for c in self.candidates:
            mark = "✓" if c is self.best else ""
            if c.status == "unavailable":
                rows.append(
                    f"<tr><td>{e(c.name)}</td><td colspan='6'><small>unavailable: {e(c.detail)}</small></td></tr>"
                )
                continue
            rows.append(
                f"<tr><td>{mark} <b>{e(c.name)}</b></td><td>{c.p50_ms:.2f}</td><td>{c.relative:.2f}</td>"
                f"<td>{c.max_abs_diff:.1e}</td><td>{c.rel_diff:.1e}</td><td>{c.top1_agree:.0%}</td>"
                f"<td>{e(c.status + (': ' + c.detail if c.detail else ''))}</td></tr>"
            )
        head = (
            f"<b>recommended: {e(self.best.name)}</b> · {self.best.p50_ms:.2f} ms · "
            f"{self.best.relative:.2f}× the predictor fp32"
            if self.best
            else "<b>no candidate agrees with the reference</b>"
        )
        img = ""
        if any(c.p50_ms is not None for c in self.candidates):
            img = f"<img src='{fig_to_data_uri(self.figure(), dpi=90)}' style='max-width:560px'>"
        return (
            f"<div>{head}<br><small>{e(self.model)}, input {list(self.input_shape)}, {self.repeats} "
            f"interleaved rounds; agreement on {e(self.inputs)}; {e(self.machine)}</small>"
            "<table><tr><th>engine</th><th>p50 ms</th><th>× ref</th><th>max|Δ|</th><th>rel Δ</th>"
            f"<th>top-1</th><th>status</th></tr>{''.join(rows)}</table>{img}</div>"
        )


def machine_line() -> str:
    """One line naming this machine: CPU, vCPUs, bf16 support, Paddle version."""
    from .bench import machine_info

    m = machine_info()
    flags = set(m.get("flags") or ())
    bf16 = "AMX" if "amx_bf16" in flags else ("avx512_bf16" if "avx512_bf16" in flags else "no bf16")
    return (
        f"{m.get('cpu', '?')}, {m.get('logical_cpus', '?')} vCPUs, {m.get('isa', '?')}, {bf16}, "
        f"Paddle {paddle.__version__} CPU"
    )


def _key(candidate) -> tuple[str, str, tuple]:
    """``(mode, precision)`` or ``(mode, precision, {option: value})`` → a hashable key."""
    c = tuple(candidate)
    if len(c) not in (2, 3):
        raise OptionError(f"a candidate is (mode, precision) or (mode, precision, options), got {candidate!r}")
    return c[0], c[1], tuple(sorted(dict(c[2]).items())) if len(c) == 3 else ()


def _inputs(ref, images, n_random: int, seed: int) -> tuple[np.ndarray, str]:
    if images is not None:
        return ref.preprocess(images), "the given images"
    # the program's own input signature: shape, channels, layout and dtype
    return ref.config.preprocess.probe(n_random, seed=seed), f"{n_random} random inputs of the model's own signature"


def recommend(
    model,
    images=None,
    *,
    candidates: Sequence = CANDIDATES,
    repeats: int = 20,
    warmup: int = 3,
    batch_size: int = 1,
    cpu_threads: int | None = None,
    rtol: float = 1e-3,
    seed: int = 0,
    progress=None,
    **load_kwargs,
) -> Recommendation:
    """Time every available engine × precision on ``model`` and pick the fastest that agrees.

    ``model`` is anything :func:`clsviz.load` takes.  ``images`` (paths, arrays, a folder) are
    what the agreement is checked on; by default 4 random inputs of the model's own input
    signature (``Preprocess.probe``: shape, channels, layout, dtype).
    Latency is one ``forward`` on a batch of ``batch_size`` (the engines' cost; pre- and
    post-processing are the same code for all).  Candidates that cannot run here (no bf16 in
    this CPU, the ``runtimes`` extra missing, a model paddle2onnx cannot convert) are listed
    as unavailable with the reason.  ``progress`` is an optional callable(str).
    """
    if rtol <= 0:
        raise OptionError(f"rtol must be > 0, got {rtol}")
    keys = [_key(c) for c in candidates]
    reference = ("predictor", "fp32", ())
    if not keys or keys[0] != reference:
        keys = [reference] + [k for k in keys if k != reference]
    say = progress or (lambda s: None)
    opts = dict(load_kwargs, cpu_threads=cpu_threads)
    built, rows = {}, {}
    try:
        for key in keys:
            mode, prec, extra = key
            name = Candidate(*key[:2], "", options=extra).name
            say(f"building {name} ...")
            try:
                built[key] = load(model, mode=mode, precision=prec, **{**opts, **dict(extra)})
            except ClsvizError as e:
                if key == reference:
                    raise
                rows[key] = Candidate(mode, prec, "unavailable", str(e).split("\n")[0][:200], options=extra)
        ref = built[reference]
        x, what = _inputs(ref, images, 4, seed)
        want = np.asarray(ref.run_batches(x), np.float64)
        scale = float(np.abs(want).max()) or 1.0
        checks = {}
        for key, clf in built.items():
            try:
                got = np.asarray(clf.run_batches(x), np.float64)
            except ClsvizError as e:
                rows[key] = Candidate(*key[:2], "unavailable", str(e).split("\n")[0][:200], options=key[2])
                continue
            diff = float(np.abs(got - want).max())
            checks[key] = (diff, diff / scale, float(np.mean(got.argmax(1) == want.argmax(1))))
        one = np.ascontiguousarray(x[:batch_size] if len(x) >= batch_size else np.repeat(x[:1], batch_size, axis=0))
        names = {k: Candidate(*k[:2], "", options=k[2]).name for k in checks}
        timing = {names[k]: timed(functools.partial(built[k].forward, one)) for k in checks}
        say(f"timing {len(timing)} engines side by side, {repeats} rounds ...")
        stats = interleaved(timing, repeats=repeats, warmup=warmup, seed=seed)
        ref_p50 = stats["predictor fp32"]["total"].p50
        for (m, p, extra), (diff, rel, top1) in checks.items():
            s = stats[names[(m, p, extra)]]["total"]
            if top1 < 1.0:
                status, detail = "disagrees", f"top-1 differs on {1 - top1:.0%} of the inputs"
            elif p == "fp32" and rel > rtol:
                status, detail = "disagrees", f"relative max|Δ| {rel:.1e} > {rtol:g}"
            else:
                status, detail = "ok", ("reduced precision: outputs differ by design" if p != "fp32" else "")
            rows[(m, p, extra)] = Candidate(
                m,
                p,
                status,
                detail,
                round(s.p50, 4),
                round(s.p90, 4),
                round(s.p50 / ref_p50, 4),
                diff,
                rel,
                top1,
                round(built[(m, p, extra)].build_seconds, 3),
                extra,
            )
    finally:
        for clf in built.values():
            clf.close()
    order = sorted(rows.values(), key=lambda c: (c.p50_ms is None, c.p50_ms or 0.0))
    best = next((c for c in order if c.status == "ok"), None)
    line = machine_line()
    return Recommendation(str(model), tuple(int(v) for v in x.shape[1:]), what, tuple(order), best, repeats, rtol, line)
