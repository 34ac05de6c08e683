"""GPU latency table for the predictor: ResNet50_vd at batch 1 and 8, GPU and TensorRT.

Run by ``benchmarks/gpu_check.sh`` inside a venv with ``paddlepaddle-gpu``; it can also be
run by hand there: ``python benchmarks/gpu_bench.py [--repeats 50] [--out out/gpu]``.
Every cell is measured the lab's way (``clsviz.bench``): warm-up excluded, the
configurations interleaved round by round, p50 / p90 over the timed runs.  A
configuration that cannot be built is reported with its error, not skipped silently.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _raw_trt_predictor(bundle: Path, precision: str, max_batch: int, shape):
    """TensorRT through plain ``paddle.inference`` with explicit dynamic-shape ranges.

    A control for clsviz's own TensorRT path: if that fails and this works, the
    difference is the dynamic-shape information.
    """
    from clsviz._paddle import paddle

    inf = paddle.inference
    cfg = inf.Config(str(bundle / "inference.json"), str(bundle / "inference.pdiparams"))
    cfg.enable_use_gpu(1000, 0)
    prec = inf.PrecisionType.Half if precision == "fp16" else inf.PrecisionType.Float32
    cfg.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=max_batch, min_subgraph_size=3,
                               precision_mode=prec, use_static=False, use_calib_mode=False)
    name = "x"
    c, h, w = shape
    cfg.set_trt_dynamic_shape_info({name: [1, c, h, w]}, {name: [max_batch, c, h, w]}, {name: [1, c, h, w]})
    cfg.disable_glog_info()
    pred = inf.create_predictor(cfg)
    inp = pred.get_input_handle(pred.get_input_names()[0])
    out = pred.get_output_handle(pred.get_output_names()[0])

    def forward(x):
        inp.reshape(list(x.shape))
        inp.copy_from_cpu(np.ascontiguousarray(x, np.float32))
        pred.run()
        return out.copy_to_cpu()
    return forward


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ResNet50_vd")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", default="out/gpu")
    a = ap.parse_args(argv)

    import clsviz
    from clsviz._paddle import paddle
    from clsviz.bundle import BundleConfig
    from clsviz.bench import prepare_bundle
    from clsviz.timing import interleaved, timed
    from clsviz._paddle import gpu_available, tensorrt_available
    from clsviz._translate import first_line as _first_line

    ok, why = gpu_available()
    if not ok:
        print(f"gpu_bench: no usable GPU: {why}", file=sys.stderr)
        return 2
    gpu_name = paddle.device.cuda.get_device_name(0)
    trt_ok, trt_why = tensorrt_available()
    trt_ver = ".".join(map(str, paddle.inference.get_trt_compile_version())) if trt_ok else None

    work = Path(tempfile.mkdtemp(prefix="clsviz-gpu-"))
    bundle, arch = prepare_bundle(a.model, work)
    shape = tuple(BundleConfig.read(Path(bundle) / "inference.yml").image_shape)

    configs = {
        "CPU default (reference)": dict(),
        "GPU fp32": dict(use_gpu=True),
        "GPU fp16": dict(use_gpu=True, precision="fp16"),
    }
    if trt_ok:
        configs["GPU + TensorRT fp32 (clsviz)"] = dict(use_gpu=True, use_tensorrt=True, batch_size=8)
        configs["GPU + TensorRT fp16 (clsviz)"] = dict(use_gpu=True, use_tensorrt=True, precision="fp16",
                                                        batch_size=8)
    forwards, builds, errors = {}, {}, {}
    for name, kw in configs.items():
        t0 = time.perf_counter()
        try:
            clf = clsviz.load(bundle, mode="predictor", **kw)
            x = np.zeros((8, *shape), np.float32)
            clf.forward(x[:1]), clf.forward(x)  # both shapes must work
            forwards[name] = clf.forward
        except Exception as e:  # report, do not hide
            errors[name] = _first_line(e)
        builds[name] = time.perf_counter() - t0
    if trt_ok:
        for prec in ("fp32", "fp16"):
            name = f"GPU + TensorRT {prec} (raw, dynamic shape)"
            t0 = time.perf_counter()
            try:
                fwd = _raw_trt_predictor(Path(bundle), prec, 8, shape)
                x = np.zeros((8, *shape), np.float32)
                fwd(x[:1]), fwd(x)
                forwards[name] = fwd
            except Exception as e:
                errors[name] = _first_line(e)
            builds[name] = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    rows = {}
    for b in (1, 8):
        x = rng.standard_normal((b, *shape)).astype(np.float32)
        ref = forwards["GPU fp32"](x) if "GPU fp32" in forwards else None
        st = interleaved({n: timed(lambda f=f: f(x)) for n, f in forwards.items()},
                         repeats=a.repeats, warmup=a.warmup)
        for n, f in forwards.items():
            s = st[n]["total"]
            out = f(x)
            rows.setdefault(n, {})[b] = {
                "p50_ms": s.p50, "p90_ms": s.p90, "images_per_s": b / (s.p50 / 1e3),
                "max_abs_diff_vs_gpu_fp32": None if ref is None else float(np.abs(out - ref).max()),
                "top1_agree_vs_gpu_fp32": None if ref is None else float(np.mean(out.argmax(1) == ref.argmax(1))),
            }

    print(f"\n### {a.model} on {gpu_name} — Paddle {paddle.__version__}, "
          f"TensorRT {'compiled in: ' + trt_ver if trt_ok else 'not available: ' + trt_why}; "
          f"{a.repeats} interleaved rounds after {a.warmup} warm-up\n")
    print("| configuration | build s | b1 p50 ms | b1 p90 ms | b8 p50 ms | b8 p90 ms | b8 images/s | "
          "max abs diff vs GPU fp32 (b8) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in list(configs) + [k for k in list(forwards) + list(errors) if k not in configs]:
        if n in errors:
            print(f"| {n} | {builds[n]:.1f} | failed: {errors[n][:90]} | | | | | |")
        elif n in rows:
            r1, r8 = rows[n][1], rows[n][8]
            d = r8["max_abs_diff_vs_gpu_fp32"]
            print(f"| {n} | {builds[n]:.1f} | {r1['p50_ms']:.2f} | {r1['p90_ms']:.2f} | {r8['p50_ms']:.2f} | "
                  f"{r8['p90_ms']:.2f} | {r8['images_per_s']:.0f} | {'' if d is None else f'{d:.2g}'} |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(
        {"model": a.model, "gpu": gpu_name, "paddle": paddle.__version__, "tensorrt": trt_ver,
         "repeats": a.repeats, "warmup": a.warmup, "builds_s": builds, "errors": errors, "rows": rows},
        indent=2, default=str))
    print(f"\nwrote {out / 'gpu_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
