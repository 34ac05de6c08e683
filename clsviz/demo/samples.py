"""``sample_images/``: a dozen-odd images that exercise the input path, not just the model.

Unlike the training draws (96x96 RGB PNG-like arrays) they come in other sizes
and aspect ratios, as JPEG and PNG, grayscale, RGBA with transparent pixels that
are black underneath, a JPEG whose pixels are stored turned and put right by its
EXIF Orientation tag, a 1920x1080 photo-sized JPEG, a 64 px thumbnail, and two
deliberately hard cases.  :func:`write_sample_images` writes them with
``labels.txt`` (``filename class [hard]``) and a ``README.md``;
:func:`check_samples` runs a checkpoint over them.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .._paddle import dygraph_mode, paddle
from ..archs import get_model
from . import DEMO_ARCH, DEMO_CHECKPOINT
from .dataset import CLASSES, Occluder, Shape, render, shape_mask
from .train import DEMO_PREPROCESS

SAMPLE_SEED = 2024


@dataclass(frozen=True)
class Sample:
    filename: str
    label: str
    purpose: str
    hard: bool = False


def _rng(i: int) -> np.random.Generator:
    return np.random.default_rng([SAMPLE_SEED, i])


def _shape(name, w, h, *, r=0.32, dx=0.0, dy=0.0, angle=20, aspect=1.0, color, detail=None, shading=0.0):
    """A shape centred at (w/2 + dx*short, h/2 + dy*short), radius ``r`` x short side."""
    short = min(w, h)
    return Shape(
        name, w / 2 + dx * short, h / 2 + dy * short, r * short, math.radians(angle), aspect, color, detail, shading
    )


# Each builder returns (image, save kwargs).  Colours are RGB in [0, 1]; a shape is dark on a
# light background or the other way round, as in training.


def _circle_landscape(rng):
    w, h = 300, 200
    s = _shape("circle", w, h, r=0.3, dx=0.04, color=(0.75, 0.12, 0.10))
    return render([s], rng, (w, h), light_background=True, background_kind="gradient", noise=0.02), {}


def _square_portrait(rng):
    w, h = 150, 400
    s = _shape("square", w, h, r=0.36, angle=10, color=(0.93, 0.86, 0.35))
    return render([s], rng, (w, h), light_background=False, background_kind="noise", noise=0.02, blur=0), {}


def _triangle_gray(rng):
    w = h = 256
    s = _shape("triangle", w, h, r=0.34, angle=0, dy=0.03, color=(0.15, 0.25, 0.55))
    img = render([s], rng, (w, h), light_background=True, background_kind="stripes", noise=0.015, blur=0)
    return img.convert("L"), {}


def _star_rgba(rng):
    # Transparent pixels are black underneath: only a proper alpha composite (on white) shows a
    # dark star on a light ground; dropping the alpha channel leaves it dark on black.
    w = h = 200
    s = _shape("star", w, h, r=0.36, angle=8, color=(0.10, 0.12, 0.30), detail=0.45)
    a = shape_mask(s, w, h)
    rgb = np.zeros((h, w, 3), np.float32) + np.array(s.color, np.float32) * a[..., None]
    rgba = np.dstack([rgb, a])
    return Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), "RGBA"), {}


def _arrow_exif(rng):
    # Shown upright (320x240, arrow pointing up) only after ImageOps.exif_transpose: the file
    # stores the pixels turned 90° and carries Orientation=6 ("rotate 90° clockwise to view").
    w, h = 320, 240
    s = _shape("arrow", w, h, r=0.36, angle=90, color=(0.95, 0.95, 0.92), detail=0.18)
    shown = render([s], rng, (w, h), light_background=False, background_kind="gradient", noise=0.02)
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return stored, {"exif": exif.tobytes(), "quality": 90}


def _ring_large(rng):
    w, h = 1920, 1080
    s = _shape("ring", w, h, r=0.33, dx=0.03, color=(0.05, 0.35, 0.20), detail=0.55, shading=0.3)
    img = render([s], rng, (w, h), light_background=True, background_kind="gradient", noise=0.0, blur=1.5)
    return img, {"quality": 85}


def _hexagon_stripes(rng):
    w = h = 224
    s = _shape("hexagon", w, h, r=0.33, angle=12, color=(0.88, 0.80, 0.95))
    return render([s], rng, (w, h), light_background=False, background_kind="stripes", noise=0.02), {}


def _cross_lowq(rng):
    w, h = 256, 192
    s = _shape("cross", w, h, r=0.36, angle=30, color=(0.12, 0.10, 0.10), detail=0.28)
    img = render([s], rng, (w, h), light_background=True, background_kind="noise", noise=0.04)
    return img, {"quality": 35}


def _star_thumbnail(rng):
    w = h = 64
    s = _shape("star", w, h, r=0.36, angle=-10, color=(0.98, 0.85, 0.20), detail=0.42)
    return render([s], rng, (w, h), light_background=False, background_kind="flat", noise=0.01, blur=0), {}


def _square_checks(rng):
    w = h = 240
    s = _shape("square", w, h, r=0.34, angle=45 + 17, color=(0.20, 0.05, 0.30))
    return render([s], rng, (w, h), light_background=True, background_kind="checks", noise=0.02, blur=0), {
        "quality": 92
    }


def _triangle_wide(rng):
    w, h = 400, 240
    s = _shape("triangle", w, h, r=0.36, angle=200, dy=0.02, color=(0.97, 0.55, 0.55))
    return render([s], rng, (w, h), light_background=False, background_kind="flat", noise=0.02), {"quality": 90}


def _hexagon_tall(rng):
    w, h = 180, 320
    s = _shape("hexagon", w, h, r=0.34, angle=0, aspect=1.1, color=(0.05, 0.20, 0.45), shading=0.4)
    return render([s], rng, (w, h), light_background=True, background_kind="noise", noise=0.02), {"quality": 90}


def _circle_pale(rng):
    w, h = 160, 160
    s = _shape("circle", w, h, r=0.28, dx=-0.06, dy=0.05, aspect=1.12, angle=30, color=(0.32, 0.30, 0.34))
    return render([s], rng, (w, h), light_background=True, background_kind="flat", noise=0.03), {}


def _hard_occluded(rng):
    # A star with most of three points hidden behind a board: could pass for a triangle or an arrow.
    w = h = 200
    s = _shape("star", w, h, r=0.36, angle=0, color=(0.10, 0.15, 0.45), detail=0.45)
    board = Occluder(cx=100, cy=150, rx=95, ry=45, angle=0.0, color=(0.55, 0.50, 0.45))
    return render([s], rng, (w, h), light_background=True, background_kind="flat", noise=0.02, occluders=[board]), {}


def _hard_two_shapes(rng):
    # A circle and a triangle of the same size side by side; the label names the circle.
    w, h = 240, 240
    a = _shape("circle", w, h, r=0.2, dx=-0.2, color=(0.85, 0.10, 0.15))
    b = _shape("triangle", w, h, r=0.2, dx=0.2, angle=90, color=(0.10, 0.30, 0.80))
    return render([a, b], rng, (w, h), light_background=True, background_kind="flat", noise=0.02), {}


_BUILDERS: tuple[tuple[Sample, Callable], ...] = (
    (Sample("circle_300x200.jpg", "circle", "landscape 3:2 JPEG: resize-short then centre-crop"), _circle_landscape),
    (Sample("square_150x400.png", "square", "tall narrow PNG (1:2.7), light shape on dark noise"), _square_portrait),
    (Sample("triangle_gray.png", "triangle", "grayscale PNG (mode L): must become 3-channel RGB"), _triangle_gray),
    (
        Sample(
            "star_rgba.png",
            "star",
            "RGBA PNG, transparent pixels black underneath: composite on white, do not just drop alpha",
        ),
        _star_rgba,
    ),
    (
        Sample(
            "arrow_exif6.jpg",
            "arrow",
            "JPEG stored turned 90°, EXIF Orientation=6: upright (arrow "
            "pointing up, 320x240) only after exif_transpose",
        ),
        _arrow_exif,
    ),
    (Sample("ring_1920x1080.jpg", "ring", "full-HD JPEG: a big downscale (anti-aliasing matters)"), _ring_large),
    (Sample("hexagon_stripes.png", "hexagon", "224x224 PNG on stripes"), _hexagon_stripes),
    (Sample("cross_q35.jpg", "cross", "4:3 JPEG at quality 35: block artefacts"), _cross_lowq),
    (Sample("star_64px.png", "star", "64x64 thumbnail: smaller than resize_short, is upscaled"), _star_thumbnail),
    (Sample("square_checks.jpg", "square", "square turned 62° on a checked background"), _square_checks),
    (Sample("triangle_400x240.jpg", "triangle", "wide 5:3 JPEG, light triangle on a dark ground"), _triangle_wide),
    (Sample("hexagon_180x320.jpg", "hexagon", "portrait 9:16 JPEG, shaded and slightly stretched"), _hexagon_tall),
    (Sample("circle_ellipse.png", "circle", "a slightly elliptical circle, off centre, low contrast"), _circle_pale),
    (
        Sample("hard_occluded_star.png", "star", "HARD: a star with its lower points hidden behind a board", hard=True),
        _hard_occluded,
    ),
    (
        Sample(
            "hard_two_shapes.png", "circle", "HARD: a circle and a triangle side by side; labelled circle", hard=True
        ),
        _hard_two_shapes,
    ),
)

SAMPLES: tuple[Sample, ...] = tuple(s for s, _ in _BUILDERS)


def write_sample_images(folder) -> list[Path]:
    """Draw every sample into ``folder`` (+ ``labels.txt`` and ``README.md``); returns the image paths."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (sample, build) in enumerate(_BUILDERS):
        img, kw = build(_rng(i))
        path = root / sample.filename
        img.save(path, **kw)
        paths.append(path)
    (root / "labels.txt").write_text("".join(f"{s.filename} {s.label}{' hard' if s.hard else ''}\n" for s in SAMPLES))
    (root / "README.md").write_text(_readme())
    return paths


