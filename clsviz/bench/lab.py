"""The latency lab's experiments: per-stage latency per mode and batch, predictor sweeps,
bf16 agreement, the preprocessing check; :func:`run_bench` runs them all."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import psutil
from PIL import Image

from .._paddle import paddle
from ..archs.flops import count_flops
from ..engines import load
from ..engines.base import default_threads
from ..engines.predictor import bf16_available
from ..timing import interleaved, staged, timed, timed_cpu
from ..transforms import _to_mode, image_name, load_image
from .cold import cold_start
from .fixtures import bench_images, prepare_bundle, synthetic_jpeg
from .machine import machine_info
from .overhead import FIXED_COST_ROUNDS, OVERHEAD_ROUNDS, _with_bounds, fixed_costs, overhead
from .report import BenchReport
from .rows import AgreementRow, LatencyRow, Machine, Method, PreprocessingCheck, SweepRow

STAGES = ("preprocess", "forward", "postprocess")


def sweep_configs(*, threads=None, bf16: bool | None = None) -> list[tuple[str, dict]]:
    """Predictor configurations to sweep: threads × oneDNN × IR optim × precision."""
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
                    out.append((name, {"cpu_threads": t, "enable_mkldnn": dnn, "ir_optim": ir, "precision": prec}))
    return out


def _same_config(opts, kw) -> bool:
    return (
        opts.threads == kw["cpu_threads"]
        and opts.mkldnn == kw["enable_mkldnn"]
        and opts.ir_optim == kw["ir_optim"]
        and opts.precision == kw["precision"]
    )


def _draft_preprocess(pre, path):
    """What-if: let the JPEG decoder downscale in the DCT domain (``Image.draft``) first."""

    with Image.open(path) as im:
        if pre.resize_short and im.format == "JPEG":
            iw, ih = im.size
            s = pre.resize_short / min(iw, ih)
            # decodes at 1/2, 1/4 or 1/8 scale: the smallest that is still ≥ the resize target
            im.draft("RGB", (max(1, round(iw * s)), max(1, round(ih * s))))
        im.load()
        img = _to_mode(im, str(path))
        return pre.normalize(np.asarray(pre.resize_crop(img)))


def preprocessing_check(default_clf, *, workdir, repeats: int, warmup: int = 3, seed: int = 0) -> PreprocessingCheck:
    """Decode + resize + crop + normalise of a 1920×1080 JPEG vs the predictor's forward (batch 1)."""
    pre = default_clf.config.preprocess
    jpg = synthetic_jpeg(Path(workdir) / "photo_1920x1080.jpg", (1920, 1080), seed=seed)
    x = pre(jpg)[None]
    decoded = load_image(jpg)
    cropped = np.asarray(pre.resize_crop(decoded))
    contenders = {
        "preprocess": timed(lambda: pre(jpg)),
        "forward": timed(lambda: default_clf.forward(x)),
        "decode": timed(lambda: load_image(jpg)),
        "resize_crop": timed(lambda: pre.resize_crop(decoded)),
        "normalize": timed(lambda: pre.normalize(cropped)),
        "preprocess_draft": timed(lambda: _draft_preprocess(pre, jpg)),
    }
    st = {k: v["total"] for k, v in interleaved(contenders, repeats=repeats, warmup=warmup, seed=seed).items()}
    exact, draft = pre(jpg), _draft_preprocess(pre, jpg)
    levels = np.abs(exact - draft) * (np.asarray(pre.std, np.float32)[:, None, None] / np.float32(pre.scale))
    return PreprocessingCheck.from_dict(
        {  # from the rounded JSON form, as bench.json reads back
            "image": "1920×1080 JPEG (synthetic, quality 90)",
            "ms": {k: v.to_dict() for k, v in st.items()},
            "ratio": round(st["preprocess"].p50 / st["forward"].p50, 4),
            "draft": {
                "ratio_vs_exact": round(st["preprocess_draft"].p50 / st["preprocess"].p50, 4),
                "max_abs_diff_levels": round(float(levels.max()), 2),
                "mean_abs_diff_levels": round(float(levels.mean()), 3),
            },
        }
    )


