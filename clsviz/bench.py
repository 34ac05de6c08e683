"""Latency lab: per-mode, per-stage latency, predictor sweeps, overhead, and the physical limit.

    >>> from clsviz.bench import run_bench
    >>> report = run_bench("ResNet50_vd", repeats=30, out="out/bench")
    >>> report.ratios                       # the headline numbers
    >>> report.to_markdown(); report.figure()

Method, for every number here:

* warm-up runs are excluded; each contender then runs ``repeats`` timed times;
* timed runs are **interleaved**: every round runs each contender once, in a
  shuffled order, so a burst of noise from a shared machine hits all of them alike;
* latency is reported as p50 / p90 / mean in milliseconds; ratios are ratios of
  the p50s (medians) of contenders timed in the same interleaved rounds;
* cold starts (build time, first run, peak RSS) run in a fresh subprocess per mode,
  so no mode inherits another's warm caches or memory high-water mark.
"""
from __future__ import annotations

import html
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .archs.flops import FlopCount, count_flops  # noqa: F401  (part of this module's API)
from .errors import OptionError
from .results import StageStats
from .timing import (_vm_hwm_mb, clock, interleaved, interleaved_laps, peak_rss_mb, rss_mb, staged, timed,
                     timed_cpu)
from .timing import reset_peak_rss as _reset_peak_rss

SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "sample_images"
STAGES = ("preprocess", "forward", "postprocess")

__all__ = ["run_bench", "BenchReport", "overhead", "overhead_only", "preprocessing_check", "machine_info",
           "count_flops", "FlopCount", "interleaved", "interleaved_laps", "sweep_configs", "prepare_bundle",
           "bench_images", "synthetic_jpeg", "cold_start", "bench_cli"]


# --------------------------------------------------------------------------------------------
# the machine and its physical limit
# --------------------------------------------------------------------------------------------

def _cpuinfo() -> dict:
    info: dict = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, sep, v = line.partition(":")
                if not sep:
                    if info:  # first processor block is enough
                        break
                    continue
                info.setdefault(k.strip(), v.strip())
    except OSError:  # pragma: no cover - not Linux
        pass
    return info


def _lscpu_max_mhz() -> float | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^CPU max MHz:\s*([\d.]+)", out, re.M)
    return float(m.group(1)) if m else None


def _amd_zen(family: int, model: int) -> str | None:
    if family == 0x1A:
        return "Zen 5"
    if family == 0x19:
        return "Zen 4" if (0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF) else "Zen 3"
    if family == 0x17:
        return "Zen / Zen 2"
    return None


def machine_info() -> dict:
    """CPU model, usable cores, clock, vector width and the fp32 FMA peak, read from the system.

    Peak = cores × clock × fp32 lanes × FMA units × 2 (an FMA is a multiply and an add).
    The FMA-unit count cannot be read from the system; we assume 2 per core (true for
    Intel server cores since Skylake-SP Gold/Platinum and for AMD Zen 2-5).  On AMD Zen 4
    a 512-bit FMA runs as two halves on 256-bit pipes, so its real datapath peak is half
    the AVX-512 formula; ``peak_gflops_fp32_datapath`` states that corrected figure.
    """
    from .engines.base import default_threads

    ci = _cpuinfo()
    flags = set(ci.get("flags", "").split())
    cores = default_threads()
    lscpu_max = _lscpu_max_mhz()
    cpuinfo_mhz = float(ci["cpu MHz"]) if "cpu MHz" in ci else None
    if lscpu_max:
        mhz, mhz_source = lscpu_max, "lscpu 'CPU max MHz'"
    elif cpuinfo_mhz:
        mhz, mhz_source = cpuinfo_mhz, "/proc/cpuinfo 'cpu MHz' (no max clock exposed; boost may be higher)"
    else:  # pragma: no cover
        mhz, mhz_source = float("nan"), "unknown"
    if "avx512f" in flags:
        isa, lanes = "AVX-512", 16
    elif "avx2" in flags and "fma" in flags:
        isa, lanes = "AVX2+FMA", 8
    elif "avx" in flags:
        isa, lanes = "AVX (no FMA)", 8
    else:
        isa, lanes = "SSE", 4
    fma_units = 2
    peak = cores * mhz / 1e3 * lanes * fma_units * 2
    vendor = ci.get("vendor_id", platform.processor() or "?")
    family, model = int(ci.get("cpu family", 0) or 0), int(ci.get("model", 0) or 0)
    zen = _amd_zen(family, model) if vendor == "AuthenticAMD" else None
    datapath = peak
    note = f"assumes {fma_units} FMA units per core, each {lanes * 32} bits wide"
    if zen == "Zen 4" and lanes == 16:
        datapath = peak / 2
        note += ("; Zen 4 executes a 512-bit FMA as two 256-bit halves (2 × 256-bit FMA pipes), "
                 "so its datapath peak is half")
    name = ci.get("model name", platform.processor() or "?")
    if zen:
        name += f" (family {family}, model {model}: {zen})"
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
             if f in flags]
    return {
        "cpu": name, "vendor": vendor, "cores": cores, "logical_cpus": os.cpu_count(),
        "mhz": mhz, "mhz_source": mhz_source, "isa": isa, "fp32_lanes": lanes, "fma_units": fma_units,
        "flags": shown, "hypervisor": "hypervisor" in flags,
        "peak_gflops_fp32": round(peak, 1), "peak_gflops_fp32_datapath": round(datapath, 1),
        "peak_note": note,
        "python": platform.python_version(), "platform": platform.platform(),
    }


# --------------------------------------------------------------------------------------------
# fair timing
# --------------------------------------------------------------------------------------------

# the harness lives in clsviz.timing (one for compare, bench, the Explorer and the notebooks)
_timed, _timed_cpu = timed, timed_cpu


# --------------------------------------------------------------------------------------------
# models, images, cold starts
# --------------------------------------------------------------------------------------------