write_samples = write_sample_images  # the name clsviz.demo.run uses


def _readme() -> str:
    rows = "\n".join(f"| `{s.filename}` | {s.label}{' (hard)' if s.hard else ''} | {s.purpose} |" for s in SAMPLES)
    return f"""# sample_images

Inputs for the demo model (classes: {", ".join(CLASSES)}), drawn by
`clsviz.demo.samples.write_sample_images` (regenerate: `python -m clsviz.demo.samples sample_images`).
They differ from the training images on purpose, to exercise the input path:
sizes, aspect ratios, file formats, colour modes, EXIF orientation.

`labels.txt` holds `filename class` per line; a trailing `hard` marks a case the model may
get wrong without anything being broken.  Every other image must be classified correctly
in every mode (`python -m clsviz demo` checks it).

| file | label | what it is for |
|---|---|---|
{rows}
"""


def check_samples(folder, checkpoint=None, *, arch: str | None = None, preprocess=None) -> list[dict]:
    """Classify the labelled images in ``folder`` with a dygraph forward of ``checkpoint``.

    Defaults: the bundled demo checkpoint, :data:`clsviz.demo.DEMO_ARCH` and the demo's training
    preprocessing (EXIF transpose and RGB conversion included).  One dict per image:
    ``file, label, hard, pred, score, correct``.
    """
    root = Path(folder)
    pre = preprocess or DEMO_PREPROCESS
    rows = []
    for line in (root / "labels.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            rows.append((parts[0], parts[1], "hard" in parts[2:]))
    with dygraph_mode():
        net = get_model(arch or DEMO_ARCH, class_num=len(CLASSES))
        net.set_state_dict(paddle.load(str(checkpoint or DEMO_CHECKPOINT)))
        net.eval()
        x = np.stack([pre(root / f) for f, _, _ in rows])
        with paddle.no_grad():
            prob = paddle.nn.functional.softmax(net(paddle.to_tensor(x)), axis=1).numpy()
    out = []
    for (f, label, hard), p in zip(rows, prob):
        k = int(p.argmax())
        out.append(
            {
                "file": f,
                "label": label,
                "hard": hard,
                "pred": CLASSES[k],
                "score": float(p[k]),
                "correct": CLASSES[k] == label,
            }
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clsviz.demo.samples", description=write_sample_images.__doc__)
    ap.add_argument("folder", nargs="?", default="sample_images")
    ap.add_argument("--check", action="store_true", help="then classify them with the demo checkpoint")
    a = ap.parse_args(argv)
    for p in write_sample_images(a.folder):
        print(f"{p}  {p.stat().st_size / 1024:.0f} KiB")
    if a.check:
        rows = check_samples(a.folder)
        for r in rows:
            flag = "ok " if r["correct"] else ("-- " if r["hard"] else "BAD")
            print(f"{flag} {r['file']:<26} {r['label']:<9} → {r['pred']:<9} {r['score']:.3f}")
        return int(any(not r["correct"] and not r["hard"] for r in rows))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