def run_bench(
    model: str = "ResNet50_vd",
    *,
    repeats: int = 30,
    warmup: int = 3,
    out=None,
    image_size: int = 224,
    batch_sizes=(1, 8),
    modes=("predictor", "dygraph", "executor"),
    repeats_batch: int | None = None,
    sweep=True,
    threads=None,
    cold=True,
    images=None,
    fixed_cost: bool = True,
    workdir=None,
    seed: int = 0,
    log=None,
) -> BenchReport:
    """The whole lab on one model; writes ``bench.json``, ``bench.md``, ``bench.png`` into ``out``.

    ``model``: an architecture name (random weights), ``"demo"`` or a bundle path.
    ``repeats_batch``: rounds for batches > 1 (default ``max(5, repeats // 3)``; they are
    8× longer).  ``sweep``: ``True`` for :func:`sweep_configs`, ``False`` for none, or a
    list of ``(name, options)``.  ``log`` is an optional callable(str) for progress lines.
    """
    say = log or (lambda s: None)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    background = _BackgroundLoad()
    tmp = tempfile.TemporaryDirectory(prefix="clsviz-bench-") if workdir is None else None
    workdir = Path(tmp.name if tmp is not None else workdir)
    try:
        say(f"preparing {model} ...")
        bundle, arch = prepare_bundle(model, workdir, image_size=image_size, seed=seed)
        paths, image_source = (list(images), "given") if images is not None else bench_images(max(batch_sizes), workdir)

        cold_rows = {}
        if cold:
            # the first process to import Paddle reads ~1 GB of libraries from disk; do that
            # once untimed so every mode's "cold start" means a fresh process, not a cold disk
            subprocess.run([sys.executable, "-c", "import clsviz"], capture_output=True, timeout=600)
            for m in modes:
                say(f"cold start {m} (fresh process) ...")
                cold_rows[m] = cold_start(bundle, m)

        say("building engines ...")
        clfs: dict[str, Any] = {m: load(bundle, mode=m) for m in modes}
        default = clfs.get("predictor") or load(bundle, mode="predictor")
        shape = default.config.image_shape

        flops = None
        if "dygraph" in clfs:
            net = clfs["dygraph"].net
            flops = count_flops(getattr(net, "net", net), (1, *shape))

        mode_rows: dict[str, dict] = {}
        st: dict = {}
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
                mode_rows.setdefault(m, {})[str(b)] = LatencyRow.measured(m, b, st[f"{m}|{b}"], STAGES)

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
            sw = interleaved(
                {n: timed_cpu(functools.partial(c.forward, x1)) for n, c in built.items()},
                repeats=repeats,
                warmup=warmup,
                seed=seed,
            )
            for name, kw in configs:
                s = sw[name]["total"]
                sweep_rows[name] = SweepRow.from_dict(
                    name,
                    {
                        "options": kw,
                        "build_s": round(built[name].build_seconds, 3),
                        "ms": s.to_dict(),
                        "cpu_ms": sw[name]["cpu"].to_dict(),
                        "default": name == default_name,
                    },
                )
            # reduced precision vs the fp32 default, on every bench image
            lowp = [name for name, kw in configs if kw["precision"] != "fp32"]
            if lowp:
                xb = default.preprocess(paths)
                ref = default.forward(xb)
                for name in lowp:
                    agreements[name] = AgreementRow.measured(name, built[name].forward(xb), ref)
            for c in built.values():
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
            model=model,
            arch=arch,
            image_shape=tuple(shape),
            started=started,
            finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            method=Method.from_dict(
                {
                    "warmup": warmup,
                    "repeats": repeats,
                    "repeats_batch": repeats_batch or max(5, repeats // 3),
                    "interleaved": True,
                    "order": "shuffled per round",
                    "percentiles": "p50/p90 (numpy linear), mean",
                    "ratios": "ratios of p50s",
                    "cold_start": "fresh subprocess per mode",
                    "images": image_source,
                    "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg() if load_before else None,
                    **background.result(),
                }
            ),
            machine=Machine.from_dict(mach),
            versions=_versions(),
            cold=cold_rows,
            modes=mode_rows,
            sweep=sweep_rows,
            default_config=default_name,
            agreement=agreements,
            overhead=ovh,
            preprocessing=prep,
            flops=flops.to_dict() if flops else None,
            bf16_supported=bf16_available()[0],
        )
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
        return {
            "wall_s": round(wall, 1),
            "other_processes_cores_busy": round(others / max(total, 1e-9) * ncpu, 2),
            "steal_fraction": round(steal / max(total, 1e-9), 3),
        }


def _versions() -> dict:

    return {"paddle": paddle.__version__, "numpy": np.__version__, "pillow": PIL.__version__}
