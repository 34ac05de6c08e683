"""Does clsviz.explain point at the object, pass the sanity checks, agree across modes, and
what does it cost?  Measured on the bundled demo model; writes the tables of docs/explain.md.

    .venv/bin/python benchmarks/explain_bench.py            # ~3 min on 2 vCPUs; prints + updates the doc
    .venv/bin/python benchmarks/explain_bench.py --check    # exit 1 if the doc's tables are stale

* Pointing game (Zhang et al. 2016): shapes drawn with known masks
  (``clsviz.demo.dataset.draw_with_mask``, seeds the model never trained on); a hit when the
  map's peak lies on the object's visible pixels, strictly or within 15/224 of the short side
  (Zhang's 15 pixels at 224).  Target: the true class.  Baseline: the image centre.
* Sanity (Adebayo et al. 2018): Spearman rank correlation of each map with the map of a model
  whose conv/fc weights are randomised, and with the map of another class (true + 4 mod 8).
* Modes: Pearson correlation of occlusion maps predictor vs dygraph; Grad-CAM maps from the
  checkpoint vs from its exported program rebuilt as a Layer.
* Cost: seconds per image, as a ratio to one forward pass of one image in the same engine
  (preprocess + forward), timed interleaved, median of rounds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from docsection import read_section, write_section  # noqa: E402

DOC = REPO / "docs" / "explain.md"
START, END = "<!-- explain-bench:start -->", "<!-- explain-bench:end -->"
SEED = 2026  # the demo model trained on seeds 0.. with make_split; these images are new
METHODS = [("gradcam", {}), ("gradcam", {"layer": "blocks.5"}), ("gradcam++", {}), ("occlusion", {})]


def _name(method, kw):
    return method + (f" (layer {kw['layer']})" if "layer" in kw else "")


def _machine() -> str:
    import paddle

    try:
        from clsviz.bench import machine_info

        m = machine_info()
        cpu, cores = m["cpu"], m["cores"]
    except Exception:  # noqa: BLE001 - the machine line is a courtesy
        import platform
        import os

        cpu, cores = platform.processor() or "?", os.cpu_count()
    return f"{cpu}, {cores} vCPUs, Paddle {paddle.__version__} CPU"


def run(n: int, rounds: int, *, parts: str = "all", previous: dict | None = None) -> dict:
    import clsviz
    from clsviz._paddle import paddle
    from clsviz.demo import DEMO_ARCH, DEMO_CHECKPOINT
    from clsviz.demo.dataset import CLASSES, draw_with_mask
    from clsviz.demo.run import demo_preprocess, export_demo
    from clsviz.explain import rank_correlation

    tmp = Path(tempfile.mkdtemp(prefix="clsviz-explain-bench-"))
    try:
        export_demo(tmp / "bundle")
        (tmp / "program").mkdir()
        for f in ("inference.json", "inference.pdiparams", "inference.yml"):
            shutil.copy(tmp / "bundle" / f, tmp / "program" / f)
        pre = demo_preprocess()
        ckpt = clsviz.load(DEMO_CHECKPOINT, mode="dygraph", arch=DEMO_ARCH, preprocess=pre, cpu_threads=2)
        prog = clsviz.load(tmp / "program", mode="dygraph", cpu_threads=2)
        pred = clsviz.load(tmp / "bundle", mode="predictor", cpu_threads=2)
        rand = clsviz.load(DEMO_CHECKPOINT, mode="dygraph", arch=DEMO_ARCH, preprocess=pre, cpu_threads=2)
        paddle.seed(SEED)
        for p in rand.net.parameters():
            if len(p.shape) > 1:
                p.set_value(paddle.randn(p.shape, dtype=p.dtype) * 0.1)

        if parts == "cost" and previous:
            img = draw_with_mask(CLASSES[0], np.random.default_rng([SEED, 0]), 96)[0]
            r = dict(previous)
            r.update(_cost(clsviz, ckpt, prog, pred, img, rounds), machine=_machine(),
                     date=datetime.date.today().isoformat())
            for c in (ckpt, prog, pred, rand):
                c.close()
            return r
        data = [draw_with_mask(CLASSES[i % 8], np.random.default_rng([SEED, i]), 96) for i in range(n)]
        images = [d[0] for d in data]
        masks = [d[1] for d in data]
        truth = [i % 8 for i in range(n)]
        predicted = [p.topk[0].class_id for p in ckpt.predict(images, top_k=1)]
        tol = 15 / 224 * 96

        def hit(mask, x, y, r=0.0):
            if r == 0:
                return bool(mask[y, x])
            yy, xx = np.nonzero(mask)
            return bool(len(yy)) and float(np.min((yy - y) ** 2 + (xx - x) ** 2)) <= r * r

        rows = []
        for method, kw in METHODS:
            exs = clsviz.explain(ckpt, images, method=method, target=truth, **kw)
            rnd = clsviz.explain(rand, images, method=method, target=truth, **kw)
            oth = clsviz.explain(ckpt, images, method=method, target=[(t + 4) % 8 for t in truth], **kw)
            rho_r = [rank_correlation(a.heatmap, b.heatmap) for a, b in zip(exs, rnd)]
            rho_t = [rank_correlation(a.heatmap, b.heatmap) for a, b in zip(exs, oth)]
            rows.append({"method": _name(method, kw),
                         "hit": float(np.mean([hit(m, *e.peak) for e, m in zip(exs, masks)])),
                         "hit_tol": float(np.mean([hit(m, *e.peak, tol) for e, m in zip(exs, masks)])),
                         "hit_tol_rnd": float(np.mean([hit(m, *e.peak, tol) for e, m in zip(rnd, masks)])),
                         "rho_random_median": float(np.median(rho_r)), "rho_random_p90": float(np.quantile(rho_r, 0.9)),
                         "rho_target_median": float(np.median(rho_t)), "rho_target_p90": float(np.quantile(rho_t, 0.9)),
                         "feature_map": dict(exs[0].params).get("feature_map", ""),
                         "params": {k: v for k, v in exs[0].params}})
        centre = {"hit": float(np.mean([hit(m, 48, 48) for m in masks])),
                  "hit_tol": float(np.mean([hit(m, 48, 48, tol) for m in masks]))}

        # agreement across modes (first 24 images)
        k = min(n, 24)
        a = clsviz.explain(pred, images[:k], method="occlusion")
        b = clsviz.explain(ckpt, images[:k], method="occlusion")
        occ_r = [float(np.corrcoef(x.heatmap.ravel(), y.heatmap.ravel())[0, 1]) for x, y in zip(a, b)]
        agree = {"occlusion predictor vs dygraph": occ_r}
        for method in ("gradcam", "gradcam++"):
            a = clsviz.explain(ckpt, images[:k], method=method)
            b = clsviz.explain(prog, images[:k], method=method)
            agree[f"{method} checkpoint vs program"] = [
                float(np.corrcoef(x.heatmap.ravel(), y.heatmap.ravel())[0, 1]) for x, y in zip(a, b)]

        cost = _cost(clsviz, ckpt, prog, pred, images[0], rounds)
        for c in (ckpt, prog, pred, rand):
            c.close()
        return {"n": n, "accuracy": float(np.mean(np.array(predicted) == np.array(truth))),
                "methods": rows, "centre": centre, "tolerance_px": tol, "agree": agree,
                **cost, "machine": _machine(), "date": datetime.date.today().isoformat()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cost(clsviz, ckpt, prog, pred, img, rounds: int) -> dict:
    """Seconds per image, every case once per round in turn (interleaved), so a busy spell of a
    shared machine hits all of them; the best round is the least disturbed one."""
    def fwd(clf):
        return lambda: clf.forward(clf.preprocess(img))

    def exp(clf, method):
        return lambda: clsviz.explain(clf, img, method=method)

    cases = {"forward (dygraph)": fwd(ckpt), "forward (predictor)": fwd(pred),
             "gradcam (dygraph)": exp(ckpt, "gradcam"), "gradcam++ (dygraph)": exp(ckpt, "gradcam++"),
             "forward (program as Layer)": fwd(prog), "gradcam (program as Layer)": exp(prog, "gradcam"),
             "occlusion (dygraph)": exp(ckpt, "occlusion"), "occlusion (predictor)": exp(pred, "occlusion")}
    for f in cases.values():
        f()  # warm-up
    times: dict[str, list] = {c: [] for c in cases}
    for _ in range(rounds):
        for c, f in cases.items():
            t = time.perf_counter()
            f()
            times[c].append(time.perf_counter() - t)
    return {"seconds": {c: float(np.median(v)) for c, v in times.items()},
            "seconds_best": {c: float(np.min(v)) for c, v in times.items()},
            "occlusion_forward_passes": clsviz.explain(ckpt, img, method="occlusion")[0].forward_passes,
            "rounds": rounds}


def render(r: dict) -> str:
    L = [f"Measured {r['date']} on {r['machine']}; {r['n']} demo shapes (96×96, seed {SEED}, the model's "
         f"top-1 accuracy on them {r['accuracy']:.1%}), targets = the true class.", "",
         "### Pointing game and sanity checks", "",
         f"| method | map | hit | hit ±{r['tolerance_px']:.1f} px | same, random weights | "
         "ρ vs random weights (median / p90) | ρ vs other class (median / p90) |",
         "|---|---|---:|---:|---:|---:|---:|"]
    for m in r["methods"]:
        fm = m["feature_map"] or f"patch {m['params']['patch']}, stride {m['params']['stride']}"
        L.append(f"| {m['method']} | {fm} | {m['hit']:.1%} | {m['hit_tol']:.1%} | {m['hit_tol_rnd']:.1%} | "
                 f"{m['rho_random_median']:.2f} / {m['rho_random_p90']:.2f} | "
                 f"{m['rho_target_median']:.2f} / {m['rho_target_p90']:.2f} |")
    c = r["centre"]
    L.append(f"| centre-only baseline | — | {c['hit']:.1%} | {c['hit_tol']:.1%} | — | — | — |")
    L += ["", "### Across modes (Pearson correlation of the maps, first 24 images)", "",
          "| pair | min | median |", "|---|---:|---:|"]
    for k, v in r["agree"].items():
        L.append(f"| {k} | {min(v):.4f} | {float(np.median(v)):.4f} |")
    s, b = r["seconds"], r["seconds_best"]

    def base(k, d):
        return d["forward (" + k.split("(", 1)[1]]

    L += ["", f"### Cost (one 96×96 image, {r['rounds']} interleaved rounds)", "",
          "| what | best ms | median ms | × one forward pass (best rounds, same engine) |",
          "|---|---:|---:|---:|"]
    for k in s:
        L.append(f"| {k} | {b[k] * 1e3:.2f} | {s[k] * 1e3:.2f} | {b[k] / base(k, b):.1f} |")
    L += ["", f"Occlusion with the default patch runs {r['occlusion_forward_passes']} forward passes per "
          "image (225 positions + the unaltered image), 32 occluded copies per engine call."]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96, help="images (a multiple of 8 keeps classes balanced)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--check", action="store_true", help="only check the doc has the tables")
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    ap.add_argument("--only-cost", action="store_true",
                    help="re-time the cost table only; the rest comes from --json's previous numbers")
    a = ap.parse_args(argv)
    if a.check:
        return 0 if read_section(DOC, START, END).strip() else 1
    previous = json.loads(Path(a.json).read_text()) if a.only_cost and a.json and Path(a.json).is_file() else None
    if a.only_cost and previous is None:
        raise SystemExit("--only-cost needs --json FILE from an earlier full run")
    r = run(a.n, a.rounds, parts="cost" if a.only_cost else "all", previous=previous)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    md = render(r)
    print(md)
    write_section(DOC, START, END, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
