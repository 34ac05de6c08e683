"""Take the numbers for docs/performance.md in one run.

    .venv/bin/python benchmarks/run_lab.py [--repeats 30] [--out out/bench] [--no-demo] [--no-docs]

Runs the latency lab (``clsviz.bench.run_bench``) on ResNet50_vd (random weights, 224)
and, when the bundled demo checkpoint exists, on the demo model; writes each run's
``bench.json`` / ``bench.md`` / ``bench.png`` under ``--out``, copies the ResNet50_vd plot to
``docs/performance.png`` and replaces the block between the ``bench:begin`` / ``bench:end``
markers in ``docs/performance.md`` with the fresh tables.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def threads_check(*, repeats: int) -> dict:
    """dygraph / executor on one thread (Paddle's default before clsviz set it) vs all cores.

    Side by side, interleaved, ResNet50_vd batch 1; the ratio is p50(1 thread) / p50(default).
    CPU time (all threads) shows whether the threads scale when the machine is busy elsewhere.
    """
    import tempfile

    import numpy as np

    from clsviz import load
    from clsviz.bench import prepare_bundle
    from clsviz.timing import interleaved, timed_cpu

    _log(f"native-kernel threads: 1 vs default, {repeats} interleaved rounds ...")
    with tempfile.TemporaryDirectory() as tmp:
        bundle, _ = prepare_bundle("ResNet50_vd", tmp)
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        clfs = {}
        for mode in ("dygraph", "executor"):
            clfs[f"{mode} 1 thread"] = load(bundle, mode=mode, cpu_threads=1)
            clfs[f"{mode} default"] = load(bundle, mode=mode)
        st = interleaved({k: timed_cpu(lambda c=c: c.forward(x)) for k, c in clfs.items()}, repeats=repeats)
    res = {k: {"wall_ms": v["total"].to_dict(), "cpu_ms": v["cpu"].to_dict()} for k, v in st.items()}
    for mode in ("dygraph", "executor"):
        res[f"{mode}_speedup"] = round(st[f"{mode} 1 thread"]["total"].p50 / st[f"{mode} default"]["total"].p50, 3)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=str(REPO / "out" / "bench"))
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rebuild docs/ from the bench.json files already in --out")
    a = ap.parse_args(argv)

    from clsviz.bench import BenchReport, run_bench
    from clsviz.demo import DEMO_CHECKPOINT

    out = Path(a.out)
    if a.render_only:
        reports = {p.parent.name: BenchReport.from_dict(json.loads(p.read_text()))
                   for p in sorted(out.glob("*/bench.json"), key=lambda p: p.parent.name != "ResNet50_vd")}
        return write_docs(reports, out)
    reports = {}
    t0 = time.perf_counter()
    reports["ResNet50_vd"] = run_bench("ResNet50_vd", repeats=a.repeats, out=out / "ResNet50_vd", log=_log)
    if not a.no_demo and DEMO_CHECKPOINT.exists():
        reports["demo"] = run_bench("demo", repeats=a.repeats, out=out / "demo", log=_log)
    elif not a.no_demo:
        _log(f"no demo checkpoint at {DEMO_CHECKPOINT}; skipping the demo model")
    threads = threads_check(repeats=max(10, a.repeats // 3))
    _log(f"done in {time.perf_counter() - t0:.0f} s")

    summary = {name: r.ratios for name, r in reports.items()}
    summary["native_kernel_threads"] = threads
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if a.no_docs:
        return 0
    return write_docs(reports, out)


def write_docs(reports: dict, out: Path) -> int:
    """docs/performance.png from the ResNet50_vd report; the tables into docs/performance.md."""
    for name, r in reports.items():
        (out / name / "bench.md").write_text(r.to_markdown(), encoding="utf-8")
    fig = reports["ResNet50_vd"].figure()
    fig.savefig(REPO / "docs" / "performance.png", dpi=72)
    md = REPO / "docs" / "performance.md"
    text = md.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        _log(f"{md} has no {BEGIN} … {END} block; tables left in {out}")
        return 0
    block = "\n".join(r.to_markdown() for r in reports.values())
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    md.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")
    _log(f"updated {md} and docs/performance.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
