"""Train the bundled demo model: ``ResNet18_vd_x0_25`` on the synthetic shapes.

``python -m clsviz train-demo --out DIR [--seed N] [--epochs N]`` (or
:func:`train_demo`) draws a training split and a held-out split (another
seed), trains in dygraph on the CPU and writes::

    DIR/demo_model.pdparams   paddle.save(model.state_dict())
    DIR/labels.txt            PaddleClas class_id_map: "0 circle" per line
    DIR/train_log.json        recipe, per-epoch loss/accuracy, result

Training sees exactly the pixels inference will: every image goes through
:data:`DEMO_PREPROCESS` (the same :class:`clsviz.transforms.Preprocess` the
export writes into ``inference.yml``).  Augmentation only flips and turns the
preprocessed crop by multiples of 90°, which commutes with a centred resize
and crop of a square image, and every class is symmetric under it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .._paddle import dygraph_mode, paddle
from ..archs import get_model
from ..archs.flops import count_params
from ..errors import OptionError
from ..transforms import Preprocess
from . import DEMO_ARCH
from .dataset import CLASSES, make_split

# What the bundle exporter must write: resize the short side to 72, centre-crop 64,
# x/255, ImageNet mean/std, CHW RGB.  64 px is where this net is cheap enough on a
# CPU (its last stage works on 2x2 maps either way) and the shapes stay legible.
DEMO_PREPROCESS = Preprocess(resize_short=72, crop_size=64)
SOURCE_SIZE = 96  # generated images are 96x96; preprocessing takes them to 64x64

DEFAULT_SEED = 0
DEFAULT_EPOCHS = 3
DEFAULT_N_TRAIN = 8000
DEFAULT_N_HELDOUT = 2000
HELDOUT_SEED_OFFSET = 1_000_003  # held-out seed = seed + this: never the training stream
_OPTIMIZERS = {"momentum": "Momentum(0.9, Nesterov), L2 decay", "adamw": "AdamW, decoupled decay"}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_demo` made, and how well it did on the held-out split."""

    checkpoint: Path
    labels: Path
    log: Path
    heldout_accuracy: float
    seconds: float
    n_params: int
    seed: int
    epochs: int
    command: str
    arch: str = DEMO_ARCH
    preprocess: Preprocess = DEMO_PREPROCESS
    per_class_accuracy: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "labels": str(self.labels),
            "log": str(self.log),
            "heldout_accuracy": self.heldout_accuracy,
            "seconds": round(self.seconds, 2),
            "n_params": self.n_params,
            "seed": self.seed,
            "epochs": self.epochs,
            "command": self.command,
            "arch": self.arch,
            "preprocess": self.preprocess.to_dict(),
            "per_class_accuracy": dict(self.per_class_accuracy),
        }

    def __str__(self) -> str:
        size = self.checkpoint.stat().st_size / 1e6 if self.checkpoint.exists() else float("nan")
        return (
            f"{self.arch}: held-out top-1 {self.heldout_accuracy:.2%} "
            f"({self.n_params / 1e6:.2f} M params, {size:.1f} MB) in {self.seconds:.0f} s, "
            f"seed {self.seed}\n  {self.checkpoint}\n  {self.labels}\n  {self.log}"
        )


# ---- data -------------------------------------------------------------------------------


def preprocess_crops(images: np.ndarray, pre: Preprocess = DEMO_PREPROCESS) -> np.ndarray:
    """uint8 NHWC source images → uint8 NHWC crops after ``pre``'s resize and crop.

    Normalisation is left for the batch (:func:`normalize_batch`) so the split stays
    uint8 in memory.
    """
    h, w = pre.crop_hw
    out = np.empty((len(images), h, w, 3), np.uint8)
    for i, a in enumerate(images):
        out[i] = np.asarray(pre.resize_crop(Image.fromarray(a)))
    return out


