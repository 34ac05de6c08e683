"""Soak: thousands of predictions per mode in one process; memory and file handles must stay flat.

    python benchmarks/soak.py                      # 2000 predictions per mode, 200 warm-up
    python benchmarks/soak.py --n 500 --json out/soak.json

Model: ``ResNet18_vd_x0_25`` (random init, 4 classes, 32x32 input), exported once into a
temporary bundle; the images are 8 small JPEG/PNG/GIF files read from disk on every call,
so file handles are opened and closed the way a user's loop does it.

For each mode it records RSS (``clsviz.timing.rss_mb``), open file descriptors
(``/proc/self/fd``) and threads (``/proc/self/task``) after the warm-up and at the end.
Limits: RSS grows by at most 10 % after warm-up, descriptors do not grow.  A second phase
builds and closes each mode 20 times and reports the same numbers (not gated: Paddle
keeps per-predictor caches).  Prints a table, writes JSON, exits 1 if a limit is broken.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

import clsviz
from clsviz._paddle import paddle
from clsviz.timing import rss_mb

ARCH, CLASSES, SIZE = "ResNet18_vd_x0_25", 4, 32
RSS_LIMIT = 0.10


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_inputs(root: Path) -> tuple[Path, list[Path]]:
    paddle.seed(0)
    net = clsviz.get_model(ARCH, class_num=CLASSES)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    bundle = root / "bundle"
    clsviz.export(ARCH, state, bundle, image_shape=(3, SIZE, SIZE), labels=["a", "b", "c", "d"])
    rng = np.random.default_rng(1)
    images = []
    for i in range(8):
        arr = (rng.random((40 + 3 * i, 48 + 5 * i, 3)) * 255).astype(np.uint8)
        p = root / f"img{i}.{('jpg', 'png', 'gif')[i % 3]}"
        Image.fromarray(arr).save(p)
        images.append(p)
    return bundle, images


def soak_mode(mode: str, bundle: Path, images: list[Path], n: int, warmup: int) -> dict:
    clf = clsviz.load(bundle, mode=mode)
    first = clf.predict(images[0], top_k=CLASSES)[0]
    for i in range(warmup):
        clf.predict(images[i % len(images)], top_k=2)
    gc.collect()
    rss0, fd0, th0 = rss_mb(), fds(), threads()
    t0 = time.perf_counter()
    for i in range(n):
        p = clf.predict(images[i % len(images)], top_k=2)
        assert len(p[0].topk) == 2
    seconds = time.perf_counter() - t0
    last = clf.predict(images[0], top_k=CLASSES)[0]
    assert [t.class_id for t in last.topk] == [t.class_id for t in first.topk], "predictions drifted"
    gc.collect()
    rss1, fd1, th1 = rss_mb(), fds(), threads()
    clf.close()
    growth = (rss1 - rss0) / rss0
    return {"mode": mode, "predictions": n, "warmup": warmup, "seconds": round(seconds, 2),
            "ms_per_prediction": round(seconds / n * 1e3, 3),
            "rss_after_warmup_mb": round(rss0, 1), "rss_end_mb": round(rss1, 1),
            "rss_growth_pct": round(growth * 100, 2), "fds_after_warmup": fd0, "fds_end": fd1,
            "threads_after_warmup": th0, "threads_end": th1,
            "ok": growth <= RSS_LIMIT and fd1 <= fd0}


def rebuild_mode(mode: str, bundle: Path, image: Path, cycles: int) -> dict:
    with clsviz.load(bundle, mode=mode) as clf:  # warm-up build
        clf.predict(image)
    gc.collect()
    rss0, fd0, th0 = rss_mb(), fds(), threads()
    for _ in range(cycles):
        with clsviz.load(bundle, mode=mode) as clf:
            clf.predict(image)
    gc.collect()
    rss1, fd1, th1 = rss_mb(), fds(), threads()
    return {"mode": mode, "cycles": cycles, "rss_before_mb": round(rss0, 1), "rss_after_mb": round(rss1, 1),
            "rss_per_cycle_mb": round((rss1 - rss0) / cycles, 2), "fds_before": fd0, "fds_after": fd1,
            "threads_before": th0, "threads_after": th1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="predictions per mode after warm-up")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=20, help="build/close cycles per mode (0: skip)")
    ap.add_argument("--modes", default=",".join(clsviz.MODES))
    ap.add_argument("--json", default="out/soak.json")
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="clsviz-soak-") as tmp:
        bundle, images = make_inputs(Path(tmp))
        modes = [m for m in a.modes.split(",") if m]
        rows = [soak_mode(m, bundle, images, a.n, a.warmup) for m in modes]
        rebuilds = [rebuild_mode(m, bundle, images[0], a.cycles) for m in modes] if a.cycles else []

    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "paddle": paddle.__version__,
                    "clsviz": clsviz.__version__},
        "model": f"{ARCH}, {CLASSES} classes, {SIZE}x{SIZE}, random init; 8 image files from disk",
        "limits": {"rss_growth_pct": RSS_LIMIT * 100, "fd_growth": 0},
        "soak": rows, "rebuild": rebuilds,
        "ok": all(r["ok"] for r in rows),
    }
    print(f"soak: {a.n} predictions per mode after {a.warmup} warm-up · {report['model']}")
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores, paddle {paddle.__version__}")
    head = f"{'mode':<10}{'ms/pred':>9}{'RSS warm MB':>13}{'RSS end MB':>12}{'growth':>9}{'fds':>10}{'threads':>10}  ok"
    print(head)
    for r in rows:
        print(f"{r['mode']:<10}{r['ms_per_prediction']:>9.2f}{r['rss_after_warmup_mb']:>13.1f}{r['rss_end_mb']:>12.1f}"
              f"{r['rss_growth_pct']:>8.2f}%{r['fds_after_warmup']:>5} →{r['fds_end']:>3}"
              f"{r['threads_after_warmup']:>5} →{r['threads_end']:>3}  {'yes' if r['ok'] else 'NO'}")
    if rebuilds:
        print(f"\nbuild + close, {a.cycles} cycles per mode")
        for r in rebuilds:
            print(f"{r['mode']:<10} RSS {r['rss_before_mb']:.1f} → {r['rss_after_mb']:.1f} MB "
                  f"({r['rss_per_cycle_mb']:+.2f} MB/cycle), fds {r['fds_before']} → {r['fds_after']}, "
                  f"threads {r['threads_before']} → {r['threads_after']}")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
