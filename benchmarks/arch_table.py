"""The architecture table: names, PaddleX names, parameters and FLOPs at 224 of every registered network.

    python benchmarks/arch_table.py --write    # measure every network → clsviz/data/architectures.json,
                                               # and rewrite the table in docs/architectures.md
    python benchmarks/arch_table.py --check    # exit 1 if the JSON or the docs table is stale (no measuring)

The numbers are measured, never typed: ``clsviz.archs.flops.measure`` builds each
network with 1000 classes and counts its trainable parameters and the
multiply-accumulates of its conv and linear layers for one 3x224x224 image.
``clsviz.list_models()`` reads the JSON; ``tests/test_arch_table.py`` re-measures
every network against it and checks the docs table renders from it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clsviz.archs import list_models  # noqa: E402
from clsviz.archs.flops import measure  # noqa: E402
from clsviz.archs.registry import STATS_FILE  # noqa: E402
from docsection import read_section, write_section  # noqa: E402

DOC = REPO / "docs" / "architectures.md"
START, END = "<!-- arch-table:start -->", "<!-- arch-table:end -->"
SIZE = 224
COUNTED = ("params: trainable parameters at 1000 classes (BatchNorm running statistics excluded); "
           "macs: multiply-accumulates of Conv2D and Linear layers for one 3x224x224 image "
           "(BatchNorm, activations, pooling, bias adds and elementwise ops not counted); FLOPs = 2 x MACs")


def measure_all(names=None, *, say=print) -> dict:
    out = {}
    for name in names or list_models():
        t0 = time.perf_counter()
        out[name] = measure(name, size=SIZE)
        say(f"{name:<36} {out[name]['params'] / 1e6:8.2f} M params {out[name]['macs'] / 1e9:8.3f} GMACs"
            f"  ({time.perf_counter() - t0:.1f}s)")
    return out


def stats_document(models: dict) -> dict:
    return {"input_shape": [1, 3, SIZE, SIZE], "counted": COUNTED,
            "models": {k: models[k] for k in sorted(models)}}


def render_markdown() -> str:
    """The table, from the registry (names, families) and the stored JSON (numbers)."""
    models = list_models()
    lines = ["| name (PaddleClas) | PaddleX name | family | params (M) | GFLOPs @224 | GMACs @224 |",
             "|---|---|---|---:|---:|---:|"]
    for info in sorted(models.info, key=lambda i: (i.family == "paddle.vision", i.family, i.name)):
        px = f"`{info.paddlex_name}`" if info.paddlex_name else "—"
        params = "?" if info.params is None else f"{info.params / 1e6:.2f}"
        flops = "?" if info.macs is None else f"{info.flops / 1e9:.3f}"
        macs = "?" if info.macs is None else f"{info.macs / 1e9:.3f}"
        lines.append(f"| `{info.name}` | {px} | {info.family} | {params} | {flops} | {macs} |")
    return "\n".join(lines) + "\n"


def docs_section() -> str:
    return read_section(DOC, START, END)


def write_docs() -> None:
    write_section(DOC, START, END, render_markdown())


def stored_names() -> set:
    try:
        return set(json.loads(STATS_FILE.read_text(encoding="utf-8"))["models"])
    except (OSError, ValueError, KeyError):
        return set()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="measure, write the JSON and the docs table")
    ap.add_argument("--check", action="store_true", help="only check the JSON and docs table are current")
    a = ap.parse_args(argv)
    if a.check:
        missing = set(list_models()) ^ stored_names()
        ok = not missing and docs_section() == render_markdown()
        print("architecture table is current" if ok else
              f"architecture table is stale ({sorted(missing)[:5]}…): run python benchmarks/arch_table.py --write")
        return 0 if ok else 1
    models = measure_all()
    if a.write:
        STATS_FILE.write_text(json.dumps(stats_document(models), indent=1) + "\n", encoding="utf-8")
        from clsviz.archs import registry

        registry._stats.cache_clear()
        write_docs()
        print(f"wrote {STATS_FILE.relative_to(REPO)} and {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
