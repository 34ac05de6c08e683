"""Synthetic "shapes": eight classes of simple things, drawn with Pillow and numpy.

One filled shape per image, of a random colour that always contrasts with the
background (one is light, the other dark), with random size, position,
rotation and aspect; a textured background (flat, gradient, stripes, smooth
noise, checks); pixel noise, sometimes blur, and sometimes an occluder that
bites a piece out of the shape.  Everything follows a ``numpy.random.Generator``,
so a seed gives the same pixels wherever numpy and Pillow are the same versions.

    >>> rng = np.random.default_rng(0)
    >>> draw("star", rng).size
    (96, 96)
    >>> x, y = make_split(800, seed=1)          # uint8 NHWC, int64 labels
    >>> write_folder("eval/", 50, seed=2)       # eval/<class>/<class>_0000.png ...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import OptionError

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "arrow")

Size = Union[int, Sequence[int]]  # an int (square) or (width, height)

# Luminance bands: the background takes one, the shape the other, so there is always a
# gap of at least 0.22 in luminance (0.13 where shading brightens or darkens a shape by up
# to ~14 %), and it survives a grayscale conversion.
_LIGHT = (0.60, 0.95)
_DARK = (0.05, 0.38)
_BACKGROUNDS = ("flat", "gradient", "stripes", "noise", "checks")
_SUPERSAMPLE = 3  # shapes are rasterised at 3x and box-filtered down: anti-aliased edges


@dataclass(frozen=True)
class Shape:
    """One shape in a scene.  Coordinates are pixels of the final image."""

    name: str
    cx: float
    cy: float
    radius: float  # circumradius before the aspect stretch
    angle: float = 0.0  # radians, counter-clockwise on screen
    aspect: float = 1.0  # x is stretched by aspect, y by 1/aspect, before rotating
    color: tuple[float, float, float] = (0.1, 0.1, 0.1)  # RGB in [0, 1]
    detail: float | None = None  # class-specific proportion (star waist, ring hole, ...)
    shading: float = 0.0  # strength of a linear light gradient across the shape

    def __post_init__(self):
        if self.name not in CLASSES:
            raise OptionError(f"unknown shape {self.name!r}", hint=f"pick one of {', '.join(CLASSES)}")


@dataclass(frozen=True)
class Occluder:
    """A rectangle or ellipse painted over the shape."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float
    color: tuple[float, float, float]
    ellipse: bool = False


# ---- geometry ---------------------------------------------------------------------------

# (low, high) of each class's ``detail`` when drawn at random
_DETAIL = {
    "star": (0.38, 0.52),  # inner / outer radius
    "cross": (0.22, 0.34),  # half arm width / arm length
    "ring": (0.42, 0.62),  # hole radius / outer radius
    "arrow": (0.14, 0.22),  # half shaft width / half length
}


def _ngon(n: int, phase: float = math.pi / 2) -> np.ndarray:
    t = phase + np.arange(n) * (2 * math.pi / n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _outline(name: str, detail: float | None) -> list[tuple[np.ndarray, int]]:
    """Unit-size polygons (N, 2), y up, with their fill (255 = ink, 0 = hole)."""
    d = detail if detail is not None else float(np.mean(_DETAIL.get(name, (0.0, 0.0))))
    if name == "circle":
        return [(_ngon(96), 255)]
    if name == "ring":
        return [(_ngon(96), 255), (_ngon(96) * d, 0)]
    if name == "square":
        return [(_ngon(4, math.pi / 4), 255)]
    if name == "triangle":
        return [(_ngon(3), 255)]
    if name == "hexagon":
        return [(_ngon(6, 0.0), 255)]
    if name == "star":
        pts = _ngon(10)
        pts[1::2] *= d
        return [(pts, 255)]
    if name == "cross":
        w = d
        q = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]
        return [(np.array(q, float) / math.hypot(1, w), 255)]
    if name == "arrow":
        s, head, neck = d, 0.62, 0.15  # shaft half width, head half width, where the head starts
        q = [(-1, -s), (neck, -s), (neck, -head), (1, 0), (neck, head), (neck, s), (-1, s)]
        return [(np.array(q, float) / math.hypot(1, s), 255)]  # circumradius 1
    raise OptionError(f"unknown shape {name!r}", hint=f"pick one of {', '.join(CLASSES)}")