def normalize_batch(crops: np.ndarray, pre: Preprocess = DEMO_PREPROCESS) -> np.ndarray:
    """uint8 NHWC crops → float32 NCHW, the batched twin of ``pre.normalize``."""
    std = np.asarray(pre.std, np.float32)
    a = np.float32(pre.scale) / std
    b = -np.asarray(pre.mean, np.float32) / std
    x = crops.astype(np.float32)
    x *= a
    x += b
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _dihedral(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each crop flipped and/or turned by a random multiple of 90°."""
    out = crops.copy()
    k = rng.integers(0, 8, len(crops))
    for t in range(1, 8):
        idx = np.flatnonzero(k == t)
        if idx.size:
            v = crops[idx]
            if t >= 4:
                v = v[:, :, ::-1]
            out[idx] = np.rot90(v, t % 4, axes=(1, 2))
    return out


# ---- training ---------------------------------------------------------------------------


def _lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def _accuracy(
    model, crops: np.ndarray, labels: np.ndarray, pre: Preprocess, batch_size: int = 250
) -> tuple[float, np.ndarray]:
    model.eval()
    parts = []
    with paddle.no_grad():
        for i in range(0, len(crops), batch_size):
            logits = model(paddle.to_tensor(normalize_batch(crops[i : i + batch_size], pre)))
            parts.append(logits.numpy().argmax(1))
    pred = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return float(np.mean(pred == labels)) if len(labels) else float("nan"), pred


def _command(out_dir, seed, epochs, extra: dict) -> str:
    cmd = f"python -m clsviz train-demo --out {out_dir} --seed {seed} --epochs {epochs}"
    if extra:
        kw = ", ".join(f"{k}={v!r}" for k, v in extra.items())
        cmd = (
            f'python -c "from clsviz.demo.train import train_demo; '
            f'train_demo({str(out_dir)!r}, seed={seed}, epochs={epochs}, {kw})"'
        )
    return cmd


def train_demo(
    out_dir,
    *,
    seed: int = DEFAULT_SEED,
    epochs: int = DEFAULT_EPOCHS,
    n_train: int = DEFAULT_N_TRAIN,
    n_heldout: int = DEFAULT_N_HELDOUT,
    batch_size: int = 64,
    lr: float = 0.2,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.05,
    optimizer: str = "momentum",
    progress: bool = True,
) -> TrainResult:
    """Train the demo model from scratch into ``out_dir``; see the module docstring.

    Deterministic for a given ``seed`` on a given machine (data, init and batch order
    all follow it).  ``n_heldout`` images drawn with ``seed + HELDOUT_SEED_OFFSET``
    give ``heldout_accuracy``.
    """
    for name, v, lo in (
        ("epochs", epochs, 1),
        ("n_train", n_train, len(CLASSES)),
        ("n_heldout", n_heldout, 0),
        ("batch_size", batch_size, 1),
    ):
        if not isinstance(v, int) or v < lo:
            raise OptionError(f"{name} must be an integer ≥ {lo}, got {v!r}")
    if optimizer not in _OPTIMIZERS:
        raise OptionError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
    t0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pre = DEMO_PREPROCESS

    x_train, y_train = make_split(n_train, seed, SOURCE_SIZE)
    x_train = preprocess_crops(x_train, pre)
    x_held, y_held = make_split(n_heldout, seed + HELDOUT_SEED_OFFSET, SOURCE_SIZE)
    x_held = preprocess_crops(x_held, pre)
    data_seconds = time.perf_counter() - t0

    rng = np.random.default_rng([seed, 7])
    steps_per_epoch = n_train // batch_size
    total = steps_per_epoch * epochs
    history = []
    with dygraph_mode():
        paddle.seed(seed)
        model = get_model(DEMO_ARCH, class_num=len(CLASSES))
        n_params = count_params(model, trainable_only=False)
        if optimizer == "momentum":
            opt = paddle.optimizer.Momentum(
                learning_rate=lr,
                momentum=0.9,
                use_nesterov=True,
                parameters=model.parameters(),
                weight_decay=paddle.regularizer.L2Decay(weight_decay),
            )
        else:
            opt = paddle.optimizer.AdamW(learning_rate=lr, parameters=model.parameters(), weight_decay=weight_decay)
        warmup = max(1, min(steps_per_epoch // 2, total // 5))
        bar = tqdm(total=total, desc="train-demo", unit="step", disable=not progress, leave=True)
        step = 0
        for epoch in range(epochs):
            model.train()
            order = rng.permutation(n_train)
            losses, hits, seen, te = [], 0, 0, time.perf_counter()
            for b in range(steps_per_epoch):
                idx = order[b * batch_size : (b + 1) * batch_size]
                x = paddle.to_tensor(normalize_batch(_dihedral(x_train[idx], rng), pre))
                y = paddle.to_tensor(y_train[idx])
                opt.set_lr(_lr_at(step, total, lr, warmup))
                logits = model(x)
                loss = paddle.nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
                loss.backward()
                opt.step()
                opt.clear_grad()
                losses.append(float(loss))
                hits += int((logits.numpy().argmax(1) == y_train[idx]).sum())
                seen += len(idx)
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{hits / seen:.3f}")
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": float(np.mean(losses)),
                    "train_accuracy": hits / max(seen, 1),
                    "seconds": round(time.perf_counter() - te, 2),
                }
            )
        bar.close()
        acc, pred = _accuracy(model, x_held, y_held, pre)
        ckpt = out / "demo_model.pdparams"
        paddle.save(model.state_dict(), str(ckpt))
    per_class = {
        c: float((pred[y_held == i] == i).mean()) if (y_held == i).any() else float("nan")
        for i, c in enumerate(CLASSES)
    }
    labels = out / "labels.txt"
    labels.write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES)))
    seconds = time.perf_counter() - t0
    given = {
        "n_train": n_train,
        "n_heldout": n_heldout,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "optimizer": optimizer,
    }
    defaults = inspect.signature(train_demo).parameters
    extra = {k: v for k, v in given.items() if v != defaults[k].default}
    log = out / "train_log.json"
    result = TrainResult(
        checkpoint=ckpt,
        labels=labels,
        log=log,
        heldout_accuracy=acc,
        seconds=seconds,
        n_params=n_params,
        seed=seed,
        epochs=epochs,
        command=_command(out, seed, epochs, extra),
        per_class_accuracy=per_class,
    )
    log.write_text(
        json.dumps(
            {
                "result": result.to_dict(),
                "recipe": {
                    "arch": DEMO_ARCH,
                    "classes": list(CLASSES),
                    "source_size": SOURCE_SIZE,
                    "heldout_seed": seed + HELDOUT_SEED_OFFSET,
                    **given,
                    "optimizer": _OPTIMIZERS[optimizer],
                    "schedule": f"linear warm-up {warmup} steps, cosine to 0",
                    "steps": total,
                    "augmentation": "random flip / 90° turn of the preprocessed crop",
                },
                "history": history,
                "timing": {
                    "data_seconds": round(data_seconds, 2),
                    "total_seconds": round(seconds, 2),
                    "cpu_seconds": round(time.process_time() - cpu0, 2),
                },
                "machine": _machine(paddle.__version__),
            },
            indent=2,
        )
        + "\n"
    )
    (out / "MODEL_CARD.md").write_text(model_card(log))
    return result


def _machine(paddle_version: str) -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu or None,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "paddle": paddle_version,
    }


def model_card(log) -> str:
    """``MODEL_CARD.md`` text for the run recorded in ``train_log.json`` (path or dict)."""
    d = log if isinstance(log, dict) else json.loads(Path(log).read_text())
    r, rec, m = d["result"], d["recipe"], d["machine"]
    pre, t = r["preprocess"], d["timing"]
    cpu = (
        f"{t['cpu_seconds']:.0f} s of CPU time (Paddle's CPU kernels here run on one core)"
        if "cpu_seconds" in t
        else ""
    )
    scale = "1/255" if abs(pre["scale"] - 1 / 255) < 1e-9 else f"{pre['scale']:.6g}"
    per_class = "\n".join(f"| {i} | {c} | {r['per_class_accuracy'][c]:.1%} |" for i, c in enumerate(rec["classes"]))
    epochs = "\n".join(
        f"| {h['epoch']} | {h['loss']:.3f} | {h['train_accuracy']:.1%} | {h['seconds']:.0f} |" for h in d["history"]
    )
    return f"""# Demo model: {r["arch"]} on synthetic shapes

The checkpoint clsviz ships (`demo_model.pdparams`, {r["n_params"]:,} parameters) and its
`labels.txt` (PaddleClas `class_id_map` format).  It tells apart eight classes of simple
shapes drawn by `clsviz.demo.dataset`; it exists to demonstrate clsviz, not to be useful.

## How it was made

```
{r["command"]}
```

- seed **{r["seed"]}**; held-out split: {d["recipe"]["n_heldout"]} images drawn with seed {rec["heldout_seed"]}
- data: {rec["n_train"]} training images ({rec["source_size"]}x{rec["source_size"]}, balanced), {r["epochs"]} epochs,
  batch {rec["batch_size"]}, {rec["steps"]} steps; augmentation: {rec["augmentation"]}
- optimiser: {rec["optimizer"]}, peak lr {rec["lr"]}, weight decay {rec["weight_decay"]},
  label smoothing {rec["label_smoothing"]}; {rec["schedule"]}
- dygraph, CPU; wall time **{r["seconds"]:.0f} s** in all (drawing the data: {t["data_seconds"]:.0f} s),
  {cpu} on {m["cpu"]} ({m["cores"]} cores), {m["platform"]}, Python {m["python"]},
  Paddle {m["paddle"]}

## Result

Held-out top-1: **{r["heldout_accuracy"]:.2%}**

| id | class | held-out accuracy |
|---|---|---|
{per_class}

| epoch | loss | train accuracy | seconds |
|---|---|---|---|
{epochs}

## Input preprocessing (training = inference)

RGB (EXIF orientation applied) → resize the short side to **{pre["resize_short"]}** ({pre["interpolation"]},
Pillow) → centre-crop **{pre["crop_size"]}x{pre["crop_size"]}** → x {scale} → subtract mean
{tuple(pre["mean"])} → divide by std {tuple(pre["std"])} → CHW.  In code:
`clsviz.demo.train.DEMO_PREPROCESS`, a `clsviz.transforms.Preprocess`.

## Limits

Trained only on synthetic, centred, single shapes.  Real photos, several shapes in one image,
or shapes touching the border are outside what it has seen (see the `hard` samples in
`sample_images/`).  Retraining with the command above on another CPU gives a slightly different
checkpoint (floating-point order differs) with a similar held-out accuracy.
"""


def main(argv=None) -> int:
    """``python -m clsviz.demo.train --out DIR [--seed N] [--epochs N]``."""
    p = argparse.ArgumentParser(prog="clsviz train-demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    a = p.parse_args(argv)
    print(train_demo(a.out, seed=a.seed, epochs=a.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