def prepare_bundle(model: str, workdir, *, image_size: int = 224, seed: int = 0) -> tuple[Path, str]:
    """An inference bundle for ``model``: an existing bundle path, ``"demo"`` (the bundled demo
    checkpoint), or an architecture name (random weights, seeded) exported at ``image_size``
    into ``workdir``.  Returns ``(bundle, arch)``."""
    from ._paddle import dygraph_mode, paddle
    from .archs import get_model
    from .export import export

    p = Path(model)
    if p.exists():
        from .bundle import BundleConfig
        from .formats import detect

        files = detect.resolve(p)
        arch = BundleConfig.read(files.config_file).model_name if files.config_file else None
        return p, arch or "?"
    out = Path(workdir) / f"{model.replace(':', '_').replace('/', '_')}_{image_size}"
    if model == "demo":  # the bundled checkpoint, with its own labels and preprocessing
        from .demo import DEMO_ARCH, DEMO_CHECKPOINT

        if not DEMO_CHECKPOINT.exists():
            raise OptionError(f"the demo model is not there ({DEMO_CHECKPOINT})",
                              hint="train it with `python -m clsviz train-demo`, or pick an architecture")
        from .demo.run import export_demo

        export_demo(out)
        return out, DEMO_ARCH
    with dygraph_mode():
        paddle.seed(seed)
        net = get_model(model)
        state = net.state_dict()
    export(model, state, out, image_shape=(3, image_size, image_size), force=True)
    return out, model


