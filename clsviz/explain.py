"""Why did it say that?  Saliency maps for any classifier: ``clsviz.explain``.

    >>> clf = clsviz.load("bundle/", mode="dygraph")       # the program rebuilt as a Layer
    >>> ex, = clsviz.explain(clf, "cat.jpg")                # Grad-CAM of the top-1 class
    >>> ex.heatmap.shape == ex.size[::-1]                   # the original image's (H, W)
    >>> ex.overlay(alpha=0.5).save("why.png")
    >>> clsviz.explain(clsviz.load("bundle/"), "cat.jpg", method="occlusion")  # any engine

Methods share one call shape (images, target, method knobs with defaults), and every
result has the geometry of the *original* image: the map is computed on the
network's input and mapped back through the resize-short and centre crop of the
model's :class:`~clsviz.transforms.Preprocess` (pixels the crop cut away get 0).

* ``gradcam`` / ``gradcam++`` (Selvaraju et al. 2017; Chattopadhay et al. 2018) need
  gradients, so they run in the training engine: a ``dygraph`` classifier, built from
  a checkpoint or from any inference program rebuilt as a Layer.  One forward and one
  backward pass; the last feature map with a spatial size above 1 is found by
  itself, ``layer=`` names another.
* ``occlusion`` (Zeiler & Fergus 2014) is forward-only: it slides a patch of the
  normalised mean colour over the input and records how much the target's
  probability drops.  It calls only ``preprocess`` and ``forward``, so it runs in
  every mode; the occluded copies go through the engine in batches.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ._paddle import dygraph_mode, paddle
from .archs.layers import SoftmaxHead
from .engines import Classifier, load
from .engines.base import softmax
from .errors import BackendUnavailable, ClsvizError, OptionError
from .formats.rebuild import _layer_class
from .transforms import Images, PathLike, Preprocess, expand_images, image_name, load_image

METHODS = ("gradcam", "gradcam++", "occlusion")
GRADIENT_METHODS = ("gradcam", "gradcam++")

__all__ = [
    "explain",
    "Explanation",
    "METHODS",
    "GRADIENT_METHODS",
    "to_original",
    "crop_box",
    "occlusion_grid",
    "rank_correlation",
    "peak_of",
    "heatmap_image",
]


# ----------------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class Explanation:
    """One saliency map.  ``heatmap`` is float32 (H, W) in [0, 1] at the original image's size."""

    heatmap: np.ndarray = field(repr=False)
    target: int
    label: str
    score: float  # the target's probability on the unaltered image
    method: str
    mode: str
    image_name: str
    peak: tuple[int, int] = (0, 0)  # (x, y) in original pixels: the centre of the raw map's top cell
    layer: str | None = None  # the feature map Grad-CAM used
    forward_passes: int = 1  # per image
    backward_passes: int = 0
    seconds: float = 0.0  # this image's share of the wall time
    params: tuple = ()  # method knobs as (name, value) pairs, e.g. patch, stride
    image: Image.Image | None = field(default=None, repr=False)  # the original RGB image

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the original image, as PIL spells sizes."""
        return int(self.heatmap.shape[1]), int(self.heatmap.shape[0])

    def overlay(self, alpha: float = 0.5, *, cmap: str = "jet") -> Image.Image:
        """The original image with the heatmap blended over it (``alpha`` = heatmap weight)."""
        if not 0.0 <= float(alpha) <= 1.0:
            raise OptionError(f"alpha must be within 0..1, got {alpha!r}")
        colour = heatmap_image(self.heatmap, cmap=cmap)
        if self.image is None:
            return colour
        return Image.blend(self.image.convert("RGB"), colour, float(alpha))

    def to_dict(self) -> dict:
        return {
            "image": self.image_name,
            "method": self.method,
            "mode": self.mode,
            "target": self.target,
            "label": self.label,
            "score": self.score,
            "layer": self.layer,
            "size": list(self.size),
            "peak": list(self.peak),
            "forward_passes": self.forward_passes,
            "backward_passes": self.backward_passes,
            "seconds": self.seconds,
            "params": dict(self.params),
        }

    def _repr_html_(self) -> str:
        return (
            f'<figure style="display:inline-block;margin:4px;text-align:center">'
            f'{overlay_img_tag(self)}<figcaption style="font-size:12px">{html.escape(self.caption())}'
            f"</figcaption></figure>"
        )

    def caption(self) -> str:
        cost = f"{self.forward_passes} fwd" + (f" + {self.backward_passes} bwd" if self.backward_passes else "")
        return f"{self.method} · {self.mode} · {self.label} ({self.score:.0%}) · {cost} · {self.seconds * 1e3:.0f} ms"


def heatmap_image(heatmap: np.ndarray, *, cmap: str = "jet") -> Image.Image:
    """A [0, 1] map → RGB PIL image through a matplotlib colour map."""
    from matplotlib import colormaps

    try:
        cm = colormaps[cmap]
    except KeyError:
        raise OptionError(f"unknown colour map {cmap!r}", hint="e.g. 'jet', 'inferno', 'viridis'") from None
    rgb = cm(np.clip(heatmap, 0, 1))[..., :3]
    return Image.fromarray((rgb * 255 + 0.5).astype(np.uint8), "RGB")


def overlay_img_tag(ex: Explanation, *, max_side: int = 224, alpha: float = 0.5, **attrs) -> str:
    """An ``<img>`` with the overlay inlined as a PNG data URI (for HTML reprs and reports)."""
    img = ex.overlay(alpha)
    s = max_side / max(img.size)
    if s < 1 or max(img.size) < 96:  # tiny images are scaled up so the map can be seen
        img = img.resize(
            (max(1, round(img.width * s)), max(1, round(img.height * s))),
            Image.Resampling.BILINEAR if s < 1 else Image.Resampling.NEAREST,
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    extra = "".join(f' {k.replace("_", "-")}="{html.escape(str(v))}"' for k, v in attrs.items())
    return (
        f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}" '
        f'width="{img.width}" height="{img.height}" alt="{html.escape(ex.caption())}"{extra}>'
    )


# ----------------------------------------------------------------------------- geometry
def crop_box(pre: Preprocess, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Where the network's input lies in the original image: ``(left, top, right, bottom)``
    in original pixels, following :meth:`Preprocess.resize_crop` (resize-short, then the
    scale-up of images too small to crop, then the centre crop)."""
    iw, ih = int(size[0]), int(size[1])
    ch, cw = pre.crop_hw
    nw, nh = iw, ih
    if pre.resize_short:
        s = pre.resize_short / min(iw, ih)
        nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    if nw < cw or nh < ch:
        s = max(cw / nw, ch / nh)
        nw, nh = max(cw, round(nw * s)), max(ch, round(nh * s))
    left, top = (nw - cw) // 2, (nh - ch) // 2
    sx, sy = nw / iw, nh / ih
    return left / sx, top / sy, (left + cw) / sx, (top + ch) / sy


