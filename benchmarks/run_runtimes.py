"""The "runtimes" table of docs/performance.md: Paddle, OpenVINO and ONNX Runtime side by side.

    .venv/bin/python benchmarks/run_runtimes.py [--repeats 40] [--write-doc]

For ResNet50_vd at 224 (clsviz.get_model, random weights: latency does not depend on them)
and the bundled demo model, ONE interleaved run each, in a fresh process per model
(clsviz.timing.interleaved: every round runs every contender once, in a shuffled order) of:

* clsviz's engines, forward on one preprocessed image: predictor fp32 / bf16, openvino
  fp32 / bf16, onnxruntime fp32 without and with ``spinning=True`` (the engine option for a
  process that runs only ONNX Runtime; clsviz.recommend times both too);
* the raw runtimes, each set up as its own documentation says, on the same files:
  Paddle Inference (Config + oneDNN + CPU threads), OpenVINO (``core.compile_model(path,
  "CPU")``, its defaults), ONNX Runtime (``InferenceSession(path)``, its defaults).

Every engine gets the same thread count (clsviz's default: the CPUs this process may use).
Also: the cost of the first conversion (paddle2onnx) and of finding it again, and the effect
of ONNX Runtime's spinning threads on the other engines in the same process (two interleaved
runs of predictor + openvino beside an ONNX Runtime session with spinning on, then off).
Writes out/runtimes/runtimes.json and .md; ``--write-doc`` replaces the section between
``<!-- runtimes:begin -->`` and ``<!-- runtimes:end -->`` in docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

#: clsviz's contenders: name -> clsviz.load options
ENGINES = {"predictor fp32": {"mode": "predictor", "precision": "fp32"},
           "predictor bf16": {"mode": "predictor", "precision": "bf16"},
           "openvino fp32": {"mode": "openvino", "precision": "fp32"},
           "openvino bf16": {"mode": "openvino", "precision": "bf16"},
           "onnxruntime fp32": {"mode": "onnxruntime", "precision": "fp32"},
           "onnxruntime fp32 spinning": {"mode": "onnxruntime", "precision": "fp32", "spinning": True}}


def raw_runtimes(bundle: Path, onnx: Path, threads: int) -> dict:
    """The three runtimes set up as their own docs say, each a callable(x) -> output."""
    import onnxruntime as ort
    import openvino as ov

    from clsviz._paddle import paddle

    cfg = paddle.inference.Config(str(bundle / "inference.json"), str(bundle / "inference.pdiparams"))
    cfg.disable_gpu()
    cfg.enable_onednn()
    cfg.set_cpu_math_library_num_threads(threads)
    cfg.disable_glog_info()
    pred = paddle.inference.create_predictor(cfg)
    h_in = pred.get_input_handle(pred.get_input_names()[0])
    h_out = pred.get_output_handle(pred.get_output_names()[0])

    def paddle_raw(x):
        h_in.reshape(list(x.shape))
        h_in.copy_from_cpu(x)
        pred.run()
        return h_out.copy_to_cpu()

    core = ov.Core()
    compiled = core.compile_model(str(onnx), "CPU")  # OpenVINO's defaults (bf16 on bf16 CPUs)
    req = compiled.create_infer_request()
    port = compiled.output(0)

    def openvino_raw(x):
        return req.infer({0: x})[port]

    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])  # ORT's defaults
    name = sess.get_inputs()[0].name

    def ort_raw(x):
        return sess.run(None, {name: x})[0]

    hint = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    return {"raw Paddle Inference (fp32, oneDNN)": paddle_raw,
            f"raw OpenVINO (defaults: {hint})": openvino_raw,
            "raw ONNX Runtime (defaults)": ort_raw}


def conversion_cost(bundle: Path) -> dict:
    """First conversion into a fresh copy of the bundle, then finding it again."""
    from clsviz.engines.convert import onnx_for
    from clsviz.formats import detect

    with tempfile.TemporaryDirectory() as d:
        b = Path(d) / "b"
        shutil.copytree(bundle, b, ignore=shutil.ignore_patterns("inference.onnx"))
        first = onnx_for(detect.resolve(b))
        again = onnx_for(detect.resolve(b))
        assert not first.reused and again.reused
        return {"first_s": round(first.seconds, 3), "reuse_s": round(again.seconds, 4),
                "onnx_mb": round(first.path.stat().st_size / 2**20, 2)}


def one_model(name: str, bundle: Path, *, repeats: int, warmup: int, seed: int) -> dict:
    import clsviz
    from clsviz.engines.base import default_threads
    from clsviz.timing import interleaved, timed

    threads = default_threads()
    conv = conversion_cost(bundle)
    clfs = {k: clsviz.load(bundle, cpu_threads=threads, **o) for k, o in ENGINES.items()}
    ref = clfs["predictor fp32"]
    x = np.ascontiguousarray(ref.preprocess(sorted((REPO / "sample_images").glob("*.jpg"))[:1]))
    if x.shape[1:] != tuple(ref.config.image_shape):  # pragma: no cover
        raise SystemExit("preprocess does not give the model's input shape")
    want = ref.forward(x)
    raws = raw_runtimes(bundle, clfs["openvino fp32"].onnx.path, threads)
    contenders = {k: timed(lambda c=c: c.forward(x)) for k, c in clfs.items()}
    contenders.update({k: timed(lambda f=f: f(x)) for k, f in raws.items()})
    stats = interleaved(contenders, repeats=repeats, warmup=warmup, seed=seed)
    p50 = {k: stats[k]["total"].p50 for k in contenders}
    base = p50["predictor fp32"]
    rows = {}
    for k in contenders:
        out = (clfs[k].forward(x) if k in clfs else raws[k](x))
        rows[k] = {"p50_ms": round(p50[k], 3), "p90_ms": round(stats[k]["total"].p90, 3),
                   "ratio": round(p50[k] / base, 3),
                   "rel_diff": float(np.abs(np.asarray(out, np.float64) - want).max() / np.abs(want).max())}
    best_clsviz = min(clfs, key=p50.get)
    best_raw = min(raws, key=p50.get)
    for c in clfs.values():
        c.close()
    return {"model": name, "input": list(ref.config.image_shape), "threads": threads, "repeats": repeats,
            "rows": rows, "conversion": conv,
            "fastest": {"clsviz": best_clsviz, "raw": best_raw,
                        "ratio": round(p50[best_clsviz] / p50[best_raw], 3)}}


def spinning(bundle: Path, *, repeats: int, warmup: int, seed: int) -> dict:
    """predictor + openvino, interleaved beside an ONNX Runtime session that spins, then one that does not."""
    import onnxruntime as ort

    import clsviz
    from clsviz.engines.base import default_threads
    from clsviz.engines.onnxruntime import session_options
    from clsviz.timing import interleaved, timed

    threads = default_threads()
    pred = clsviz.load(bundle, cpu_threads=threads)
    ovc = clsviz.load(bundle, mode="openvino", cpu_threads=threads)
    x = np.random.default_rng(seed).standard_normal((1, *pred.config.image_shape)).astype(np.float32)
    out = {}
    for spin in (True, False, True, False):  # twice each, alternating: slow drifts fall on both
        sess = ort.InferenceSession(str(ovc.onnx.path), session_options(threads, spinning=spin),
                                    providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        st = interleaved({"predictor": timed(lambda: pred.forward(x)), "openvino": timed(lambda: ovc.forward(x)),
                          "onnxruntime": timed(lambda s=sess: s.run(None, {name: x}))},
                         repeats=repeats, warmup=warmup, seed=seed)
        for k in st:
            out.setdefault(k, {}).setdefault("on" if spin else "off", []).append(st[k]["total"].p50)
        del sess
    return {k: {"spin_on_ms": round(float(np.mean(v["on"])), 3), "spin_off_ms": round(float(np.mean(v["off"])), 3),
                "on_over_off": round(float(np.mean(v["on"]) / np.mean(v["off"])), 3)} for k, v in out.items()}


def markdown(res: dict) -> str:
    m = res["machine"]
    L = [f"Measured {res['date']} on {m} (`benchmarks/run_runtimes.py`, {res['models'][0]['repeats']} "
         "interleaved rounds per model, each model in a fresh process, batch 1, forward only, every engine on "
         f"{res['models'][0]['threads']} threads). p50 relative to clsviz's predictor fp32 in the same run "
         "(lower is faster); rel. max|Δ| is against the predictor fp32."
         + (f" Load average {res['loadavg_before'][0]:.1f} before and {res['loadavg_after'][0]:.1f} after the "
            "run (other jobs shared the machine; interleaving spreads their noise over every engine alike)."
            if "loadavg_after" in res else ""), ""]
    names = list(res["models"][0]["rows"])
    L.append("| engine | " + " | ".join(f"{r['model']} ({r['input'][1]}×{r['input'][2]}) ratio · p50 ms · rel. max|Δ|"
                                          for r in res["models"]) + " |")
    L.append("|---|" + "---|" * len(res["models"]))
    for n in names:
        cells = []
        for r in res["models"]:
            row = r["rows"][n]
            cells.append(f"{row['ratio']:.2f} · {row['p50_ms']:.2f} · {row['rel_diff']:.1e}")
        L.append(f"| {n} | " + " | ".join(cells) + " |")
    L.append("")
    for r in res["models"]:
        f, c = r["fastest"], r["conversion"]
        L.append(f"- **{r['model']}**: clsviz's fastest engine ({f['clsviz']}) / the fastest raw runtime "
                 f"({f['raw']}) = **{f['ratio']:.3f}** in the same run (goal ≤ 1.05). First conversion "
                 f"(paddle2onnx → inference.onnx, {c['onnx_mb']} MB) {c['first_s']:.2f} s; finding it again "
                 f"(sha256 of the program and weights; the ONNX by size and mtime) {c['reuse_s']:.3f} s.")
    s = res["spinning"]
    L.append("- ONNX Runtime's spinning threads, measured on ResNet50_vd (predictor + openvino interleaved "
             "beside an ONNX Runtime session, spinning on vs off, two runs each): predictor "
             f"{s['predictor']['on_over_off']:.2f}×, openvino {s['openvino']['on_over_off']:.2f}× slower with "
             f"spinning on; ONNX Runtime itself {s['onnxruntime']['on_over_off']:.2f}×. So clsviz's onnxruntime "
             "engine spins only when asked (`spinning=True`, `session.intra_op.allow_spinning`): on is what a "
             "process running only ONNX Runtime should use, off keeps it from slowing the other engines beside it. "
             "In the table above the spinning contenders (raw ONNX Runtime, onnxruntime fp32 spinning) also "
             "take CPU from whichever contender runs right after them.")
    return "\n".join(L) + "\n"


def in_fresh_process(what: str, model: str, bundle: Path, a) -> dict:
    """Run one measurement in a new Python process and return its JSON.

    Each model gets a process of its own: engines left from the previous model (threads pinned
    to cores, OpenVINO's executors, ~100 MB compiled networks) made the demo's ONNX Runtime
    contenders 5-10 % slower in a shared process, more for some contenders than others.
    """
    cmd = [sys.executable, __file__, "--child", what, "--child-model", model, "--child-bundle", str(bundle),
           "--repeats", str(a.repeats), "--warmup", str(a.warmup), "--seed", str(a.seed)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, env=os.environ.copy())
    if r.returncode:
        raise SystemExit(f"[runtimes] {what} on {model} failed (exit {r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def child(a) -> int:
    bundle = Path(a.child_bundle)
    if a.child == "model":
        res = one_model(a.child_model, bundle, repeats=a.repeats, warmup=a.warmup, seed=a.seed)
    else:
        res = spinning(bundle, repeats=max(10, a.repeats // 2), warmup=a.warmup, seed=a.seed)
    print(json.dumps(res), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "out" / "runtimes"))
    ap.add_argument("--write-doc", action="store_true")
    ap.add_argument("--from-json", default=None, help="render a saved runtimes.json instead of measuring")
    ap.add_argument("--child", choices=("model", "spinning"), help=argparse.SUPPRESS)
    ap.add_argument("--child-model", help=argparse.SUPPRESS)
    ap.add_argument("--child-bundle", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    if a.from_json:
        md = markdown(json.loads(Path(a.from_json).read_text()))
        print(md)
        if a.write_doc:
            from docsection import write_section

            write_section(REPO / "docs" / "performance.md", "<!-- runtimes:begin -->", "<!-- runtimes:end -->", md)
        return 0

    from clsviz.bench import prepare_bundle
    from clsviz.recommend import machine_line

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CLSVIZ_CACHE_DIR", str(out / "cache"))
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_line(), "models": [],
           "loadavg_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="clsviz-runtimes-") as d:
        for model in ("ResNet50_vd", "demo"):
            # logits: random weights would saturate a softmax and leave the rel. max|Δ| column empty
            bundle, _ = prepare_bundle(model, Path(d) / model, image_size=224, seed=a.seed, softmax=False)
            print(f"[runtimes] {model} ...", file=sys.stderr, flush=True)
            res["models"].append(in_fresh_process("model", model, bundle, a))
            if model == "ResNet50_vd":
                print("[runtimes] spinning ...", file=sys.stderr, flush=True)
                res["spinning"] = in_fresh_process("spinning", model, bundle, a)
    res["loadavg_after"] = list(os.getloadavg())
    (out / "runtimes.json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    (out / "runtimes.md").write_text(md)
    print(md)
    if a.write_doc:
        from docsection import write_section

        write_section(REPO / "docs" / "performance.md", "<!-- runtimes:begin -->", "<!-- runtimes:end -->", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
