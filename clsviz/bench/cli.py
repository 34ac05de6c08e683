"""``python -m clsviz bench``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..engines import MODES, RUNTIMES, engine_available
from .lab import run_bench
from .overhead import overhead_only
from .report import _jsonable


def bench_modes(runtimes: bool = False) -> tuple:
    """Paddle's three modes, plus the installed deployment runtimes when ``runtimes``."""
    return tuple(MODES) + (tuple(m for m in RUNTIMES if engine_available(m)[0]) if runtimes else ())


def bench_cli(a) -> int:
    """``python -m clsviz bench [--model M] [--overhead] [--runtimes] [--json] [--repeats N] [--out DIR]``."""

    def log(s):
        print(f"[bench] {s}", file=sys.stderr, flush=True)

    modes = bench_modes(getattr(a, "runtimes", False))
    if a.overhead:
        res = overhead_only(a.model, repeats=a.repeats, modes=modes)
        if a.json:
            print(json.dumps(res, indent=2, default=_jsonable))
        else:
            print(f"{res['model']}, batch 1, {res['repeats']} interleaved rounds (p50 ms):")
            for m, v in res["overhead"].items():
                ci = v["ratio_ci95"]
                print(
                    f"  {m:<11} clsviz {v['clsviz_ms']['p50']:8.2f}   raw {v['raw_ms']['p50']:8.2f}   "
                    f"ratio {v['ratio']:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f})   "
                    f"fixed cost {v['fixed_cost_ms'] * 1e3:.0f} us/call -> {v['bound_ratio']:.4f}"
                )
        return 0
    report = run_bench(a.model, repeats=a.repeats, out=a.out, log=log, modes=modes)
    if a.json:
        print(json.dumps(report.to_dict(), indent=2, default=_jsonable))
    else:
        print(report.to_markdown())
        print(f"wrote {Path(a.out) / 'bench.json'}, bench.md, bench.png", file=sys.stderr)
    return 0