def bench_images(n: int, workdir, *, folder=None) -> tuple[list[Path], str]:
    """At least ``n`` image paths (cycled if needed) and where they came from.

    ``sample_images/`` when it holds images; else the same set written by
    :mod:`clsviz.demo.samples` into ``workdir``; else generated 640×480 JPEGs.
    """
    from .transforms import IMAGE_SUFFIXES

    def images_in(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []

    folder = Path(folder) if folder is not None else SAMPLE_IMAGES
    found, source = images_in(folder), str(folder)
    if not found and folder == SAMPLE_IMAGES:
        try:
            from .demo.samples import write_sample_images

            target = Path(workdir) / "sample_images"
            write_sample_images(target)
            found, source = images_in(target), "sample_images/ as written by clsviz.demo.samples"
        except Exception:  # the demo package is optional here
            found = []
    if not found:
        found = [synthetic_jpeg(Path(workdir) / f"synthetic_{i}.jpg", (640, 480), seed=i) for i in range(n)]
        source = "generated 640×480 JPEGs"
    return [found[i % len(found)] for i in range(max(n, len(found)))], source


def synthetic_jpeg(path, size=(1920, 1080), *, seed: int = 0, quality: int = 90) -> Path:
    """A photo-like JPEG (smooth gradients, shapes, mild noise) — pure noise would decode unfairly slowly."""
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(xx / w * np.pi * (1 + c) + c + seed) * np.cos(yy / h * np.pi * (2 - c))
                     for c in range(3)], -1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(w // 60, w // 8))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=quality)
    return path


def cold_start(bundle, mode: str, *, timeout: float = 600, **options) -> dict:
    """Build ``mode`` from ``bundle`` in a fresh Python process; build time, first runs, RSS."""
    cmd = [sys.executable, "-m", "clsviz.bench", "--cold-start", str(bundle), mode, json.dumps(options)]
    env = dict(os.environ)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return {"mode": mode, "error": " | ".join(tail) or f"exit {r.returncode}"}
    return json.loads(lines[-1])


def _cold_worker(bundle: str, mode: str, options: str) -> None:
    import psutil

    t_import = time.time() - psutil.Process().create_time()  # interpreter + numpy + paddle + clsviz
    from .engines import load

    rss_before = rss_mb()
    reset = _reset_peak_rss()
    clf = load(bundle, mode=mode, **json.loads(options))
    rss_built = rss_mb()
    x1 = clf.config.preprocess.probe(1)  # the model's own input signature
    t0 = clock()
    clf.forward(x1)
    first = clock() - t0
    t0 = clock()
    clf.forward(x1)
    second = clock() - t0
    x8 = np.repeat(x1, 8, axis=0)
    t0 = clock()
    clf.forward(x8)
    first8 = clock() - t0
    hwm = _vm_hwm_mb() if reset else None
    peak = hwm if hwm is not None else peak_rss_mb()
    print(json.dumps({
        "mode": mode, "startup_s": round(t_import, 3), "build_s": round(clf.build_seconds, 4),
        "first_forward_ms": round(first * 1e3, 2), "second_forward_ms": round(second * 1e3, 2),
        "first_forward_b8_ms": round(first8 * 1e3, 2),
        "rss_after_import_mb": round(rss_before, 1), "rss_after_build_mb": round(rss_built, 1),
        "rss_after_runs_mb": round(rss_mb(), 1), "peak_rss_mb": round(peak, 1),
        "peak_over_import_mb": round(peak - rss_before, 1),
        "peak_source": "VmHWM reset after import" if hwm is not None else "ru_maxrss (includes import)",
    }))


# --------------------------------------------------------------------------------------------
# the experiments
# --------------------------------------------------------------------------------------------

def _raw_loop(clf) -> Callable[[np.ndarray], np.ndarray]:
    """The plain loop a user would write on the *same* engine object (Paddle's, or the runtime's)."""
    from ._paddle import paddle

    if clf.mode == "predictor":
        pred = clf.predictor
        inp = pred.get_input_handle(pred.get_input_names()[0])
        out = pred.get_output_handle(pred.get_output_names()[0])

        def raw(x):
            inp.reshape(list(x.shape))
            inp.copy_from_cpu(x)
            pred.run()
            return out.copy_to_cpu()
        return raw
    if clf.mode == "dygraph":
        net, place = clf.net, clf.place

        def raw(x):
            with paddle.no_grad():
                return net(paddle.to_tensor(x, place=place)).numpy()
        return raw
    if clf.mode == "executor":
        exe, prog, scope = clf.exe, clf.program, clf.scope
        feed, fetch = clf.feed_names[0], clf.fetch_targets[:1]

        def raw(x):
            with paddle.static.scope_guard(scope):
                return exe.run(prog, feed={feed: x}, fetch_list=fetch)[0]
        return raw
    if clf.mode == "openvino":  # OpenVINO's own docs: an infer request on the compiled model
        req = clf.compiled.create_infer_request()
        port = clf.compiled.output(0)

        def raw(x):
            return req.infer({0: x})[port]
        return raw
    if clf.mode == "onnxruntime":  # ONNX Runtime's: session.run(None, {input name: array})
        sess = clf.session
        name = sess.get_inputs()[0].name

        def raw(x):
            return sess.run(None, {name: x})[0]
        return raw
    raise OptionError(f"no raw loop for mode {clf.mode!r}")


def overhead(classifiers: Mapping[str, object], batch: np.ndarray, *, repeats: int = 30,
             warmup: int = 5, seed: int = 0) -> dict:
    """``Classifier.forward`` vs the raw Paddle loop, side by side on the same engine and input.

    For each mode the two run interleaved (shuffled order per round) for ``max(30, repeats)``
    rounds after ``warmup``; the ratio is median(clsviz) / median(raw), with a bootstrap
    95 % interval, the median of the per-round ratios and of the per-round differences.
    """
    from ._paddle import static_mode

    repeats = max(30, int(repeats))
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    result = {}
    for mode, clf in classifiers.items():
        raw = _raw_loop(clf)

        def raw_timed(raw=raw, static=clf.mode == "executor"):
            # a raw script sits in static mode throughout, so only exe.run is on its clock;
            # clsviz enters and leaves static mode on every call, and that counts as overhead
            with (static_mode() if static else _nullcontext()):
                t0 = clock()
                out = raw(batch)
                dt = clock() - t0
            return {"total": dt, "_out": out}

        same = float(np.max(np.abs(np.asarray(clf.forward(batch)) - np.asarray(raw_timed()["_out"]))))
        contenders = {"clsviz": _timed(lambda clf=clf: clf.forward(batch)),
                      "raw": lambda f=raw_timed: {"total": f()["total"]}}
        laps = interleaved_laps(contenders, repeats=repeats, warmup=warmup, seed=seed)
        lc, lr = np.asarray(laps["clsviz"]["total"]), np.asarray(laps["raw"]["total"])
        c, r = StageStats.of(lc), StageStats.of(lr)
        result[mode] = {"clsviz_ms": c.to_dict(), "raw_ms": r.to_dict(), "ratio": round(c.p50 / r.p50, 4),
                        # the same, round by round: robust to slow drifts in machine load
                        "paired_ratio": round(float(np.median(lc / lr)), 4),
                        "paired_diff_ms": round(float(np.median(lc - lr)) * 1e3, 4),
                        "ratio_ci95": _bootstrap_ratio_ci(lc, lr, seed=seed),
                        "max_abs_diff": same}
    return result


def _bootstrap_ratio_ci(a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0) -> list[float]:
    """95 % interval of median(a) / median(b), resampling whole rounds (the pairs stay together)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    r = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    return [round(float(v), 4) for v in np.percentile(r, [2.5, 97.5])]


FIXED_COST_ARCH, FIXED_COST_SIZE, FIXED_COST_ROUNDS = "ResNet18_vd_x0_25", 32, 300
OVERHEAD_ROUNDS = 60  # twice the minimum: a 5 % effect is near the noise of a shared machine


def fixed_costs(workdir, *, modes=("predictor", "dygraph", "executor"), rounds: int = FIXED_COST_ROUNDS,
                seed: int = 0) -> dict:
    """What clsviz adds per ``forward`` call, in ms, measured where it is not drowned by the network.

    The wrapper's work (argument checks, mode scopes, thread count) does not depend on the
    network, so it is timed on a tiny one (ResNet18_vd_x0_25 at 32×32, ~1 ms a run) over
    ``rounds`` interleaved rounds: the median of the per-round differences clsviz − raw.
    On a big network the same cost hides inside run-to-run noise of several percent.
    """
    from .engines import load

    bundle, _ = prepare_bundle(FIXED_COST_ARCH, Path(workdir) / "fixed_cost", image_size=FIXED_COST_SIZE,
                               seed=seed)
    clfs = {m: load(bundle, mode=m) for m in modes}
    x = np.random.default_rng(seed).standard_normal((1, 3, FIXED_COST_SIZE, FIXED_COST_SIZE)).astype(np.float32)
    res = overhead(clfs, x, repeats=rounds, warmup=10, seed=seed)
    for c in clfs.values():
        c.close()
    return {m: {"fixed_cost_ms": v["paired_diff_ms"], "tiny_raw_ms": v["raw_ms"]["p50"], "rounds": rounds}
            for m, v in res.items()}


def _with_bounds(ovh: dict, fixed: dict) -> dict:
    """Add ``bound_ratio`` = 1 + fixed cost / raw p50 on the big network (noise-free estimate)."""
    for m, v in ovh.items():
        if m in fixed:
            f = max(0.0, fixed[m]["fixed_cost_ms"])
            v["fixed_cost_ms"] = fixed[m]["fixed_cost_ms"]
            v["bound_ratio"] = round(1 + f / v["raw_ms"]["p50"], 5)
    return ovh


def sweep_configs(*, threads=None, bf16: bool | None = None) -> list[tuple[str, dict]]:
    """Predictor configurations to sweep: threads × oneDNN × IR optim × precision."""
    from .engines.base import default_threads
    from .engines.predictor import bf16_available

    if threads is None:
        threads = sorted({1, default_threads()})
    if bf16 is None:
        bf16 = bf16_available()[0]
    out = []
    for t in threads:
        for dnn in (True, False):
            for ir in (True, False):
                precs = ("fp32", "bf16") if (dnn and bf16) else ("fp32",)
                for prec in precs:
                    name = f"t{t} oneDNN {'on' if dnn else 'off'} IR {'on' if ir else 'off'} {prec}"
                    out.append((name, {"cpu_threads": t, "enable_mkldnn": dnn, "ir_optim": ir,
                                       "precision": prec}))
    return out


def _same_config(opts, kw) -> bool:
    return (opts.threads == kw["cpu_threads"] and opts.mkldnn == kw["enable_mkldnn"]
            and opts.ir_optim == kw["ir_optim"] and opts.precision == kw["precision"])


def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {"top1_agree": float(np.mean(a.argmax(1) == b.argmax(1))), "n": int(len(a)),
            "max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cos.min())}


def _draft_preprocess(pre, path):
    """What-if: let the JPEG decoder downscale in the DCT domain (``Image.draft``) first."""
    from PIL import Image

    from .transforms import _to_rgb

    with Image.open(path) as im:
        if pre.resize_short and im.format == "JPEG":
            iw, ih = im.size
            s = pre.resize_short / min(iw, ih)
            # decodes at 1/2, 1/4 or 1/8 scale: the smallest that is still ≥ the resize target
            im.draft("RGB", (max(1, round(iw * s)), max(1, round(ih * s))))
        im.load()
        img = _to_rgb(im, str(path))
        return pre.normalize(np.asarray(pre.resize_crop(img)))


def preprocessing_check(default_clf, *, workdir, repeats: int, warmup: int = 3, seed: int = 0) -> dict:
    """Decode + resize + crop + normalise of a 1920×1080 JPEG vs the predictor's forward (batch 1)."""
    from .transforms import load_image

    pre = default_clf.config.preprocess
    jpg = synthetic_jpeg(Path(workdir) / "photo_1920x1080.jpg", (1920, 1080), seed=seed)
    x = pre(jpg)[None]
    decoded = load_image(jpg)
    cropped = np.asarray(pre.resize_crop(decoded))
    contenders = {
        "preprocess": _timed(lambda: pre(jpg)),
        "forward": _timed(lambda: default_clf.forward(x)),
        "decode": _timed(lambda: load_image(jpg)),
        "resize_crop": _timed(lambda: pre.resize_crop(decoded)),
        "normalize": _timed(lambda: pre.normalize(cropped)),
        "preprocess_draft": _timed(lambda: _draft_preprocess(pre, jpg)),
    }
    st = {k: v["total"] for k, v in interleaved(contenders, repeats=repeats, warmup=warmup, seed=seed).items()}
    exact, draft = pre(jpg), _draft_preprocess(pre, jpg)
    levels = np.abs(exact - draft) * (np.asarray(pre.std, np.float32)[:, None, None] / np.float32(pre.scale))
    return {
        "image": "1920×1080 JPEG (synthetic, quality 90)",
        "ms": {k: v.to_dict() for k, v in st.items()},
        "ratio": round(st["preprocess"].p50 / st["forward"].p50, 4),
        "draft": {"ratio_vs_exact": round(st["preprocess_draft"].p50 / st["preprocess"].p50, 4),
                  "max_abs_diff_levels": round(float(levels.max()), 2),
                  "mean_abs_diff_levels": round(float(levels.mean()), 3)},
    }


def run_bench(model: str = "ResNet50_vd", *, repeats: int = 30, warmup: int = 3, out=None,
              image_size: int = 224, batch_sizes=(1, 8), modes=("predictor", "dygraph", "executor"),
              repeats_batch: int | None = None, sweep=True, threads=None, cold=True, images=None,
              fixed_cost: bool = True, workdir=None, seed: int = 0, log=None) -> "BenchReport":
    """The whole lab on one model; writes ``bench.json``, ``bench.md``, ``bench.png`` into ``out``.

    ``model``: an architecture name (random weights), ``"demo"`` or a bundle path.
    ``repeats_batch``: rounds for batches > 1 (default ``max(5, repeats // 3)``; they are
    8× longer).  ``sweep``: ``True`` for :func:`sweep_configs`, ``False`` for none, or a
    list of ``(name, options)``.  ``log`` is an optional callable(str) for progress lines.
    """
    from .engines import load
    from .engines.predictor import bf16_available
    from .transforms import image_name

    say = log or (lambda s: None)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    background = _BackgroundLoad()
    tmp = tempfile.TemporaryDirectory(prefix="clsviz-bench-") if workdir is None else None
    workdir = Path(workdir or tmp.name)
    try:
        say(f"preparing {model} ...")
        bundle, arch = prepare_bundle(model, workdir, image_size=image_size, seed=seed)
        paths, image_source = (list(images), "given") if images is not None else \
            bench_images(max(batch_sizes), workdir)

        cold_rows = {}
        if cold:
            # the first process to import Paddle reads ~1 GB of libraries from disk; do that
            # once untimed so every mode's "cold start" means a fresh process, not a cold disk
            subprocess.run([sys.executable, "-c", "import clsviz"], capture_output=True, timeout=600)
            for m in modes:
                say(f"cold start {m} (fresh process) ...")
                cold_rows[m] = cold_start(bundle, m)

        say("building engines ...")
        clfs = {m: load(bundle, mode=m) for m in modes}
        default = clfs.get("predictor") or load(bundle, mode="predictor")
        shape = default.config.image_shape

        flops = None
        if "dygraph" in clfs:
            net = clfs["dygraph"].net
            flops = count_flops(getattr(net, "net", net), (1, *shape))

        mode_rows, st = {}, {}
        for b in batch_sizes:
            n = repeats if b == 1 else (repeats_batch or max(5, repeats // 3))
            say(f"per-stage latency, {len(clfs)} modes, batch {b}, {n} interleaved rounds ...")
            contenders = {}
            for m, clf in clfs.items():
                items = [paths[i % len(paths)] for i in range(b)]
                contenders[f"{m}|{b}"] = staged(clf, [items], names=[image_name(p, i) for i, p in enumerate(items)])
            st.update(interleaved(contenders, repeats=n, warmup=min(warmup, 2) if b > 1 else warmup, seed=seed))
        for m in clfs:
            for b in batch_sizes:
                s = st[f"{m}|{b}"]
                mode_rows.setdefault(m, {})[str(b)] = {
                    "stages_ms": {k: s[k].to_dict() for k in STAGES},
                    "total_ms": s["total"].to_dict(),
                    "images_per_s": round(b / (s["total"].p50 / 1e3), 2),
                    "forward_images_per_s": round(b / (s["forward"].p50 / 1e3), 2),
                }

        x1 = default.preprocess(paths[:1])
        sweep_rows, agreements = {}, {}
        configs = sweep_configs(threads=threads) if sweep is True else list(sweep or [])
        default_name = None
        if configs:
            say(f"predictor sweep: {len(configs)} configurations, {repeats} interleaved rounds ...")
            built = {}
            for name, kw in configs:
                if default_name is None and _same_config(default.options, kw):
                    default_name, built[name] = name, default
                else:
                    built[name] = load(bundle, mode="predictor", **kw)
            sw = interleaved({n: _timed_cpu(lambda c=c: c.forward(x1)) for n, c in built.items()},
                             repeats=repeats, warmup=warmup, seed=seed)
            for (name, kw) in configs:
                s = sw[name]["total"]
                sweep_rows[name] = {"options": kw, "build_s": round(built[name].build_seconds, 3),
                                    "ms": s.to_dict(), "cpu_ms": sw[name]["cpu"].to_dict(),
                                    "default": name == default_name}
            # reduced precision vs the fp32 default, on every bench image
            lowp = [name for name, kw in configs if kw["precision"] != "fp32"]
            if lowp:
                xb = default.preprocess(paths)
                ref = default.forward(xb)
                for name in lowp:
                    agreements[name] = _agreement(built[name].forward(xb), ref)
            for name, c in built.items():
                if c is not default:
                    c.close()

        say("overhead: clsviz forward vs the raw Paddle loop ...")
        ovh = overhead(clfs, x1, repeats=max(OVERHEAD_ROUNDS, repeats), seed=seed)
        if fixed_cost:
            say(f"overhead: fixed cost per call on a tiny network, {FIXED_COST_ROUNDS} rounds ...")
            ovh = _with_bounds(ovh, fixed_costs(workdir, modes=tuple(clfs), seed=seed))

        say("preprocessing of a 1920×1080 JPEG vs forward ...")
        prep = preprocessing_check(default, workdir=workdir, repeats=repeats, seed=seed)

        mach = machine_info()
        report = BenchReport(
            model=model, arch=arch, image_shape=tuple(shape), started=started,
            finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            method={"warmup": warmup, "repeats": repeats,
                    "repeats_batch": repeats_batch or max(5, repeats // 3), "interleaved": True,
                    "order": "shuffled per round",
                    "percentiles": "p50/p90 (numpy linear), mean", "ratios": "ratios of p50s",
                    "cold_start": "fresh subprocess per mode", "images": image_source,
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg() if load_before else None,
                    **background.result()},
            machine=mach, versions=_versions(), cold=cold_rows, modes=mode_rows, sweep=sweep_rows,
            default_config=default_name, agreement=agreements, overhead=ovh, preprocessing=prep,
            flops=flops.to_dict() if flops else None, bf16_supported=bf16_available()[0])
        for c in clfs.values():
            c.close()
        if out is not None:
            report.save(out)
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


class _BackgroundLoad:
    """How busy the machine was with *other* work while the lab ran (a shared machine's noise)."""

    def __init__(self):
        import psutil

        self._psutil = psutil
        self._t0 = time.perf_counter()
        self._sys0 = psutil.cpu_times()
        self._me0 = self._mine()

    def _mine(self) -> float:
        t = os.times()  # this process and its waited-for children (the cold starts)
        return t.user + t.system + t.children_user + t.children_system

    def result(self) -> dict:
        wall = time.perf_counter() - self._t0
        sys1 = self._psutil.cpu_times()
        idle = (sys1.idle - self._sys0.idle) + (getattr(sys1, "iowait", 0) - getattr(self._sys0, "iowait", 0))
        steal = getattr(sys1, "steal", 0) - getattr(self._sys0, "steal", 0)
        total = sum(sys1) - sum(self._sys0)
        busy = total - idle - steal
        ncpu = self._psutil.cpu_count() or 1
        others = max(0.0, busy - (self._mine() - self._me0))
        return {"wall_s": round(wall, 1),
                "other_processes_cores_busy": round(others / max(total, 1e-9) * ncpu, 2),
                "steal_fraction": round(steal / max(total, 1e-9), 3)}


def _versions() -> dict:
    import PIL

    from ._paddle import paddle

    return {"paddle": paddle.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchReport:
    """Everything one bench run measured; ``to_dict()`` is the JSON file."""

    model: str
    arch: str
    image_shape: tuple
    started: str
    finished: str
    method: dict
    machine: dict
    versions: dict
    cold: dict
    modes: dict
    sweep: dict
    default_config: str | None
    agreement: dict
    overhead: dict
    preprocessing: dict
    flops: dict | None
    bf16_supported: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "BenchReport":
        """Rebuild a report from its ``to_dict()`` (``bench.json``), e.g. to re-render it."""
        return cls(model=d["model"], arch=d["arch"], image_shape=tuple(d["image_shape"]), started=d["started"],
                   finished=d["finished"], method=d["method"], machine=d["machine"], versions=d["versions"],
                   cold=d["cold_start"], modes=d["modes"], sweep=d["sweep"], default_config=d["default_config"],
                   agreement=d["agreement"], overhead=d["overhead"], preprocessing=d["preprocessing"],
                   flops=d["flops"], bf16_supported=d.get("bf16_supported", False))

    # -- derived numbers ----------------------------------------------------------------------
    def _best(self, precision="fp32"):
        rows = {k: v for k, v in self.sweep.items() if v["options"]["precision"] == precision}
        return min(rows.items(), key=lambda kv: kv[1]["ms"]["p50"]) if rows else (None, None)

    def gflops(self) -> dict:
        """Achieved GFLOP/s of the predictor (conv + linear FLOPs / p50 forward) against the peak."""
        if not self.flops:
            return {}
        f = self.flops["flops"]
        peak = self.machine["peak_gflops_fp32"]
        peak_dp = self.machine["peak_gflops_fp32_datapath"]
        rows = {}

        def add(name, ms, images=1):
            g = f * images / (ms / 1e3) / 1e9
            rows[name] = {"gflops": round(g, 2), "of_peak": round(g / peak, 4),
                          "of_datapath_peak": round(g / peak_dp, 4)}

        if self.default_config:
            add("default fp32, batch 1", self.sweep[self.default_config]["ms"]["p50"])
        name, best = self._best("fp32")
        if best:
            add(f"best fp32 ({name}), batch 1", best["ms"]["p50"])
        name, bbest = self._best("bf16")
        if bbest:
            add(f"best bf16 ({name}), batch 1", bbest["ms"]["p50"])
        pr = self.modes.get("predictor", {})
        for b, row in pr.items():
            if b != "1":
                add(f"default fp32, batch {b} (per-stage run)", row["stages_ms"]["forward"]["p50"], int(b))
        return rows

    @property
    def ratios(self) -> dict:
        """The headline ratios (all ratios of medians measured side by side)."""
        r: dict = {"overhead_ratio": {m: v["ratio"] for m, v in self.overhead.items()}}
        if all("bound_ratio" in v for v in self.overhead.values()) and self.overhead:
            r["overhead_bound"] = {m: v["bound_ratio"] for m, v in self.overhead.items()}
            r["overhead_fixed_cost_ms"] = {m: v["fixed_cost_ms"] for m, v in self.overhead.items()}
        name, best = self._best("fp32")
        if best and self.default_config:
            r["default_vs_best_fp32"] = round(self.sweep[self.default_config]["ms"]["p50"] / best["ms"]["p50"], 4)
            r["best_fp32_config"] = name
        bname, bbest = self._best("bf16")
        if bbest and best:
            r["bf16_speedup_vs_best_fp32"] = round(best["ms"]["p50"] / bbest["ms"]["p50"], 4)
            if self.default_config:
                r["bf16_speedup_vs_default"] = round(self.sweep[self.default_config]["ms"]["p50"]
                                                     / bbest["ms"]["p50"], 4)
            r["best_bf16_config"] = bname
            if bname in self.agreement:
                r["bf16_top1_agreement"] = self.agreement[bname]["top1_agree"]
        r["preprocess_vs_forward"] = self.preprocessing.get("ratio")
        g = self.gflops()
        if g:
            first = next(iter(g.values()))
            r["gflops_default_b1"] = first["gflops"]
            r["gflops_of_peak"] = first["of_peak"]
            r["gflops_of_datapath_peak"] = first["of_datapath_peak"]
        return r

    def to_dict(self) -> dict:
        return {
            "model": self.model, "arch": self.arch, "image_shape": list(self.image_shape),
            "started": self.started, "finished": self.finished, "method": self.method,
            "machine": self.machine, "versions": self.versions, "ratios": self.ratios,
            "overhead_ratio": {m: v["ratio"] for m, v in self.overhead.items()},
            "cold_start": self.cold, "modes": self.modes, "sweep": self.sweep,
            "default_config": self.default_config, "agreement": self.agreement,
            "overhead": self.overhead, "preprocessing": self.preprocessing, "flops": self.flops,
            "gflops": self.gflops(), "bf16_supported": self.bf16_supported, **self.extra,
        }

    def to_markdown(self) -> str:
        m, L = self.machine, []
        L.append(f"### {self.model} ({self.arch}, input {'×'.join(map(str, self.image_shape))}) — {self.started}")
        L.append("")
        L.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['mhz']:.0f} MHz ({m['mhz_source']}), "
                 f"{m['isa']}, flags {' '.join(m['flags'])}; Paddle {self.versions['paddle']}. "
                 f"{self.method['repeats']} interleaved rounds after {self.method['warmup']} warm-up; "
                 f"images: {self.method['images']}.")
        if "other_processes_cores_busy" in self.method:
            la = self.method.get("loadavg_before")
            L[-1] += (f" Background: other processes kept {self.method['other_processes_cores_busy']:.2f} of "
                      f"{m['logical_cpus']} CPUs busy on average during the {self.method['wall_s']:.0f} s run"
                      + (f" (load average {la[0]:.1f} at the start)" if la else "") + ".")
        L.append("")
        if self.modes:
            L.append("| mode | batch | preprocess p50 | forward p50 / p90 / mean | postprocess p50 | "
                     "total p50 | images/s | build s (cold) | first run ms | peak RSS MiB |")
            L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for mode, rows in self.modes.items():
                c = self.cold.get(mode, {})
                for b, row in rows.items():
                    s = row["stages_ms"]
                    fw = s["forward"]
                    if "build_s" in c:
                        cold = f"{c['build_s']:.2f} | {c['first_forward_ms']:.0f} | {c['peak_rss_mb']:.0f}"
                    else:
                        cold = "— | — | —" if not c else f"error: {c.get('error', '')[:40]} | | "
                    if b != "1":
                        cold = "| |"
                    L.append(f"| {mode} | {b} | {s['preprocess']['p50']:.2f} | {fw['p50']:.2f} / {fw['p90']:.2f} / "
                             f"{fw['mean']:.2f} | {s['postprocess']['p50']:.3f} | {row['total_ms']['p50']:.2f} | "
                             f"{row['images_per_s']:.1f} | {cold} |")
            L.append("")
            L.append("Latency in ms per batch. Cold columns: build time, first forward (batch 1) and peak RSS "
                     "of a fresh process that imports clsviz, builds the mode and runs batch 1 and 8.")
            L.append("")
        if self.sweep:
            best_name, _ = self._best("fp32")
            L.append("| predictor configuration | p50 ms | p90 ms | mean ms | CPU ms p50 | vs default | build s "
                     "| note |")
            L.append("|---|---:|---:|---:|---:|---:|---:|---|")
            d = self.sweep[self.default_config]["ms"]["p50"] if self.default_config else None
            for name, row in sorted(self.sweep.items(), key=lambda kv: kv[1]["ms"]["p50"]):
                notes = []
                if row["default"]:
                    notes.append("**default**")
                if name == best_name:
                    notes.append("best fp32")
                if name in self.agreement:
                    a = self.agreement[name]
                    notes.append(f"vs default: top-1 {a['top1_agree']:.0%} of {a['n']}, "
                                 f"max abs diff {a['max_abs_diff']:.2g}, cos ≥ {a['min_cosine']:.5f}")
                rel = f"{row['ms']['p50'] / d:.2f}×" if d else ""
                cpu = row.get("cpu_ms", {}).get("p50", float("nan"))
                L.append(f"| {name} | {row['ms']['p50']:.2f} | {row['ms']['p90']:.2f} | {row['ms']['mean']:.2f} | "
                         f"{cpu:.1f} | {rel} | {row['build_s']:.2f} | {'; '.join(notes)} |")
            L.append("")
            L.append("CPU ms = process CPU time during the run. It counts every thread of the process, "
                     "including OpenMP workers that other predictors in the sweep started, so a 1-thread row "
                     "can show more CPU time than wall time.")
            L.append("")
        r = self.ratios
        L.append("| ratio (side by side, medians) | value | target |")
        L.append("|---|---:|---|")
        for mode, v in r["overhead_ratio"].items():
            o = self.overhead[mode]
            ci = o.get("ratio_ci95")
            L.append(f"| overhead: clsviz forward / raw Paddle loop, {mode} "
                     + (f"(95% CI {ci[0]:.3f}–{ci[1]:.3f}; {o['clsviz_ms']['n']} rounds) " if ci else "")
                     + f"| {v:.3f} | ≤ 1.05 |")
        for mode, v in r.get("overhead_bound", {}).items():
            L.append(f"| overhead from the fixed cost per call, {mode}: 1 + "
                     f"{self.overhead[mode]['fixed_cost_ms'] * 1e3:.0f} µs / raw p50 | {v:.4f} | ≤ 1.05 |")
        if "default_vs_best_fp32" in r:
            L.append(f"| default predictor p50 / best fp32 p50 ({r['best_fp32_config']}) | "
                     f"{r['default_vs_best_fp32']:.3f} | ≤ 1.10 |")
        L.append(f"| preprocess 1920×1080 JPEG / predictor forward p50 | {r['preprocess_vs_forward']:.3f} "
                 f"| ≤ 0.5 |")
        if "bf16_speedup_vs_best_fp32" in r:
            L.append(f"| bf16 speed-up (best fp32 p50 / best bf16 p50) | {r['bf16_speedup_vs_best_fp32']:.3f} | |")
            if "bf16_top1_agreement" in r:
                L.append(f"| bf16 vs fp32 top-1 agreement | {r['bf16_top1_agreement']:.0%} | |")
        g = self.gflops()
        if g:
            f = self.flops
            L.append("")
            L.append(f"Work: {f['gmacs']:.3f} GMACs = {f['gflops']:.3f} GFLOPs per image (conv + linear, counted "
                     f"by forward hooks). Peak: {m['cores']} cores × {m['mhz'] / 1e3:.3f} GHz × {m['fp32_lanes']} "
                     f"fp32 lanes × {m['fma_units']} FMA units × 2 = **{m['peak_gflops_fp32']:.0f} GFLOP/s** "
                     f"({m['peak_note']}; datapath peak {m['peak_gflops_fp32_datapath']:.0f} GFLOP/s).")
            L.append("")
            L.append("| predictor run | GFLOP/s | of peak | of datapath peak |")
            L.append("|---|---:|---:|---:|")
            for name, row in g.items():
                L.append(f"| {name} | {row['gflops']:.1f} | {row['of_peak']:.1%} | {row['of_datapath_peak']:.1%} |")
            dp_ratio = m["peak_gflops_fp32_datapath"] / m["peak_gflops_fp32"]
            fast = max((v["gflops"] for k, v in g.items() if "bf16" not in k), default=0.0)
            if fast > m["peak_gflops_fp32_datapath"]:
                per_cycle = m["cores"] * m["fp32_lanes"] * m["fma_units"] * 2 * dp_ratio
                L.append("")
                L.append(f"fp32 here beats the {'datapath ' if dp_ratio < 1 else ''}peak computed at the reported "
                         f"{m['mhz'] / 1e3:.3f} GHz, which is impossible at that clock: the cores run at ≥ "
                         f"{fast / per_cycle:.2f} GHz even at 100 % efficiency (server parts boost above their "
                         f"base clock, and a hypervisor reports the base). Read the clock as a floor and the "
                         f"percentages as upper bounds.")
            if any("bf16" in k for k in g):
                L.append("")
                L.append("The bf16 row is measured against the fp32 peak; bf16 dot products (VDPBF16PS) do two "
                         "multiply-adds per fp32 lane, so the bf16 peak is twice the fp32 one.")
        return "\n".join(L) + "\n"

    def figure(self):
        """A matplotlib ``Figure`` (Agg; no pyplot state): stages per mode, the sweep, GFLOP/s vs peak."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(13, 4.4), dpi=100, layout="constrained")
        axes = fig.subplots(1, 3, width_ratios=[1, 1.35, 1])
        ax = axes[0]
        modes = list(self.modes)
        colors = {"preprocess": "#90caf9", "forward": "#1565c0", "postprocess": "#ffb300"}
        left = np.zeros(len(modes))
        for s in STAGES:
            v = np.array([self.modes[m]["1"]["stages_ms"][s]["p50"] for m in modes])
            ax.barh(modes, v, left=left, color=colors[s], label=s)
            left += v
        ax.set_xlabel("ms per image (p50, batch 1)")
        ax.set_title("stages per mode")
        ax.legend(fontsize=8, loc="lower right")
        ax.invert_yaxis()

        ax = axes[1]
        if self.sweep:
            items = sorted(self.sweep.items(), key=lambda kv: kv[1]["ms"]["p50"])
            names = [k for k, _ in items]
            p50 = [v["ms"]["p50"] for _, v in items]
            p90 = [v["ms"]["p90"] for _, v in items]
            cols = ["#2e7d32" if v["default"] else ("#8e24aa" if v["options"]["precision"] == "bf16" else "#78909c")
                    for _, v in items]
            ax.barh(names, p50, color=cols)
            ax.errorbar(p90, names, fmt="|", color="black", ms=8, label="p90")
            ax.set_xlabel("forward ms, batch 1 (bars p50, ticks p90)")
            ax.set_title("predictor sweep (green = default, purple = bf16)")
            ax.tick_params(axis="y", labelsize=7)
            ax.invert_yaxis()
        else:
            ax.set_axis_off()

        ax = axes[2]
        g = self.gflops()
        if g:
            names = [k.split(" (")[0].replace(", batch", "\nbatch") for k in g]
            vals = [v["gflops"] for v in g.values()]
            ax.bar(range(len(vals)), vals, color="#1565c0")
            ax.set_xticks(range(len(vals)), names, fontsize=7)
            ax.axhline(self.machine["peak_gflops_fp32"], color="#c62828", ls="-",
                       label="fp32 FMA peak (formula, reported clock)")
            dp = self.machine["peak_gflops_fp32_datapath"]
            if dp != self.machine["peak_gflops_fp32"]:
                ax.axhline(dp, color="#c62828", ls="--", label="datapath peak (reported clock)")
            ax.set_ylabel("GFLOP/s")
            ax.set_title("achieved vs peak")
            ax.legend(fontsize=7)
        else:
            ax.set_axis_off()
        fig.suptitle(f"{self.model} · {self.machine['cpu']} · {self.machine['cores']} cores · {self.started}",
                     fontsize=9)
        return fig

    def save(self, out, *, dpi: int = 80) -> dict[str, Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "bench.json", "markdown": out / "bench.md", "plot": out / "bench.png"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=_jsonable), encoding="utf-8")
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        self.figure().savefig(paths["plot"], dpi=dpi)
        return paths

    def _repr_html_(self) -> str:
        r = self.ratios
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>"
                       for k, v in r.items())
        return (f"<div><b>bench {html.escape(self.model)}</b> · {html.escape(self.machine['cpu'])} · "
                f"{self.machine['cores']} cores<table>{rows}</table></div>")


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def overhead_only(model: str = "ResNet50_vd", *, repeats: int = 30, image_size: int = 224,
                  modes=("predictor", "dygraph", "executor"), seed: int = 0, workdir=None) -> dict:
    """Just the overhead check (what ``bench --overhead`` runs)."""
    from .engines import load

    tmp = tempfile.TemporaryDirectory(prefix="clsviz-bench-") if workdir is None else None
    try:
        wd = Path(workdir or tmp.name)
        bundle, arch = prepare_bundle(model, wd, image_size=image_size, seed=seed)
        clfs = {m: load(bundle, mode=m) for m in modes}
        paths, _ = bench_images(1, wd)
        x = clfs[modes[0]].preprocess(paths[:1])
        res = overhead(clfs, x, repeats=max(OVERHEAD_ROUNDS, repeats), seed=seed)
        for c in clfs.values():
            c.close()
        res = _with_bounds(res, fixed_costs(wd, modes=modes, seed=seed))
        return {"overhead_ratio": {m: v["ratio"] for m, v in res.items()},
                "overhead_bound": {m: v["bound_ratio"] for m, v in res.items()},
                "model": model, "arch": arch,
                "batch_size": 1, "repeats": max(OVERHEAD_ROUNDS, repeats), "overhead": res,
                "machine": machine_info()["cpu"],
                "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    finally:
        if tmp is not None:
            tmp.cleanup()


def bench_modes(runtimes: bool = False) -> tuple:
    """Paddle's three modes, plus the installed deployment runtimes when ``runtimes``."""
    from .engines import MODES, RUNTIMES, engine_available

    return tuple(MODES) + (tuple(m for m in RUNTIMES if engine_available(m)[0]) if runtimes else ())


def bench_cli(a) -> int:
    """``python -m clsviz bench [--model M] [--overhead] [--runtimes] [--json] [--repeats N] [--out DIR]``."""
    log = (lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    modes = bench_modes(getattr(a, "runtimes", False))
    if a.overhead:
        res = overhead_only(a.model, repeats=a.repeats, modes=modes)
        if a.json:
            print(json.dumps(res, indent=2, default=_jsonable))
        else:
            print(f"{res['model']}, batch 1, {res['repeats']} interleaved rounds (p50 ms):")
            for m, v in res["overhead"].items():
                ci = v["ratio_ci95"]
                print(f"  {m:<11} clsviz {v['clsviz_ms']['p50']:8.2f}   raw {v['raw_ms']['p50']:8.2f}   "
                      f"ratio {v['ratio']:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f})   "
                      f"fixed cost {v['fixed_cost_ms'] * 1e3:.0f} us/call -> {v['bound_ratio']:.4f}")
        return 0
    report = run_bench(a.model, repeats=a.repeats, out=a.out, log=log, modes=modes)
    if a.json:
        print(json.dumps(report.to_dict(), indent=2, default=_jsonable))
    else:
        print(report.to_markdown())
        print(f"wrote {Path(a.out) / 'bench.json'}, bench.md, bench.png", file=sys.stderr)
    return 0


if __name__ == "__main__":  # the cold-start worker: python -m clsviz.bench --cold-start BUNDLE MODE OPTIONS
    if len(sys.argv) == 5 and sys.argv[1] == "--cold-start":
        _cold_worker(*sys.argv[2:])
    else:
        sys.exit("usage: python -m clsviz.bench --cold-start BUNDLE MODE OPTIONS_JSON "
                 "(the user-facing command is `python -m clsviz bench`)")