def _place(poly: np.ndarray, s: Shape) -> np.ndarray:
    """Unit polygon → image pixel coordinates (y down)."""
    p = poly * np.array([s.aspect, 1.0 / s.aspect]) * s.radius
    c, si = math.cos(s.angle), math.sin(s.angle)
    x = p[:, 0] * c - p[:, 1] * si
    y = p[:, 0] * si + p[:, 1] * c
    return np.stack([s.cx + x, s.cy - y], axis=1)


def _rasterise(polys: list[tuple[np.ndarray, int]], w: int, h: int) -> np.ndarray:
    """Anti-aliased coverage mask, float32 (h, w) in [0, 1]."""
    k = _SUPERSAMPLE
    canvas = Image.new("L", (w * k, h * k), 0)
    pen = ImageDraw.Draw(canvas)
    for pts, fill in polys:
        pen.polygon([(float(x), float(y)) for x, y in (pts + 0.5) * k - 0.5], fill=fill)
    small = canvas.reduce(k)  # box filter
    return np.asarray(small, dtype=np.float32) * np.float32(1 / 255)


def shape_mask(s: Shape, w: int, h: int) -> np.ndarray:
    """Coverage of shape ``s`` on a ``w`` x ``h`` image, float32 (h, w) in [0, 1]."""
    return _rasterise([(_place(p, s), f) for p, f in _outline(s.name, s.detail)], w, h)


# ---- colour and texture -----------------------------------------------------------------


def _lum(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _color_with_luminance(rng: np.random.Generator, target: float) -> tuple[float, float, float]:
    """A random colour whose luminance is exactly ``target`` (mix towards black or white)."""
    sat = rng.uniform(0.0, 1.0)
    base = rng.random(3)
    c = (1 - sat) * base.mean() + sat * base  # desaturate by a random amount
    lum = _lum(c)
    if lum > target:
        c = c * (target / max(lum, 1e-6))
    else:
        c = c + (1 - c) * ((target - lum) / max(1 - lum, 1e-6))
    r, g, b = (float(v) for v in np.clip(c, 0, 1))
    return r, g, b


def _band_color(rng, light: bool):
    lo, hi = _LIGHT if light else _DARK
    return _color_with_luminance(rng, rng.uniform(lo, hi))


@functools.lru_cache(maxsize=8)
def _coords(w: int, h: int):
    x = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def background(rng: np.random.Generator, w: int, h: int, *, light: bool, kind: str | None = None) -> np.ndarray:
    """A textured background in one luminance band, float32 (h, w, 3) in [0, 1]."""
    kind = kind or _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))]
    c1 = np.array(_band_color(rng, light), np.float32)
    if kind == "flat":
        return np.broadcast_to(c1, (h, w, 3)).copy()
    c2 = np.array(_band_color(rng, light), np.float32)
    x, y = _coords(w, h)
    theta = rng.uniform(0, math.pi)
    along = x * math.cos(theta) + y * math.sin(theta)
    if kind == "gradient":
        t = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    elif kind == "stripes":
        period = rng.uniform(0.06, 0.25) * min(w, h)
        t = 0.5 + 0.5 * np.sin(along * (2 * math.pi / period) + rng.uniform(0, 2 * math.pi))
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
    elif kind == "noise":
        cells = int(rng.integers(3, 9))
        grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        t = np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), np.float32) / 255
    elif kind == "checks":
        p = rng.uniform(0.08, 0.2) * min(w, h)
        t = ((np.floor(x / p) + np.floor(y / p)) % 2).astype(np.float32)
    else:
        raise OptionError(f"unknown background {kind!r}", hint=f"pick one of {', '.join(_BACKGROUNDS)}")
    return c1 + (c2 - c1) * t[..., None]


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    # Drawing fresh Gaussian noise costs more than the rest of an image; a fixed
    # bank read at a random offset is as good for pixel noise and ~free.
    bank = np.random.default_rng(20240601).standard_normal((256, 256, 3), dtype=np.float32)
    bank.flags.writeable = False
    return bank


def _gaussian_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal((h, w, 3), dtype=np.float32)
    y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
    return bank[y : y + h, x : x + w]


# ---- scenes -----------------------------------------------------------------------------


def _wh(size: Size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        w = h = int(size)
    else:
        w, h = (int(v) for v in size)
    if w < 16 or h < 16:
        raise OptionError(f"image size must be at least 16x16, got {w}x{h}")
    return w, h


def random_shape(
    name: str,
    rng: np.random.Generator,
    size: Size = 96,
    *,
    light: bool,
    scale: tuple[float, float] = (0.24, 0.42),
    margin: float = 0.07,
) -> Shape:
    """A shape of class ``name`` at a random place, size, angle and aspect.

    ``scale`` bounds the radius as a fraction of the short side; the shape stays
    ``margin`` (fraction of the short side) inside a centred square, which is what a
    centre crop keeps.  ``light`` picks the shape's luminance band.
    """
    w, h = _wh(size)
    short = min(w, h)
    aspect = float(math.exp(rng.uniform(-0.1, 0.1)))  # up to 1.22:1 overall
    radius = rng.uniform(*scale) * short
    reach = radius * max(aspect, 1 / aspect)
    half = short / 2 - margin * short
    reach = min(reach, half)
    radius = reach / max(aspect, 1 / aspect)
    free = half - reach
    lo_d, hi_d = _DETAIL.get(name, (None, None))
    return Shape(
        name=name,
        cx=w / 2 + rng.uniform(-free, free),
        cy=h / 2 + rng.uniform(-free, free),
        radius=float(radius),
        angle=float(rng.uniform(0, 2 * math.pi)),
        aspect=aspect,
        color=_band_color(rng, light),
        detail=None if lo_d is None or hi_d is None else float(rng.uniform(lo_d, hi_d)),
        shading=float(rng.uniform(0, 0.5)) if rng.random() < 0.5 else 0.0,
    )


def random_occluder(s: Shape, rng: np.random.Generator, *, light: bool) -> Occluder:
    """A blob over the edge of ``s``: a piece of it goes missing but most stays visible."""
    phi = rng.uniform(0, 2 * math.pi)
    dist = s.radius * rng.uniform(0.75, 1.05)
    # a background-band colour reads as a bite; a mid tone as a thing in front
    color = _band_color(rng, light) if rng.random() < 0.7 else _color_with_luminance(rng, 0.5)
    return Occluder(
        cx=s.cx + dist * math.cos(phi),
        cy=s.cy + dist * math.sin(phi),
        rx=s.radius * rng.uniform(0.2, 0.38),
        ry=s.radius * rng.uniform(0.2, 0.38),
        angle=float(rng.uniform(0, math.pi)),
        color=color,
        ellipse=bool(rng.random() < 0.5),
    )


def _occluder_mask(o: Occluder, w: int, h: int) -> np.ndarray:
    unit = _ngon(48) if o.ellipse else _ngon(4, math.pi / 4) * math.sqrt(2)
    p = unit * np.array([o.rx, o.ry])
    c, si = math.cos(o.angle), math.sin(o.angle)
    pts = np.stack([o.cx + p[:, 0] * c - p[:, 1] * si, o.cy + p[:, 0] * si + p[:, 1] * c], axis=1)
    return _rasterise([(pts, 255)], w, h)


def render(
    shapes: Sequence[Shape],
    rng: np.random.Generator,
    size: Size = 96,
    *,
    light_background: bool,
    background_kind: str | None = None,
    occluders: Sequence[Occluder] = (),
    noise: float | None = None,
    blur: float | None = None,
) -> Image.Image:
    """Paint ``shapes`` (then ``occluders``) over a random background → RGB image.

    ``noise``: std of Gaussian pixel noise in [0, 1] units (None: random 0-0.05);
    ``blur``: Gaussian blur radius in pixels (None: 25 % chance of 0.4-0.9).
    """
    w, h = _wh(size)
    img = background(rng, w, h, light=light_background, kind=background_kind)
    x, y = _coords(w, h) if any(s.shading for s in shapes) else (None, None)
    for s in shapes:
        a = shape_mask(s, w, h)[..., None]
        ink = np.array(s.color, np.float32)
        if s.shading and x is not None and y is not None:
            theta = rng.uniform(0, 2 * math.pi)
            t = ((x - s.cx) * math.cos(theta) + (y - s.cy) * math.sin(theta)) / (2 * s.radius)
            ink = ink * (1 + s.shading * 0.5 * np.clip(t, -1, 1))[..., None]
        img += (ink - img) * a
    for o in occluders:
        a = _occluder_mask(o, w, h)[..., None]
        img += (np.array(o.color, np.float32) - img) * a
    if noise is None:
        noise = rng.uniform(0.0, 0.05)
    if noise > 0:
        img += _gaussian_noise(rng, h, w) * np.float32(noise)
    out = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    if blur is None:
        blur = rng.uniform(0.4, 0.9) if rng.random() < 0.25 else 0.0
    if blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    return out


def draw(class_name: str, rng: np.random.Generator, size: Size = 96, *, occlude: bool | None = None) -> Image.Image:
    """One random image of ``class_name`` (RGB, ``size`` px or (width, height)).

    ``occlude``: None draws an occluder 30 % of the time; True/False force it.
    """
    return draw_with_mask(class_name, rng, size, occlude=occlude)[0]


def draw_with_mask(
    class_name: str, rng: np.random.Generator, size: Size = 96, *, occlude: bool | None = None
) -> tuple[Image.Image, np.ndarray]:
    """:func:`draw` plus where the object is: a bool (h, w) mask of the shape's visible pixels
    (covered at least half, and not under the occluder).  Same pixels as :func:`draw` for
    the same ``rng`` state; the pointing game of ``clsviz.explain`` scores saliency maps on it."""
    if class_name not in CLASSES:
        raise OptionError(f"unknown class {class_name!r}", hint=f"pick one of {', '.join(CLASSES)}")
    light_bg = bool(rng.random() < 0.5)
    s = random_shape(class_name, rng, size, light=not light_bg)
    if occlude is None:
        occlude = bool(rng.random() < 0.3)
    occ = [random_occluder(s, rng, light=light_bg)] if occlude else []
    img = render([s], rng, size, light_background=light_bg, occluders=occ)
    w, h = _wh(size)
    mask = shape_mask(s, w, h) >= 0.5
    for o in occ:
        mask &= _occluder_mask(o, w, h) < 0.5
    return img, mask


def _image_rng(seed: int, index: int) -> np.random.Generator:
    # one stream per image: image i is the same whatever else is drawn
    return np.random.default_rng([int(seed), int(index)])


def _labels(n: int, seed: int) -> np.ndarray:
    """Balanced labels (counts differ by at most one), shuffled by ``seed``."""
    y = np.arange(n, dtype=np.int64) % len(CLASSES)
    return np.random.default_rng([int(seed), 2**32 - 1]).permutation(y)


def make_split(n: int, seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with balanced classes → (uint8 array (n, size, size, 3), int64 labels)."""
    if n < 0:
        raise OptionError(f"n must be ≥ 0, got {n}")
    labels = _labels(n, seed)
    w, h = _wh(size)
    out = np.empty((n, h, w, 3), np.uint8)
    for i, y in enumerate(labels):
        out[i] = np.asarray(draw(CLASSES[y], _image_rng(seed, i), (w, h)))
    return out, labels


def iter_images(n: int, seed: int, size: int = 96):
    """Like :func:`make_split`, one ``(PIL.Image, label)`` at a time (no big array)."""
    for i, y in enumerate(_labels(n, seed)):
        yield draw(CLASSES[y], _image_rng(seed, i), size), int(y)


def write_folder(
    folder, n_per_class: int, seed: int, *, layout: str = "folders", size: int = 96, ext: str = ".png"
) -> list[tuple[Path, str]]:
    """Write a labelled image folder; returns ``[(path, class_name), ...]``.

    ``layout="folders"``: ``folder/<class>/<class>_0000.png``.
    ``layout="labels_txt"``: ``folder/img_00000.png`` + ``folder/labels.txt`` holding
    ``filename class_name`` per line.
    """
    if layout not in ("folders", "labels_txt"):
        raise OptionError(f"layout must be 'folders' or 'labels_txt', got {layout!r}")
    if n_per_class < 1:
        raise OptionError(f"n_per_class must be ≥ 1, got {n_per_class}")
    ext = ext if ext.startswith(".") else "." + ext
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, str]] = []
    count = dict.fromkeys(CLASSES, 0)
    for i, (img, y) in enumerate(iter_images(n_per_class * len(CLASSES), seed, size)):
        name = CLASSES[y]
        if layout == "folders":
            path = root / name / f"{name}_{count[name]:04d}{ext}"
            path.parent.mkdir(exist_ok=True)
        else:
            path = root / f"img_{i:05d}{ext}"
        count[name] += 1
        img.save(path, quality=92) if ext.lower() in (".jpg", ".jpeg") else img.save(path)
        written.append((path, name))
    if layout == "labels_txt":
        (root / "labels.txt").write_text("".join(f"{p.name} {c}\n" for p, c in written))
    return written


__all__ = [
    "CLASSES",
    "Shape",
    "Occluder",
    "draw",
    "draw_with_mask",
    "make_split",
    "iter_images",
    "write_folder",
    "render",
    "random_shape",
    "random_occluder",
    "background",
    "shape_mask",
]
