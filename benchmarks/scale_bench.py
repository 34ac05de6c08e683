"""Take the numbers for docs/scale.md in one run: memory, local vs Ray throughput, per-image costs.

    .venv/bin/python benchmarks/scale_bench.py [--out out/scale] [--sizes 2000 20000] [--rounds 3]

1. **Driver memory.**  ``clsviz.evaluate`` on 2,000 and 20,000 generated labelled images (small
   files, preprocessed to 224×224 by the demo model exported at 224), locally and on Ray, each in
   a fresh process: peak RSS of that (driver) process.  Also the old ``predict`` path
   (preprocess the whole folder, then run), on the small folder only.
2. **Throughput, side by side.**  ResNet50_vd (random weights, 224) on photo-like 500×375 JPEGs:
   a local run (2 threads), Ray with 1 worker and Ray with 2 workers (1 thread each), in
   interleaved rounds (``clsviz.timing.interleaved_laps``); images/s end to end and in steady
   state (from the first answer to the last), as ratios to the local run.
3. **Per-image costs** for the paper plan: decode + preprocess of one such JPEG, ResNet50_vd
   forward per image on one thread, the driver's CPU per image in a Ray run, and actor start.

Writes ``scale.json`` and ``scale.md`` under ``--out``; docs/scale.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------------------ data
def noise_folder(folder: Path, n: int, seed: int) -> Path:
    """``n`` small labelled images (flat folder + labels.txt): quick to write, full-size once preprocessed."""
    import numpy as np
    from PIL import Image

    from clsviz.demo.dataset import CLASSES

    if (folder / "labels.txt").is_file() and len((folder / "labels.txt").read_text().splitlines()) == n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        name = f"im_{i:06d}.png"
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / name)
        lines.append(f"{name} {CLASSES[i % len(CLASSES)]}\n")
    (folder / "labels.txt").write_text("".join(lines))
    return folder


def photo_folder(folder: Path, n: int, classes: int = 1000) -> Path:
    """``n`` photo-like 500×375 JPEGs (ImageNet's typical size) labelled by class id."""
    from clsviz.bench import synthetic_jpeg

    if (folder / "labels.txt").is_file() and len((folder / "labels.txt").read_text().splitlines()) == n:
        return folder
    lines = []
    for i in range(n):
        synthetic_jpeg(folder / f"ph_{i:05d}.jpg", (500, 375), seed=i, quality=90)
        lines.append(f"ph_{i:05d}.jpg {i % classes}\n")
    (folder / "labels.txt").write_text("".join(lines))
    return folder


# ------------------------------------------------------------------------------ 1. memory
def probe(args) -> None:
    """Child process: one evaluation (or the old predict), its driver's peak RSS and CPU."""
    import clsviz
    from clsviz.timing import clock, peak_rss_mb, reset_peak_rss, rss_mb

    small, folder, bundle, how, address = args
    kw = dict(batch_size=8, progress=False)
    if how == "old-predict":  # what predict did before streaming: preprocess everything, then run
        from clsviz.transforms import expand_images

        clf = clsviz.load(bundle, mode="predictor", batch_size=8)
        clf.run_batches(clf.preprocess(expand_images(small)))
        warm_peak = peak_rss_mb()
        reset_peak_rss()
        base, c0, t0 = rss_mb(), _cpu_seconds(), clock()
        paths = expand_images(folder)
        n = len(clf.postprocess(clf.run_batches(clf.preprocess(paths)), 1))
    else:
        if how == "ray":
            kw.update(ray=address, workers=2)
        clsviz.evaluate(small, bundle, **kw)  # engines (or Ray actors) and allocator warm
        warm_peak = peak_rss_mb()
        reset_peak_rss()  # the high-water mark from here on is the big run's
        base, c0, t0 = rss_mb(), _cpu_seconds(), clock()
        n = len(clsviz.evaluate(folder, bundle, **kw).paths)
    secs = clock() - t0
    print(json.dumps({"images": n, "peak_rss_mb": max(warm_peak, peak_rss_mb()), "run_peak_rss_mb": peak_rss_mb(),
                      "base_rss_mb": base, "seconds": secs, "cpu_seconds": _cpu_seconds() - c0,
                      "images_per_second": n / secs, "driver_cpu_ms_per_image": 1e3 * (_cpu_seconds() - c0) / n}))


def _child(small, folder, bundle, how, address) -> dict:
    p = subprocess.run([sys.executable, __file__, "--probe", str(small), str(folder), str(bundle), how, address or "-"],
                       capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"probe {how} {folder} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def memory(work: Path, sizes, address: str) -> dict:
    from clsviz.demo.run import export_demo
    from clsviz.transforms import Preprocess

    bundle = export_demo(work / "demo224", preprocess=Preprocess(resize_short=256, crop_size=224)).out_dir
    small = noise_folder(work / "warm", 16, 0)
    res = {"bundle": "demo model exported at 224×224 (3×224×224 float32 = 588 KiB per preprocessed image)",
           "runs": []}
    for n in sizes:
        _log(f"memory: writing {n} images ...")
        folder = noise_folder(work / f"noise{n}", n, n)
        hows = ["local", "ray"] + (["old-predict"] if n == min(sizes) else [])
        for how in hows:
            _log(f"memory: {how} on {n} images ...")
            r = _child(small, folder, bundle, how, address)
            r.update(how=how, folder_images=n)
            res["runs"].append(r)
            _log(f"   peak RSS {r['peak_rss_mb']:.0f} MB, {r['images_per_second']:.0f} img/s")
    return res


# ------------------------------------------------------------------------------ 2. throughput
def throughput(work: Path, *, images: int, rounds: int, address: str) -> dict:
    import numpy as np

    import clsviz
    from clsviz.bench import prepare_bundle
    from clsviz.timing import interleaved_laps
    from clsviz.timing import clock

    bundle, _ = prepare_bundle("ResNet50_vd", work)
    folder = photo_folder(work / f"photos{images}", images)
    images = len(clsviz.evaluate.read_labelled_folder(folder, [str(i) for i in range(1000)])[0])

    def contender(**kw):
        def run():
            stamps = []
            c0, t0 = _cpu_seconds(), clock()
            rep = clsviz.evaluate(folder, bundle, batch_size=8,
                                  progress=lambda done, total, mode: stamps.append((clock(), done)), **kw)
            wall = clock() - t0
            m = rep.modes["predictor"]
            return {"end_to_end": wall,                                # engines built or actors started
                    "steady": m.scoring_seconds / images,              # first batch started → last done
                    "busy": m.busy_seconds / images,                   # worker time per image
                    "first_answer": stamps[0][0] - t0 - rep.run.setup_seconds,   # at the driver
                    "setup": rep.run.setup_seconds,
                    "driver_cpu_per_image": (_cpu_seconds() - c0) / images}
        return run

    contenders = {"local (1 process, 2 threads)": contender(),
                  "ray, 1 worker × 1 thread": contender(ray=address, workers=1),
                  "ray, 2 workers × 1 thread": contender(ray=address, workers=2)}
    _log(f"throughput: ResNet50_vd on {images} photos, {rounds} interleaved rounds (+1 warm-up) ...")
    laps = interleaved_laps(contenders, repeats=rounds, warmup=1,
                            progress=lambda r, n: _log(f"   round {r}/{n}"))
    med = {k: {s: float(np.median(v)) for s, v in d.items()} for k, d in laps.items()}
    local = med["local (1 process, 2 threads)"]
    out = {"model": "ResNet50_vd (random weights), 224×224, batch 8", "images": images, "rounds": rounds,
           "laps": laps, "median": med, "ratios_to_local": {}}
    for k, m in med.items():
        out["ratios_to_local"][k] = {
            "end_to_end": round(local["end_to_end"] / m["end_to_end"], 3),  # >1: faster than local
            "steady_state": round(local["steady"] / m["steady"], 3)}
    return out


# ------------------------------------------------------------------------------ 3. per-image costs
def per_image_costs(work: Path, *, repeats: int) -> dict:
    import numpy as np

    import clsviz
    from clsviz.bench import prepare_bundle
    from clsviz.timing import interleaved, timed_cpu

    bundle, _ = prepare_bundle("ResNet50_vd", work)
    folder = photo_folder(work / "photos_costs", 32)
    paths = sorted(folder.glob("*.jpg"))
    pre = clsviz.load(bundle, mode="predictor", cpu_threads=1).config.preprocess
    it = iter(range(10 ** 9))
    x8 = np.stack([pre(p) for p in paths[:8]])
    one = clsviz.load(bundle, mode="predictor", cpu_threads=1, batch_size=8)
    two = clsviz.load(bundle, mode="predictor", cpu_threads=2, batch_size=8)
    _log("per-image costs ...")
    st = interleaved({"decode+preprocess 500×375 JPEG": timed_cpu(lambda: pre(paths[next(it) % len(paths)])),
                      "forward batch 8, 1 thread": timed_cpu(lambda: one.forward(x8)),
                      "forward batch 8, 2 threads": timed_cpu(lambda: two.forward(x8))}, repeats=repeats)
    res = {k: {"wall_ms": v["total"].to_dict(), "cpu_ms": v["cpu"].to_dict()} for k, v in st.items()}
    res["per_image_ms_1_thread"] = {
        "preprocess": round(st["decode+preprocess 500×375 JPEG"]["total"].p50, 3),
        "forward": round(st["forward batch 8, 1 thread"]["total"].p50 / 8, 3)}
    return res


# ------------------------------------------------------------------------------ report
def to_markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} usable cores, {r['ram_gb']} GB RAM; load average at start "
             f"{r['load_at_start']}; clsviz {r['versions']['clsviz']}, paddle {r['versions']['paddle']}, "
             f"ray {r['versions']['ray']}", ""]
    if "memory" in r:
        lines += ["| run | images | driver peak RSS MB | growth over warm-up MB | images/s | driver CPU ms/image |",
                  "|---|---:|---:|---:|---:|---:|"]
        for x in r["memory"]["runs"]:
            lines.append(f"| {x['how']} | {x['images']:,} | {x['peak_rss_mb']:.0f} | "
                         f"{x['run_peak_rss_mb'] - x['base_rss_mb']:.0f} | {x['images_per_second']:.0f} | "
                         f"{x['driver_cpu_ms_per_image']:.3f} |")
        lines.append("")
    if "throughput" in r:
        t = r["throughput"]
        lines += [f"{t['model']}, {t['images']} images, median of {t['rounds']} interleaved rounds:", "",
                  "| run | end to end s | first answer s | steady ms/image | worker busy ms/image | "
                  "driver CPU ms/image | ratio to local, end to end | ratio to local, steady state |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for k, v in t["median"].items():
            rr = t["ratios_to_local"][k]
            lines.append(f"| {k} | {v['end_to_end']:.2f} | {v['first_answer']:.1f} | {1e3 * v['steady']:.1f} | "
                         f"{1e3 * v['busy']:.1f} | {1e3 * v['driver_cpu_per_image']:.2f} | {rr['end_to_end']:.2f} | "
                         f"{rr['steady_state']:.2f} |")
        lines.append("")
    if "costs" in r:
        c = r["costs"]
        lines += ["| per-image cost (1 thread) | ms |", "|---|---:|"]
        for k, v in c["per_image_ms_1_thread"].items():
            lines.append(f"| {k} | {v:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--probe":
        probe(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "out" / "scale"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--images", type=int, default=96, help="photos per throughput pass")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20, help="per-image cost repeats")
    ap.add_argument("--skip", nargs="*", default=[], choices=["memory", "throughput", "costs"])
    a = ap.parse_args(argv)

    import platform

    import psutil

    import clsviz
    from clsviz.bench import machine_info
    from clsviz.cluster import connect

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine_info(), "ram_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
           "load_at_start": [round(x, 2) for x in os.getloadavg()],
           "versions": {"clsviz": clsviz.__version__, "paddle": clsviz._paddle.paddle.__version__,
                        "ray": __import__("ray").__version__, "python": platform.python_version()}}
    session = connect(True)  # one local runtime; the children join it
    res["ray_runtime"] = session.describe()
    with tempfile.TemporaryDirectory(prefix="clsviz-scale-") as tmp:
        work = Path(tmp)
        if "costs" not in a.skip:
            res["costs"] = per_image_costs(work, repeats=a.repeats)
        if "throughput" not in a.skip:
            res["throughput"] = throughput(work, images=a.images, rounds=a.rounds, address=session.address)
        if "memory" not in a.skip:
            res["memory"] = memory(work, a.sizes, session.address)
    res["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    (out / "scale.json").write_text(json.dumps(res, indent=2, default=str))
    md = to_markdown(res)
    (out / "scale.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
