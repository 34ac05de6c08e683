"""The one interleaved harness (clsviz.timing) and compare on top of it: no timing assertions."""
from __future__ import annotations

import numpy as np
import pytest

import clsviz
from clsviz.errors import OptionError
from clsviz.timing import interleaved, interleaved_laps, run_peak_mb, time_call, timed


def _rounds(calls, n_contenders):
    return [tuple(calls[i:i + n_contenders]) for i in range(0, len(calls), n_contenders)]


def test_each_round_runs_every_contender_once_in_a_shuffled_order():
    calls = []
    fns = {k: (lambda k=k: calls.append(k) or {"total": 0.0}) for k in "abcd"}
    laps = interleaved_laps(fns, repeats=12, warmup=2, seed=3)
    warm, timed_calls = calls[:8], calls[8:]
    assert _rounds(warm, 4) == [tuple("abcd")] * 2  # warm-up: every contender, untimed
    rounds = _rounds(timed_calls, 4)
    assert len(rounds) == 12 and all(sorted(r) == list("abcd") for r in rounds)
    assert len(set(rounds)) > 1  # the order changes from round to round
    assert all(len(laps[k]["total"]) == 12 for k in "abcd")
    again = []
    interleaved_laps({k: (lambda k=k: again.append(k) or {}) for k in "abcd"}, repeats=12, warmup=2, seed=3)
    assert again == calls  # seeded: the same rounds again
    other = []
    interleaved_laps({k: (lambda k=k: other.append(k) or {}) for k in "abcd"}, repeats=12, warmup=2, seed=4)
    assert other[8:] != timed_calls


def test_contenders_may_time_several_batches_per_call():
    st = interleaved({"x": lambda: {"forward": [0.001, 0.003], "total": 0.004}}, repeats=3, warmup=0)
    assert st["x"]["forward"].n == 6 and st["x"]["total"].n == 3
    assert st["x"]["forward"].p50 == pytest.approx(2.0)  # ms


def test_harness_rejects_bad_counts_and_time_call_uses_it():
    with pytest.raises(OptionError):
        interleaved_laps({"a": timed(lambda: None)}, repeats=0)
    with pytest.raises(OptionError):
        interleaved_laps({}, repeats=1)
    n = []
    s = time_call(lambda: n.append(1), repeats=5, warmup=2)
    assert s.n == 5 and len(n) == 7


def test_run_peak_sees_a_transient_buffer():
    import mmap

    def transient():  # 64 MiB of fresh pages, unmapped on return (an allocator could reuse retained memory)
        m = mmap.mmap(-1, 64 * 2 ** 20)
        np.frombuffer(m, dtype=np.uint8)[::4096] = 1  # touch every page
        m.close()

    grew = run_peak_mb(transient)
    if np.isnan(grew):  # no clear_refs here
        pytest.skip("the kernel's RSS high-water mark cannot be reset here")
    assert grew > 32


def test_compare_interleaves_real_classifiers_and_shuffles_per_round(resnet18_bundle, rng_image):
    clfs = {m: clsviz.load(resnet18_bundle, mode=m) for m in clsviz.MODES}
    calls = []
    for name, clf in clfs.items():
        real = clf.forward
        clf.forward = lambda batch, name=name, real=real: calls.append(name) or real(batch)  # record, then run
    cmp = clsviz.compare([rng_image, rng_image], clfs, top_k=3, repeats=8, warmup=1, seed=1)
    n = len(clfs)
    per_call = 2  # two images, batch size 1: two forwards per mode per round
    assert len(calls) == n * per_call * (1 + 8 + 1)  # warm-up + timed rounds + one memory run
    modes = calls[::per_call]  # one entry per contender call
    assert all(a == b for a, b in zip(calls[::per_call], calls[1::per_call]))  # a mode's batches run together
    rounds = _rounds(modes[n:n + 8 * n], n)
    assert all(sorted(r) == sorted(clfs) for r in rounds)  # each mode once per round
    assert len(set(rounds)) > 1  # not one fixed order: shuffled per round
    for rep in cmp.modes.values():
        assert rep.total.n == 8 * per_call and rep.isolation == "in-process"
        assert np.isfinite(rep.build_rss_mb) and rep.to_dict()["run_peak_mb"] >= 0
    assert cmp.agree


def test_compare_progress_counts_every_call(resnet18_bundle, rng_image):
    clf = clsviz.load(resnet18_bundle, mode="predictor")
    seen = []
    clsviz.compare(rng_image, [clf], repeats=3, warmup=1, progress=lambda s, t, n: seen.append((s, t, n)))
    assert seen == [(i, 4, "predictor") for i in range(1, 5)]


def test_one_latency_table_in_the_repr_the_report_and_without_ipywidgets(resnet18_bundle, rng_image, tmp_path):
    import subprocess
    import sys

    from clsviz import render
    from clsviz.report import write_report

    clfs = [clsviz.load(resnet18_bundle, mode=m) for m in ("predictor", "dygraph")]
    cmp = clsviz.compare(rng_image, clfs, repeats=2, warmup=1)
    table = render.latency_table(cmp)
    assert table.count("<tr data-mode=") == 2 and "in-process" in table and "run peak" in table
    assert table in cmp._repr_html_()
    page = write_report(tmp_path / "report.html", cmp).read_text(encoding="utf-8")
    assert table in page
    text = cmp.to_text()
    assert all(line in text for line in render.latency_text(cmp))
    # the renderers import without ipywidgets (a blocked import would raise)
    code = ("import sys; sys.modules['ipywidgets'] = None; import clsviz.render, clsviz.results, clsviz.report; "
            "print('ipywidgets' in sys.modules and sys.modules['ipywidgets'] is not None)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr
