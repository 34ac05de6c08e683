"""``python -m clsviz`` — one subcommand per user task.

Flags accept the spellings of PaddleClas's classic tools (``tools/export_model.py``,
``tools/infer/predict.py``, ``infer.py``, ``py_infer.py``): ``-i=./a.jpg``,
``--m=ResNet50_vd``, ``--use_gpu=1``, ``--use_tensorrt=True``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from pathlib import Path

from PIL import Image

from .compare import compare
from .demo.run import run_demo
from .demo.train import train_demo
from .engines import check_modes, load
from .errors import ClsvizError, OptionError, UntrustedCode
from .evaluate import evaluate_cli
from .explain import GRADIENT_METHODS, explain
from .export import export
from .formats import resolve
from .inspect import InspectComparison, InspectReport
from .inspect import compare as inspect_compare
from .inspect import inspect as inspect_path
from .migrate import migrate
from .recommend import recommend
from .safe_io import check_output_dir
from .schema import check_image_shape
from .transforms import Preprocess, expand_images, image_name

_SHORT_EQ = re.compile(r"^(-[A-Za-z])=(.*)$")


def str2bool(v) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "t", "yes", "y", "on"):
        return True
    if s in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False/1/0), got {v!r}")


def _flag(p, *names, default=False, help=None):
    p.add_argument(*names, type=str2bool, nargs="?", const=True, default=default, help=help)


def normalize_argv(argv):
    """``-i=x`` → ``-i x`` (argparse would keep the '=' in the value)."""
    out = []
    for a in argv:
        m = _SHORT_EQ.match(a)
        out.extend([m.group(1), m.group(2)] if m else [a])
    return out


def _engine_flags(p, *, predictor=True):
    _flag(p, "--use_gpu", help="run on GPU (needs paddlepaddle-gpu)")
    p.add_argument("--gpu_mem", type=int, default=8000, help="initial GPU memory pool, MB")
    p.add_argument("--gpu_id", type=int, default=0)
    p.add_argument("-b", "--batch_size", "--b", type=int, default=1)
    p.add_argument(
        "--cpu_num_threads",
        "--cpu_threads",
        dest="cpu_threads",
        type=int,
        default=None,
        help="CPU threads (default: all cores; at most 4 per CPU)",
    )
    if predictor:
        _flag(p, "--use_tensorrt", help="TensorRT subgraphs (GPU builds with TensorRT)")
        _flag(p, "--ir_optim", default=True, help="IR graph optimisation passes")
        _flag(p, "--enable_mkldnn", "--enable_onednn", default=None, help="oneDNN CPU kernels (default on)")
        _flag(p, "--use_fp16", help="same as --precision fp16")
        p.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8"], default="fp32")


def _pixels(v) -> int:
    try:
        n = int(str(v).replace(",", "").replace("_", ""))
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of pixels (0 for no limit), got {v!r}")
    return n


def _image_flags(p):
    p.add_argument(
        "--max_pixels",
        type=_pixels,
        default=None,
        metavar="N",
        help="refuse images of more than N pixels before decoding them (Pillow's "
        "decompression-bomb guard; default 89,478,485; 0 = no limit, only for "
        "images you trust)",
    )


def _common_out(p):
    p.add_argument("--top_k", "--topk", "-k", type=int, default=5)
    p.add_argument("--labels", "--class_id_map_file", default=None, help="class_id_map file ('0 tench' per line)")
    _flag(p, "--json", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="clsviz", description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    p = sub.add_parser("export", help="checkpoint → inference bundle (mode 0)")
    p.add_argument("-m", "--m", "--model", "--arch", dest="arch", required=True, help="architecture name")
    p.add_argument("-p", "--p", "--pretrained_model", "--checkpoint", dest="checkpoint", required=True)
    p.add_argument("-o", "--o", "--output_path", "--out", dest="out", required=True)
    p.add_argument("--class_num", "--class_dim", type=int, default=None)
    p.add_argument("--img_size", "--image_size", type=int, default=None, help="square input size (1 to 4096)")
    p.add_argument(
        "--image_shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("C", "H", "W"),
        help="input shape (C 1-64; H, W 1-4096; C must match the network)",
    )
    p.add_argument(
        "--resize_short", type=int, default=None, help="short side before the centre crop (default: crop x 256/224)"
    )
    p.add_argument("--labels", "--class_id_map_file", default=None)
    _flag(
        p,
        "--softmax",
        "--save_softmax",
        default=True,
        help="append a softmax head (default, as PaddleClas's export does; --no-softmax keeps logits)",
    )
    p.add_argument(
        "--no-softmax", "--no_softmax", dest="softmax", action="store_false", help="keep the logits: no softmax head"
    )
    p.add_argument(
        "--model_name",
        default=None,
        help="Global.model_name in inference.yml (default: PaddleX's name for the architecture; "
        "PaddleX runs only names from its own list)",
    )
    p.add_argument(
        "--backend",
        choices=("pil", "cv2"),
        default=None,
        help="preprocessing backend recorded in the bundle (default pil; cv2 = PaddleX/PaddleClas deploy)",
    )
    _flag(
        p,
        "--force",
        help="write into a non-empty folder: replaces only the files a previous clsviz "
        "export wrote there (its manifest); other files are kept",
    )
    _flag(p, "--trust", help="load the checkpoint with plain pickle (only for files you trust)")
    _flag(p, "--json")

    p = sub.add_parser("predict", help="inference engine + inference model (mode 1)")
    p.add_argument("-i", "--i", "--image_file", dest="image", required=True, help="image or folder")
    p.add_argument(
        "-m",
        "--m",
        "--model_file",
        "--model_dir",
        dest="model",
        required=True,
        help="model file (.json/.pdmodel/model/__model__) or bundle folder",
    )
    p.add_argument("-p", "--p", "--params_file", dest="params", default=None)
    p.add_argument("--model_name", default=None, help="shown in the output")
    p.add_argument(
        "--mode",
        default="predictor",
        choices=("predictor", "openvino", "onnxruntime"),
        help="the engine that runs the program (openvino/onnxruntime: the model's ONNX "
        "form, converted once and cached; pip install 'clsviz[runtimes]')",
    )
    _flag(p, "--enable_benchmark", help="print latency per stage")
    _engine_flags(p)
    _image_flags(p)
    _common_out(p)

    p = sub.add_parser("infer", help="training engine + checkpoint (mode 2)")
    p.add_argument("-i", "--i", "--image_file", dest="image", required=True)
    p.add_argument("-m", "--m", "--model", "--arch", dest="arch", default=None, help="architecture name")
    p.add_argument(
        "-p",
        "--p",
        "--pretrained_model",
        "--checkpoint",
        dest="checkpoint",
        required=True,
        help=".pdparams, a fluid persistables folder, or a bundle folder",
    )
    p.add_argument("--class_num", "--class_dim", type=int, default=None)
    _flag(
        p,
        "--trust",
        help="trust the model: plain pickle for the checkpoint, and let its "
        "inference.yml name a 'module:callable' architecture",
    )
    _engine_flags(p, predictor=False)
    _image_flags(p)
    _common_out(p)

    p = sub.add_parser("py_infer", help="training engine + inference model (mode 3)")
    p.add_argument("-i", "--i", "--image_file", dest="image", required=True)
    p.add_argument("-d", "--d", "--model_dir", dest="model_dir", default=None)
    p.add_argument("-m", "--m", "--model_file", dest="model", default=None)
    p.add_argument("-p", "--p", "--params_file", dest="params", default=None)
    _engine_flags(p, predictor=False)
    _image_flags(p)
    _common_out(p)

    p = sub.add_parser("compare", help="modes side by side (Paddle's three, OpenVINO, ONNX Runtime)")
    p.add_argument("-i", "--i", "--image_file", dest="image", required=True)
    p.add_argument("--bundle", "-d", required=True, help="inference bundle folder or model file")
    p.add_argument("--checkpoint", "-p", default=None, help="checkpoint for the dygraph mode (default: bundle's)")
    p.add_argument("--arch", "-m", default=None)
    p.add_argument("--modes", default="predictor,dygraph,executor")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    _flag(
        p,
        "--trust",
        help="trust the model: plain pickle for the checkpoint, and let its "
        "inference.yml name a 'module:callable' architecture",
    )
    _engine_flags(p)
    _image_flags(p)
    _common_out(p)

    p = sub.add_parser("demo", help="the whole story on the bundled demo model")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--repeats", type=int, default=5)
    _image_flags(p)

    p = sub.add_parser("train-demo", help="train the bundled demo model from scratch")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)

    p = sub.add_parser("evaluate", help="accuracy on a labelled folder, per mode")
    p.add_argument("folder")
    p.add_argument("--bundle", required=True)
    p.add_argument("--mode", default="predictor", help="a mode, a comma list, or 'all'")
    p.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=None,
        metavar="ADDRESS",
        help="run on Ray: no ADDRESS starts a local runtime sized to this machine; "
        "'auto', HOST:PORT or ray://HOST:PORT joins a cluster",
    )
    p.add_argument("--workers", type=int, default=None, help="Ray actors (default: one per CPU / cpu_threads)")
    p.add_argument("-b", "--batch_size", "--b", type=int, default=8)
    p.add_argument(
        "--cpu_num_threads",
        "--cpu_threads",
        dest="cpu_threads",
        type=int,
        default=None,
        help="threads per engine (default: all cores here, 1 per Ray actor)",
    )
    p.add_argument("--out", default=None, help="where to write evaluation.html + confusion.png (default out/evaluate)")
    _flag(
        p,
        "--trust",
        help="trust the bundle: its inference.yml may name a 'module:callable' "
        "architecture (dygraph mode), its .pdparams is read with plain pickle",
    )
    _image_flags(p)
    _flag(p, "--json")

    p = sub.add_parser("explain", help="saliency maps: where the model looked (overlays as PNG)")
    p.add_argument("-i", "--i", "--image_file", dest="image", required=True, help="image or folder")
    p.add_argument(
        "-m",
        "--m",
        "--model",
        "--model_dir",
        dest="model",
        required=True,
        help="bundle folder, model file (.json/.pdmodel/…) or checkpoint (.pdparams, with --arch)",
    )
    p.add_argument("--method", choices=["gradcam", "gradcam++", "occlusion"], default="gradcam")
    p.add_argument("--target", type=int, default=None, help="class id to explain (default: each image's top-1)")
    p.add_argument("--out", "-o", "--o", dest="out", required=True, help="folder for the overlays + explain.json")
    p.add_argument(
        "--mode",
        default=None,
        help="engine (default: dygraph for gradcam/gradcam++, which rebuilds programs as a "
        "Layer; predictor for occlusion)",
    )
    p.add_argument("--arch", default=None, help="architecture name, for a bare checkpoint")
    p.add_argument("--layer", default=None, help="Grad-CAM's feature map (default: the last spatial one)")
    p.add_argument("--patch", type=int, default=None, help="occlusion patch, input pixels (default: 1/8 of the input)")
    p.add_argument("--stride", type=int, default=None, help="occlusion stride (default: half the patch)")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap weight in the overlay (0..1)")
    p.add_argument("--labels", "--class_id_map_file", default=None)
    p.add_argument("--cpu_num_threads", "--cpu_threads", dest="cpu_threads", type=int, default=None)
    _flag(p, "--trust", help="trust the model: plain pickle for the checkpoint, code names in its inference.yml")
    _image_flags(p)
    _flag(p, "--json", help="print explain.json's contents")

    p = sub.add_parser(
        "recommend",
        help="time every engine × precision here; the fastest that agrees",
        description="Builds every available engine and precision on the model, checks "
        "each against the predictor fp32, times them side by side and names "
        "the fastest that agrees. Exit status 0, or 1 if none agrees.",
    )
    p.add_argument(
        "-m", "--m", "--model_dir", "--model", dest="model", required=True, help="bundle folder or model file"
    )
    p.add_argument(
        "-i",
        "--i",
        "--image_file",
        dest="image",
        default=None,
        help="image or folder to check agreement on (default: random inputs of the model's shape)",
    )
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--cpu_num_threads", "--cpu_threads", dest="cpu_threads", type=int, default=None)
    _image_flags(p)
    _flag(p, "--json")

    p = sub.add_parser(
        "inspect",
        help="what Paddle model format is this, and what is in it",
        description="Exit status: 0 a Paddle model without problems; 1 not a Paddle "
        "model, a problem found, or an error.",
    )
    p.add_argument("path")
    p.add_argument("--compare", default=None, help="a second model to put side by side")
    _flag(p, "--json")

    p = sub.add_parser("migrate", help="legacy model → Paddle 3 bundle")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--arch", "-m", default=None, help="architecture, for checkpoint folders")
    p.add_argument("--params", "-p", default=None)
    p.add_argument("--class_num", "--class_dim", type=int, default=None)
    p.add_argument("--labels", "--class_id_map_file", default=None)
    p.add_argument(
        "--image_shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("C", "H", "W"),
        help="input shape for checkpoints (default 3 224 224)",
    )
    _flag(
        p,
        "--force",
        help="write into a non-empty folder: replaces only the files a previous clsviz "
        "export wrote there; other files are kept",
    )
    _flag(p, "--trust", help="load a checkpoint with plain pickle (only for files you trust)")
    _image_flags(p)
    _flag(p, "--json")

    p = sub.add_parser("bench", help="latency lab: per-mode, per-stage, sweeps")
    p.add_argument("--model", default="ResNet50_vd")
    _flag(p, "--overhead", help="clsviz forward vs the raw loop of each engine")
    _flag(p, "--runtimes", help="also the deployment runtimes (openvino, onnxruntime)")
    _flag(p, "--json")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--out", default="out/bench")
    return ap


def _engine_options(a, *, predictor=True) -> dict:
    o = {
        "use_gpu": a.use_gpu,
        "gpu_mem": a.gpu_mem,
        "gpu_id": a.gpu_id,
        "batch_size": a.batch_size,
        "cpu_threads": a.cpu_threads,
    }
    if predictor:
        o.update(
            use_tensorrt=a.use_tensorrt,
            ir_optim=a.ir_optim,
            enable_mkldnn=a.enable_mkldnn,
            precision="fp16" if a.use_fp16 else a.precision,
        )
    return o


def _print_predictions(preds, a, extra=None, note=None):
    if a.json:
        d = {"predictions": [p.to_dict() for p in preds]}
        d.update(extra or {})
        if note:
            d["labels_note"] = note
        print(json.dumps(d, indent=2))
        return
    if note:
        print(f"({note})")
    for p in preds:
        print(f"{p.image}")
        for t in p.topk:
            print(f"    {t.class_id:>5}  {t.label:<24} {t.score:.5f}")


def _predict_with(clf, a, title):
    if getattr(a, "enable_benchmark", False):
        cmp = compare(a.image, {clf.mode: clf}, top_k=a.top_k, repeats=10, warmup=2)
        rep = cmp.modes[clf.mode]
        _print_predictions(rep.predictions, a, {"latency_ms": rep.to_dict()["stages_ms"]}, note=clf.config.labels_note)
        if not a.json:
            print(
                f"{title}: build {clf.build_seconds:.2f}s; per batch of {rep.batch_size}: "
                + ", ".join(f"{s} p50 {v.p50:.2f} ms" for s, v in rep.stages.items())
            )
        return
    _print_predictions(clf.predict(a.image, top_k=a.top_k), a, note=clf.config.labels_note)


def cmd_export(a):
    if a.img_size is not None:
        check_image_shape((3, a.img_size, a.img_size), field="--img_size (as 3 × N × N)")
    if a.image_shape is not None:
        check_image_shape(a.image_shape, field="--image_shape")
        if a.img_size is not None and tuple(a.image_shape[1:]) != (a.img_size, a.img_size):
            raise OptionError(
                f"--img_size {a.img_size} and --image_shape {' '.join(map(str, a.image_shape))} disagree",
                hint="give one of them",
            )
    shape = (
        tuple(a.image_shape)
        if a.image_shape is not None
        else ((3, a.img_size, a.img_size) if a.img_size is not None else (3, 224, 224))
    )
    pre = None
    if a.resize_short is not None or a.backend is not None:
        crop = shape[1] if shape[1] == shape[2] else (shape[1], shape[2])
        short = a.resize_short if a.resize_short is not None else round(min(shape[1:]) * 256 / 224)
        pre = Preprocess(resize_short=short, crop_size=crop, backend=a.backend or "pil")
    r = export(
        a.arch,
        a.checkpoint,
        a.out,
        class_num=a.class_num,
        image_shape=shape,
        labels=a.labels,
        force=a.force,
        softmax=a.softmax,
        trust=a.trust,
        preprocess=pre,
        model_name=a.model_name,
    )
    print(json.dumps(r.to_dict(), indent=2) if a.json else r)


def cmd_predict(a):
    clf = load(a.model, mode=a.mode, params=a.params, labels=a.labels, **_engine_options(a))
    _predict_with(clf, a, a.model_name or a.mode)


def cmd_infer(a):
    clf = load(
        a.checkpoint,
        mode="dygraph",
        arch=a.arch,
        class_num=a.class_num,
        labels=a.labels,
        trust=a.trust,
        **_engine_options(a, predictor=False),
    )
    _predict_with(clf, a, "dygraph")


def cmd_py_infer(a):
    if a.model_dir is None and a.model is None:
        raise OptionError("py_infer needs --d MODEL_DIR and/or --m MODEL_FILE")
    model = Path(a.model_dir) if a.model_dir else None
    if a.model:
        model = (
            (model / a.model)
            if model is not None and not Path(a.model).is_absolute() and not Path(a.model).exists()
            else Path(a.model)
        )
    params = None
    if a.params:
        params = Path(a.params)
        if a.model_dir and not params.exists():
            params = Path(a.model_dir) / a.params
    assert model is not None  # --d or --m, checked above
    clf = load(model, mode="executor", params=params, labels=a.labels, **_engine_options(a, predictor=False))
    _predict_with(clf, a, "executor")


def cmd_compare(a):
    modes = check_modes([m.strip() for m in a.modes.split(",") if m.strip()])

    # the bundle's sidecar (preprocessing, labels) applies to every mode, the checkpoint's too
    bundle_cfg = resolve(a.bundle).config_file
    clfs: dict = {}
    for m in modes:
        try:
            if m == "dygraph":
                src = a.checkpoint or a.bundle
                clfs[m] = load(
                    src,
                    mode=m,
                    arch=a.arch,
                    labels=a.labels,
                    trust=a.trust,
                    config=bundle_cfg,
                    **_engine_options(a, predictor=False),
                )
            elif m == "executor":
                clfs[m] = load(a.bundle, mode=m, labels=a.labels, **_engine_options(a, predictor=False))
            else:
                clfs[m] = load(a.bundle, mode=m, labels=a.labels, **_engine_options(a))
        except UntrustedCode:  # a refusal to run the bundle's code is the answer, not one failed mode
            raise
        except ClsvizError as e:  # the other modes still run; this one is shown as FAILED
            clfs[m] = e
            if not a.json:
                print(f"FAILED {m:<9} {e}", file=sys.stderr)
            continue
        if not a.json:
            print(f"built {m:<9} in {clfs[m].build_seconds:.2f}s  ({clfs[m].describe()})", file=sys.stderr)
    built = [c for c in clfs.values() if not isinstance(c, BaseException)]
    notes = sorted({c.config.labels_note for c in built if c.config.labels_note})
    if notes and not a.json:
        print("\n".join(f"({n})" for n in notes), file=sys.stderr)
    cmp = compare(a.image, clfs, top_k=a.top_k, repeats=a.repeats, warmup=a.warmup)
    print(json.dumps(cmp.to_dict(), indent=2) if a.json else cmp.to_text())
    return 0 if cmp.agree and not cmp.failed else 3


def cmd_demo(a):
    check_output_dir(a.out, what="--out")
    return run_demo(a.out, repeats=a.repeats)


def cmd_train_demo(a):
    check_output_dir(a.out, what="--out")
    kw = {k: v for k, v in (("seed", a.seed), ("epochs", a.epochs)) if v is not None}
    r = train_demo(a.out, **kw)
    print(r)


def cmd_evaluate(a):
    return evaluate_cli(a)


def cmd_explain(a):
    if not 0.0 <= a.alpha <= 1.0:
        raise OptionError(f"--alpha must be within 0..1, got {a.alpha}")
    out = Path(a.out)
    check_output_dir(out, what="--out")
    mode = a.mode or ("dygraph" if a.method in GRADIENT_METHODS else "predictor")
    images = expand_images(a.image)
    with load(
        a.model,
        mode=mode,
        arch=a.arch,
        labels=a.labels,
        trust=a.trust,
        **({"cpu_threads": a.cpu_threads} if a.cpu_threads else {}),
    ) as clf:
        exs = explain(clf, images, method=a.method, target=a.target, layer=a.layer, patch=a.patch, stride=a.stride)
    out.mkdir(parents=True, exist_ok=True)
    rows, taken = [], set()
    for i, (img, ex) in enumerate(zip(images, exs)):
        stem = Path(image_name(img, i)).stem
        name = f"{stem}.{a.method.replace('+', 'p')}.png"
        if name in taken:
            name = f"{stem}.{i}.{a.method.replace('+', 'p')}.png"
        taken.add(name)
        ex.overlay(alpha=a.alpha).save(out / name)
        rows.append(dict(ex.to_dict(), overlay=name))
    summary = {"model": str(a.model), "mode": mode, "method": a.method, "explanations": rows}
    (out / "explain.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        for r in rows:
            print(
                f"{r['overlay']:<32} {r['label']} ({r['score']:.1%}) · peak at {tuple(r['peak'])} · "
                f"{r['forward_passes']} forward + {r['backward_passes']} backward · {r['seconds'] * 1e3:.0f} ms"
            )
        print(f"wrote {len(rows)} overlay(s) and explain.json to {out}")


def cmd_inspect(a):
    rep: InspectComparison | InspectReport
    reports: tuple[InspectReport, ...]
    if a.compare:
        rep = inspect_compare(a.path, a.compare)
        reports = (rep.a, rep.b)
    else:
        rep = inspect_path(a.path)
        reports = (rep,)
    print(json.dumps(rep.to_dict(), indent=2) if a.json else rep.to_text())
    return 0 if all(r.is_model and not r.problems for r in reports) else 1  # scripts can rely on it


def cmd_migrate(a):
    r = migrate(
        a.src,
        a.dst,
        arch=a.arch,
        params=a.params,
        class_num=a.class_num,
        force=a.force,
        labels=a.labels,
        image_shape=a.image_shape,
        trust=a.trust,
    )
    print(json.dumps(r.to_dict(), indent=2) if a.json else r)


def cmd_recommend(a):
    say = None if a.json else (lambda t: print(f"[recommend] {t}", file=sys.stderr, flush=True))
    rec = recommend(
        a.model, a.image, repeats=a.repeats, batch_size=a.batch_size, cpu_threads=a.cpu_threads, progress=say
    )
    print(json.dumps(rec.to_dict(), indent=2) if a.json else rec.to_text())
    return 0 if rec.best is not None else 1


def cmd_bench(a):
    from .bench import bench_cli

    check_output_dir(a.out, what="--out")
    return bench_cli(a)


COMMANDS = {
    "export": cmd_export,
    "predict": cmd_predict,
    "infer": cmd_infer,
    "py_infer": cmd_py_infer,
    "compare": cmd_compare,
    "demo": cmd_demo,
    "train-demo": cmd_train_demo,
    "evaluate": cmd_evaluate,
    "explain": cmd_explain,
    "inspect": cmd_inspect,
    "migrate": cmd_migrate,
    "bench": cmd_bench,
    "recommend": cmd_recommend,
}


def main(argv=None) -> int:
    argv = normalize_argv(sys.argv[1:] if argv is None else list(argv))
    ap = build_parser()
    a = ap.parse_args(argv)
    if not a.cmd:
        ap.print_help()
        return 2
    debug = a.debug or os.environ.get("CLSVIZ_DEBUG") not in (None, "", "0")
    if getattr(a, "max_pixels", None) is not None:
        Image.MAX_IMAGE_PIXELS = a.max_pixels or None  # Pillow's bomb guard, which clsviz follows
    try:
        rc = COMMANDS[a.cmd](a)
        return int(rc or 0)
    except KeyboardInterrupt:
        print("clsviz: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for users; the trace with --debug
        if debug:
            traceback.print_exc()
        if isinstance(e, ClsvizError):
            print(f"clsviz: {type(e).__name__}: {e.one_line()}", file=sys.stderr)
            return 1
        if isinstance(e, OSError):  # the environment, not a bug: one line, no "unexpected"
            where = f" [{e.filename}]" if e.filename else ""
            print(f"clsviz: {type(e).__name__}: {e.strerror or e}{where}", file=sys.stderr)
            return 1
        print(
            f"clsviz: unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            f"(rerun with --debug for the trace)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