def _axis_weights(n_out: int, lo: float, hi: float, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear weights sampling a map of n_in cells that spans original pixels
    [lo, hi); rows of pixels outside it are 0."""
    centres = np.arange(n_out, dtype=np.float64) + 0.5
    inside = (centres >= lo) & (centres < hi)
    u = (centres - lo) / (hi - lo) * n_in - 0.5  # in cell-index space
    u = np.clip(u, 0, n_in - 1)
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    f = u - i0
    w = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(w, (rows, i0), 1 - f)
    np.add.at(w, (rows, i1), f)
    w[~inside] = 0
    return w


def to_original(cam: np.ndarray, pre: Preprocess, size: tuple[int, int]) -> np.ndarray:
    """A map over the network's input (any resolution: a 7×7 feature map or the 224×224
    crop) → float32 (H, W) over the original image of ``size`` (W, H), bilinear, 0 outside
    the crop, rescaled to [0, 1]."""
    cam = np.asarray(cam, np.float64)
    x0, y0, x1, y1 = crop_box(pre, size)
    wy = _axis_weights(int(size[1]), y0, y1, cam.shape[0])
    wx = _axis_weights(int(size[0]), x0, x1, cam.shape[1])
    return _unit(wy @ cam @ wx.T)


def peak_of(cam: np.ndarray, pre: Preprocess, size: tuple[int, int]) -> tuple[int, int]:
    """(x, y) in original pixels of the centre of a raw map's top cell.  Its upsampled copy has
    a plateau there (bilinear sampling is flat beyond the outer cell centres), so the peak is
    taken at the map's own resolution."""
    cam = np.asarray(cam)
    i, j = np.unravel_index(int(np.argmax(cam)), cam.shape)
    x0, y0, x1, y1 = crop_box(pre, size)
    x = x0 + (j + 0.5) / cam.shape[1] * (x1 - x0)
    y = y0 + (i + 0.5) / cam.shape[0] * (y1 - y0)
    return min(int(x), int(size[0]) - 1), min(int(y), int(size[1]) - 1)


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.maximum(np.nan_to_num(np.asarray(m, np.float64)), 0)
    top = m.max() if m.size else 0.0
    return (m / top if top > 0 else m).astype(np.float32)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (average ranks for ties), in numpy."""

    def ranks(v):
        v = np.asarray(v, np.float64).ravel()
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        _, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=r)
        return sums[inv] / counts[inv]

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den else 0.0


# ----------------------------------------------------------------------------- entry point
def explain(
    model_or_classifier: Classifier | PathLike,
    images: Images,
    *,
    method: str = "gradcam",
    target: int | Sequence[int | None] | None = None,
    layer: str | None = None,
    patch: int | None = None,
    stride: int | None = None,
    batch_size: int = 32,
    mode: str | None = None,
    **load_kwargs,
) -> list[Explanation]:
    """Saliency maps of ``images`` (path, PIL, array, or a list/folder of them), one per image.

    ``model_or_classifier``: a :class:`~clsviz.engines.base.Classifier`, or a path that
    :func:`clsviz.load` accepts (loaded in ``mode``, default ``dygraph`` for the gradient
    methods and ``predictor`` for occlusion, with ``load_kwargs``; closed afterwards).
    ``method``: ``gradcam``, ``gradcam++`` or ``occlusion``.  ``target``: the class id to
    explain, one per image, or ``None`` for each image's top-1.  ``layer``: the feature map
    Grad-CAM uses (a sublayer name, or a program variable for rebuilt programs).
    ``patch``/``stride``: occlusion's square patch and step in input pixels (``None``: an
    eighth of the input's short side, and half the patch).  ``batch_size``: occluded copies
    per engine call.
    """
    if method not in METHODS:
        raise OptionError(f"unknown method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
    if method in GRADIENT_METHODS and (patch is not None or stride is not None):
        raise OptionError("patch and stride are occlusion's knobs", hint="pass method='occlusion'")
    if method == "occlusion" and layer is not None:
        raise OptionError(
            "layer= chooses Grad-CAM's feature map; occlusion works on the input",
            hint="pass method='gradcam' or drop layer=",
        )
    for name, v in (("patch", patch), ("stride", stride), ("batch_size", batch_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise OptionError(f"{name} must be an integer ≥ 1, got {v!r}")

    own = not isinstance(model_or_classifier, Classifier)
    clf: Classifier
    if not isinstance(model_or_classifier, Classifier):
        clf = load(
            model_or_classifier, mode=mode or ("dygraph" if method in GRADIENT_METHODS else "predictor"), **load_kwargs
        )
    else:
        if mode is not None or load_kwargs:
            raise OptionError(
                "mode= and load options apply when explain() loads the model itself",
                hint="pass a path, or build the classifier with clsviz.load(...)",
            )
        clf = model_or_classifier
    try:
        items = expand_images(images)
        originals = [load_image(x) for x in items]
        names = [image_name(x, i) for i, x in enumerate(items)]
        targets = _targets(target, len(items), clf.class_num)
        if method in GRADIENT_METHODS:
            return _gradient_method(clf, originals, names, targets, layer=layer, plus=method == "gradcam++")
        return _occlusion(clf, originals, names, targets, patch=patch, stride=stride, batch_size=batch_size)
    finally:
        if own:
            clf.close()


def _targets(target, n: int, class_num: int | None) -> list[int | None]:
    if target is None:
        out: list = [None] * n
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        out = [int(target)] * n
    elif isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        out = [None if t is None else t for t in target]
        if len(out) != n:
            raise OptionError(
                f"got {len(out)} targets for {n} images", hint="pass one target per image, or one for all"
            )
    else:
        raise OptionError(f"target must be a class id, a list of them, or None; got {target!r}")
    for t in out:
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer))):
            raise OptionError(f"target must be an integer class id, got {t!r}")
        if t is not None:
            _check_target(int(t), class_num)
    return [None if t is None else int(t) for t in out]


def _check_target(t: int, class_num: int | None) -> None:
    if class_num is not None and not 0 <= t < class_num:
        raise OptionError(
            f"target class {t} is out of range: the model has {class_num} classes (0..{class_num - 1})",
            hint="target=None explains each image's top-1 class",
        )


def _probs(clf, outputs: np.ndarray) -> np.ndarray:
    outputs = np.asarray(outputs, np.float64)
    return outputs if clf.config.softmax else softmax(outputs)


def _fill_targets(targets, probs) -> list[int]:
    out = []
    for t, p in zip(targets, probs):
        if t is None:
            t = int(np.argmax(p))
        _check_target(t, p.shape[-1])
        out.append(t)
    return out


def _as_nchw(batch: np.ndarray, pre: Preprocess) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """A preprocessed batch as a writable NCHW view plus the function that lays an NCHW batch
    out as the engine takes it (NCHW, NHWC or flat, per ``Preprocess.layout``)."""
    h, w = pre.crop_hw
    layout = getattr(pre, "layout", "NCHW")
    if layout == "NHWC" or (batch.ndim == 4 and batch.shape[1:3] == (h, w) and batch.shape[2:] != (h, w)):
        return (
            np.ascontiguousarray(batch.transpose(0, 3, 1, 2)),
            lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)),
        )
    if layout == "flat" or batch.ndim == 2:
        return batch.reshape(len(batch), -1, h, w).copy(), lambda a: a.reshape(len(a), -1)
    return batch, lambda a: a


def _result(clf, method, heat, target, probs, name, original, **kw) -> Explanation:
    pre = clf.config.preprocess
    return Explanation(
        heatmap=to_original(heat, pre, original.size),
        peak=peak_of(heat, pre, original.size),
        target=target,
        label=clf.config.label(target),
        score=float(probs[target]),
        method=method,
        mode=clf.mode,
        image_name=name,
        image=original,
        **kw,
    )


# ----------------------------------------------------------------------------- occlusion
def occlusion_grid(h: int, w: int, patch: int | None = None, stride: int | None = None) -> tuple[int, int, list]:
    """``(patch, stride, [(top, left), ...])``: patch positions covering an h×w input, the last
    row and column flush with the edges."""
    p = patch or max(2, round(min(h, w) / 8))
    p = min(p, h, w)
    s = stride or max(1, p // 2)

    def starts(n):
        v = list(range(0, n - p + 1, s))
        if v[-1] != n - p:
            v.append(n - p)
        return v

    return p, s, [(y, x) for y in starts(h) for x in starts(w)]


def _occlusion(clf, originals, names, targets, *, patch, stride, batch_size) -> list[Explanation]:
    t0 = time.perf_counter()
    pre = clf.config.preprocess
    raw = np.asarray(clf.preprocess(originals))
    batch, lay_out = _as_nchw(raw, pre)
    h, w = batch.shape[2:]
    p, s, grid = occlusion_grid(h, w, patch, stride)
    base = _probs(clf, clf.run_batches(raw))
    targets = _fill_targets(targets, base)
    out = []
    for i, x in enumerate(batch):
        ti = time.perf_counter()
        drop_sum = np.zeros((h, w), np.float64)
        count = np.zeros((h, w), np.float64)
        # 0 after normalising is the data set's mean colour; integer inputs get the image's own mean
        fill = (
            np.rint(x.mean(axis=(1, 2), keepdims=True)).astype(x.dtype)
            if x.dtype.kind in "iu"
            else np.zeros((x.shape[0], 1, 1), x.dtype)
        )
        for start in range(0, len(grid), batch_size):
            pos = grid[start : start + batch_size]
            copies = np.repeat(x[None], len(pos), axis=0)
            for k, (top, left) in enumerate(pos):
                copies[k, :, top : top + p, left : left + p] = fill
            probs = _probs(clf, clf.check_output(clf.forward(lay_out(copies)), len(pos)))[:, targets[i]]
            for (top, left), q in zip(pos, probs):
                drop_sum[top : top + p, left : left + p] += base[i, targets[i]] - q
                count[top : top + p, left : left + p] += 1
        heat = drop_sum / np.maximum(count, 1)
        share = (time.perf_counter() - ti) + (ti - t0) / len(batch) if i == 0 else time.perf_counter() - ti
        out.append(
            _result(
                clf,
                "occlusion",
                heat,
                targets[i],
                base[i],
                names[i],
                originals[i],
                forward_passes=len(grid) + 1,
                seconds=share,
                params=(("patch", p), ("stride", s), ("positions", len(grid))),
            )
        )
    return out


# ----------------------------------------------------------------------------- Grad-CAM
def _gradient_net(clf, method: str):
    net = getattr(clf, "net", None)
    if not isinstance(net, paddle.nn.Layer):
        raise BackendUnavailable(
            f"{method} needs gradients, and the {clf.mode!r} engine has none",
            hint="use method='occlusion' (forward-only, every mode), or load the model with "
            "mode='dygraph' (an inference program is rebuilt as a Layer)",
        )

    return net.net if isinstance(net, SoftmaxHead) else net  # Grad-CAM explains the logit


def _FLOATS():

    return (paddle.float32, paddle.float16, paddle.bfloat16, paddle.float64)


class _Recorder:
    """Records feature maps during one forward: sublayer outputs (forward hooks) or, for a
    rebuilt program, every op output (its ``tap``)."""

    def __init__(self, net):
        self.net = net
        self.records: list[tuple[str, Any]] = []
        self._hooks: list = []

    def __enter__(self):
        if isinstance(self.net, _layer_class()):
            self.net.tap = self._keep
        else:
            for name, sub in self.net.named_sublayers():
                self._hooks.append(sub.register_forward_post_hook(self._hook(name)))
        return self

    def _hook(self, name):
        def hook(layer, inputs, output):
            self._keep(name, output)

        return hook

    def _keep(self, name, value):
        if hasattr(value, "shape") and len(value.shape) == 4:
            if value.stop_gradient and value.dtype in _FLOATS():
                value.stop_gradient = False  # integer input + constant weights: start the graph here
            self.records.append((name, value))

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        if getattr(self.net, "tap", None) is not None:
            self.net.tap = None
        return False

    def spatial(self) -> list[str]:
        names: list[str] = []
        for name, t in self.records:
            if t.shape[2] * t.shape[3] > 1 and name not in names:
                names.append(name)
        return names

    def pick(self, layer: str | None):
        if layer is not None:
            found = [t for n, t in self.records if n == layer]
            if not found:
                valid = self.spatial()
                raise OptionError(
                    f"no layer {layer!r} with a 4-D output in this network",
                    hint="feature maps near the end: " + ", ".join(repr(n) for n in valid[-6:]),
                )
            return layer, found[-1]
        spatial = [(n, t) for n, t in self.records if t.shape[2] * t.shape[3] > 1]
        if not spatial:
            raise OptionError(
                "the network has no feature map with a spatial size above 1", hint="use method='occlusion'"
            )
        last = spatial[-1][1]
        # containers report their last child's tensor: name the innermost layer that made it
        name = next(n for n, t in spatial if t is last)
        return name, last


def _gradient_method(clf, originals, names, targets, *, layer, plus) -> list[Explanation]:
    method = "gradcam++" if plus else "gradcam"
    net = _gradient_net(clf, method)
    t0 = time.perf_counter()
    batch = np.ascontiguousarray(clf.preprocess(originals))
    with clf.threads_scope(), dygraph_mode():
        x = paddle.to_tensor(batch, place=getattr(clf, "place", None))
        if batch.dtype.kind == "f":
            x.stop_gradient = False  # a rebuilt program holds its weights as constants
        with paddle.enable_grad(), _Recorder(net) as rec:
            logits = net(x)
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        used, feat = rec.pick(layer)
        probs = softmax(logits.numpy())  # the SoftmaxHead, if any, was set aside above
        tgt = _fill_targets(targets, probs)
        onehot = paddle.to_tensor(np.eye(logits.shape[-1], dtype=np.float32)[tgt])
        score = (logits * onehot).sum()
        (grad,) = paddle.grad(score, feat)
        a, g = feat.numpy().astype(np.float64), grad.numpy().astype(np.float64)
    cams = _gradcam_pp(a, g) if plus else _gradcam(a, g)
    share = (time.perf_counter() - t0) / len(originals)
    return [
        _result(
            clf,
            method,
            cams[i],
            tgt[i],
            probs[i],
            names[i],
            originals[i],
            layer=used,
            forward_passes=1,
            backward_passes=1,
            seconds=share,
            params=(("feature_map", "x".join(map(str, a.shape[2:]))),),
        )
        for i in range(len(originals))
    ]


def _gradcam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    w = g.mean(axis=(2, 3), keepdims=True)
    return np.maximum((w * a).sum(axis=1), 0)


def _gradcam_pp(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    g2, g3 = g**2, g**3
    denom = 2 * g2 + a.sum(axis=(2, 3), keepdims=True) * g3
    alpha = g2 / np.where(denom != 0, denom, 1)
    w = (alpha * np.maximum(g, 0)).sum(axis=(2, 3), keepdims=True)
    return np.maximum((w * a).sum(axis=1), 0)


# ----------------------------------------------------------------------------- for reports and widgets
def has_gradients(clf) -> bool:
    """Can ``clf`` run the gradient methods (a training-engine Layer)?"""

    return isinstance(getattr(clf, "net", None), paddle.nn.Layer)


def cheap_explain(clf, images, *, target=None) -> list[Explanation]:
    """The cheapest honest map ``clf`` can give: Grad-CAM where it has gradients (1 forward +
    1 backward), else occlusion with non-overlapping patches (65 forward passes)."""
    if has_gradients(clf):
        return explain(clf, images, method="gradcam", target=target)
    h, w = clf.config.preprocess.crop_hw
    p = max(2, round(min(h, w) / 8))
    return explain(clf, images, method="occlusion", target=target, patch=p, stride=p)


def gallery_html(rows: Sequence[tuple[str, Sequence[Explanation]]], *, max_side: int = 160) -> str:
    """Rows of overlays: ``[(caption HTML, [Explanation, ...]), ...]``, one row per image."""
    out = []
    for caption, exs in rows:
        figs = "".join(
            f'<figure style="margin:0;text-align:center">{overlay_img_tag(ex, max_side=max_side)}'
            f'<figcaption style="font-size:12px;max-width:{max_side}px">{html.escape(ex.method)} · '
            f"{html.escape(ex.mode)}<br>{html.escape(ex.label)} ({ex.score:.0%})</figcaption></figure>"
            for ex in exs
        )
        out.append(
            f'<div class="explain-row" style="display:flex;gap:10px;align-items:flex-start;'
            f'margin:8px 0"><div style="width:180px;font-size:13px">{caption}</div>{figs}</div>'
        )
    return "".join(out)


def report_section(images, classifiers, *, captions=None, limit: int = 6) -> str:
    """HTML for a report: for up to ``limit`` images, the cheap map of each classifier (a dict
    ``{name: Classifier}``) side by side, each explaining that classifier's own top-1.  An
    engine that cannot explain is named, not fatal to the report."""

    items = list(images)[:limit]
    if not items:
        return ""
    captions = list(captions or [html.escape(image_name(x, i)) for i, x in enumerate(items)])[:limit]
    per_clf, notes = {}, []
    for name, clf in classifiers.items():
        try:
            per_clf[name] = cheap_explain(clf, items)
        except ClsvizError as e:
            notes.append(f"{html.escape(name)}: {html.escape(str(e))}")
    rows = [(captions[i], [exs[i] for exs in per_clf.values()]) for i in range(len(items))]
    legend = (
        "<p class='legend'>Where each engine looked: Grad-CAM where the engine has gradients, "
        "occlusion with non-overlapping patches elsewhere; red = more evidence for the predicted "
        "class, blue = none (also outside the centre crop the model sees).</p>"
    )
    note = "".join(f"<p class='legend'>not explained by {n}</p>" for n in notes)
    return legend + note + gallery_html(rows)
