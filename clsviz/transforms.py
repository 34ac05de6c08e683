"""Image loading and PaddleClas-compatible preprocessing.

Default pipeline (PaddleClas ``ResizeImage`` → ``CropImage`` → ``NormalizeImage``
→ ``ToCHWImage``): resize the short side to 256, centre-crop 224, scale by
1/255, subtract the ImageNet mean and divide by its std, HWC → CHW, RGB.
Everything is vectorised (PIL resize + one fused numpy multiply-add).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BackendUnavailable, FormatError, ImageError, OptionError
from .safe_io import open_regular
from .schema import check_preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]
#: one image, a folder, or a list of them (what every ``images`` argument takes)
Images = Union[ImageLike, Iterable[ImageLike]]
#: a path as the public functions take it
PathLike = Union[str, os.PathLike]

_INTERP = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "area": Image.Resampling.BOX,  # PIL has no area filter; box averaging is its equivalent
}
#: clsviz/PaddleClas interpolation name -> the name PaddleX's inference.yml spells (both ways)
PADDLEX_INTERP = {
    "nearest": "NEAREST",
    "bilinear": "LINEAR",
    "bicubic": "BICUBIC",
    "area": "AREA",
    "lanczos": "LANCZOS4",
}
_FROM_PADDLEX = {v: k for k, v in PADDLEX_INTERP.items()}
BACKENDS = ("pil", "cv2")
LAYOUTS = ("NCHW", "NHWC", "flat")
_INT_DTYPES = ("uint8", "int8", "int16", "int32", "int64")
_DTYPES = ("float32", "float64", "float16", *_INT_DTYPES)


def interpolation_name(name) -> str | None:
    """Any spelling clsviz, PaddleClas or PaddleX writes (``bilinear``, ``LINEAR``, ``Lanczos``,
    cv2's ``INTER_LINEAR`` or its int code) → clsviz's name; None if unknown."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return {0: "nearest", 1: "bilinear", 2: "bicubic", 3: "area", 4: "lanczos"}.get(name)
    if not isinstance(name, str):
        return None
    n = name.strip()
    if n.upper().startswith("INTER_"):
        n = n[6:]
    if n.upper() in _FROM_PADDLEX:
        return _FROM_PADDLEX[n.upper()]
    n = n.lower()
    return n if n in _INTERP else ("lanczos" if n == "lanczos4" else None)


@dataclass(frozen=True, repr=False)
class Preprocess:
    """How an image becomes the array one program input takes; stored in ``inference.yml``.

    Geometry and normalisation are PaddleClas's (resize short side → centre crop → ``x * scale``
    → ``(x - mean) / std``).  The rest follows the program's input signature:

    * ``channels``: 1 = grey (ITU-R 601-2 luma), 3 = RGB, 4 = RGBA;
    * ``layout``: ``"NCHW"``, ``"NHWC"`` or ``"flat"`` (the CHW array flattened to ``[C*H*W]``);
    * ``dtype``: float types are normalised; integer types get the pixel values unnormalised;
    * ``backend``: ``"pil"`` (Pillow decode + resize) or ``"cv2"`` (OpenCV, as PaddleClas deploy
      and PaddleX do it: ``cv2.imdecode`` BGR → RGB, alpha dropped, ``cv2.resize``).

    ``print(pre)`` says what it will do.
    """

    resize_short: int | None = 256
    crop_size: int | tuple[int, int] = 224
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    channels: int = 3
    layout: str = "NCHW"
    dtype: str = "float32"
    backend: str = "pil"

    def __post_init__(self):
        if self.resize_short is not None and int(self.resize_short) < 1:
            raise OptionError(f"resize_short must be ≥ 1, got {self.resize_short}")
        name = interpolation_name(self.interpolation)
        if name is None:
            raise OptionError(
                f"interpolation must be one of {sorted(_INTERP)} (or PaddleX's "
                f"{', '.join(PADDLEX_INTERP.values())}), got {self.interpolation!r}"
            )
        object.__setattr__(self, "interpolation", name)
        if any(s == 0 for s in self.std):
            raise OptionError("std must not contain 0")
        if self.channels not in (1, 3, 4):
            raise OptionError(f"channels must be 1 (grey), 3 (RGB) or 4 (RGBA), got {self.channels!r}")
        if self.layout not in LAYOUTS:
            raise OptionError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dtype not in _DTYPES:
            raise OptionError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise OptionError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "cv2":
            _cv2()  # a one-line hint now rather than an ImportError on the first image
        check_preprocess(self)  # sizes bounded, scale/mean/std finite (clsviz.schema)

    @property
    def crop_hw(self) -> tuple[int, int]:
        c = self.crop_size
        return (int(c), int(c)) if isinstance(c, (int, np.integer)) else (int(c[0]), int(c[1]))

    @property
    def integer(self) -> bool:
        """Integer inputs get pixel values as they are, not normalised."""
        return self.dtype in _INT_DTYPES

    @property
    def item_shape(self) -> tuple[int, ...]:
        """The shape of one preprocessed image (the input shape without N)."""
        h, w = self.crop_hw
        c = self.channels
        return {"NCHW": (c, h, w), "NHWC": (h, w, c), "flat": (c * h * w,)}[self.layout]

    def _mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """mean and std per channel: 3 values for a grey input are averaged; an alpha channel
        without its own gets mean 0, std 1 (scaled only)."""
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        c = self.channels
        if len(mean) == c:
            return mean, std
        if len(mean) == 1:
            return np.repeat(mean, c), np.repeat(std, c)
        if c == 1:
            return mean.mean(keepdims=True), std.mean(keepdims=True)
        if c == 4 and len(mean) == 3:
            return np.append(mean, 0.0).astype(np.float32), np.append(std, 1.0).astype(np.float32)
        raise OptionError(f"mean/std have {len(mean)} values for a {c}-channel input")

    # -- PaddleClas / PaddleX inference.yml -----------------------------------------------
    def to_transform_ops(self, *, paddlex: bool = False) -> list[dict]:
        """The ``PreProcess.transform_ops`` list; ``paddlex``: interpolation spelled as PaddleX
        requires (``LINEAR``, …), which PaddleClas deploy reads too."""
        ops: list[dict] = []
        if self.resize_short:
            interp = PADDLEX_INTERP.get(self.interpolation, "LINEAR") if paddlex else self.interpolation
            ops.append({"ResizeImage": {"resize_short": int(self.resize_short), "interpolation": interp}})
        h, w = self.crop_hw
        ops.append({"CropImage": {"size": h if h == w else [w, h]}})
        ops.append(
            {
                "NormalizeImage": {
                    "scale": float(self.scale),
                    "mean": list(self.mean),
                    "std": list(self.std),
                    "order": "",
                    "channel_num": 3,
                }
            }
        )
        ops.append({"ToCHWImage": None})
        return ops

    @classmethod
    def from_transform_ops(cls, ops: Sequence[dict], *, where=None, **kw) -> Preprocess:
        """Read PaddleClas/PaddleX ``transform_ops``; an op clsviz cannot reproduce is an error."""
        kw = {"resize_short": None, **kw}
        for op in ops or []:
            ((name, args),) = op.items()
            args = args or {}
            if name == "ResizeImage":
                if "resize_short" in args:
                    kw["resize_short"] = int(args["resize_short"])
                elif "size" in args:  # fixed resize: approximate by short side
                    size = args["size"]
                    kw["resize_short"] = int(min(size) if isinstance(size, (list, tuple)) else size)
                if args.get("interpolation") is not None:
                    interp = interpolation_name(args["interpolation"])
                    if interp is None:
                        raise FormatError(
                            f"PreProcess.transform_ops: ResizeImage.interpolation "
                            f"{args['interpolation']!r} is not one clsviz knows",
                            path=where,
                            hint=f"use one of {', '.join(PADDLEX_INTERP.values())}",
                        )
                    kw["interpolation"] = interp
            elif name == "CropImage":
                size = args.get("size", 224)
                kw["crop_size"] = (int(size[1]), int(size[0])) if isinstance(size, (list, tuple)) else int(size)
            elif name == "NormalizeImage":
                scale = args.get("scale", 1.0 / 255.0)
                if isinstance(scale, str):  # PaddleClas writes "1.0/255.0"
                    num, _, den = scale.partition("/")
                    scale = float(num) / float(den or 1)
                kw["scale"] = float(scale)
                kw["mean"] = tuple(float(v) for v in args.get("mean", IMAGENET_MEAN))
                kw["std"] = tuple(float(v) for v in args.get("std", IMAGENET_STD))
            elif name not in _PASSIVE_OPS:
                raise FormatError(
                    f"PreProcess.transform_ops has the op {name!r}, which clsviz cannot reproduce",
                    path=where,
                    hint="clsviz runs " + ", ".join(_KNOWN_OPS) + "; remove the op or pass preprocess= to load()",
                )
        return cls(**kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def describe(self) -> str:
        """What this preprocessing does, in one line."""
        h, w = self.crop_hw
        alpha = (
            "alpha kept"
            if self.channels == 4
            else ("alpha dropped" if self.backend == "cv2" else "alpha composited on white")
        )
        steps = [
            f"decode with OpenCV (BGR → RGB, {alpha})" if self.backend == "cv2" else f"decode with Pillow ({alpha})"
        ]
        steps.append({1: "grey (ITU-R 601-2 luma)", 3: "RGB", 4: "RGBA"}[self.channels])
        if self.resize_short:
            steps.append(f"resize short side to {self.resize_short} ({self.interpolation})")
        steps.append(f"centre-crop {h}×{w}")
        if self.integer:
            steps.append(f"pixel values as {self.dtype} (not normalised)")
        else:
            mean, std = self._mean_std()
            steps.append(
                f"× {self.scale:.6g}, − mean {[round(float(v), 4) for v in mean]}, "
                f"÷ std {[round(float(v), 4) for v in std]}"
            )
        steps.append(
            {"NCHW": "CHW", "NHWC": "HWC", "flat": "flattened CHW"}[self.layout]
            + f" {self.dtype} {list(self.item_shape)}"
        )
        return " → ".join(steps)

    def __repr__(self) -> str:
        return f"Preprocess({self.backend}: {self.describe()})"

    # -- the work -----------------------------------------------------------------------
    def _new_size(self, iw: int, ih: int) -> tuple[int, int]:
        # PaddleClas ResizeImage / PaddleX ResizeByShort: Python round of size × short/min
        assert self.resize_short is not None  # callers resize only when it is set
        s = self.resize_short / min(iw, ih)
        return max(1, round(iw * s)), max(1, round(ih * s))

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """PIL backend geometry: resize short side, centre crop."""
        h, w = self.crop_hw
        interp = _INTERP[self.interpolation]
        if self.resize_short:
            iw, ih = img.size
            nw, nh = self._new_size(iw, ih)
            if (nw, nh) != (iw, ih):
                s = self.resize_short / min(iw, ih)
                img = img.resize((nw, nh), interp, reducing_gap=3.0 if s < 0.5 else None)
        iw, ih = img.size
        if iw < w or ih < h:  # too small to crop: scale up so the crop fits
            s = max(w / iw, h / ih)
            img = img.resize((max(w, round(iw * s)), max(h, round(ih * s))), interp)
            iw, ih = img.size
        left, top = (iw - w) // 2, (ih - h) // 2
        return img.crop((left, top, left + w, top + h))

    def resize_crop_array(self, arr: np.ndarray) -> np.ndarray:
        """cv2 backend geometry on an HWC/HW uint8 array (PaddleClas deploy's arithmetic)."""
        cv2 = _cv2()
        h, w = self.crop_hw
        interp = _CV2_INTERP[self.interpolation]
        if self.resize_short:
            ih, iw = arr.shape[:2]
            nw, nh = self._new_size(iw, ih)
            if (nw, nh) != (iw, ih):
                arr = cv2.resize(arr, (nw, nh), interpolation=interp)
        ih, iw = arr.shape[:2]
        if iw < w or ih < h:  # PaddleClas refuses; clsviz scales up so the crop fits
            s = max(w / iw, h / ih)
            arr = cv2.resize(arr, (max(w, round(iw * s)), max(h, round(ih * s))), interpolation=interp)
            ih, iw = arr.shape[:2]
        top, left = (ih - h) // 2, (iw - w) // 2
        return arr[top : top + h, left : left + w]

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """HWC (or HW) uint8 pixels → the input array: normalised (one fused multiply-add) unless
        the input is integer, then laid out as ``layout``."""
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if self.integer:
            out = pixels.astype(self.dtype)
        else:
            mean, std = self._mean_std()
            a = np.float32(self.scale) / std
            b = -mean / std
            out = pixels.astype(np.float32)
            out *= a
            out += b
            if self.dtype != "float32":
                out = out.astype(self.dtype)
        if self.layout == "NHWC":
            return np.ascontiguousarray(out)
        chw = np.ascontiguousarray(out.transpose(2, 0, 1))
        return chw.reshape(-1) if self.layout == "flat" else chw

    def pixels(self, image: ImageLike) -> np.ndarray:
        """The decoded, resized and cropped pixels (HWC uint8; HW for grey) the input is made from."""
        if self.backend == "cv2":
            return self.resize_crop_array(load_array_cv2(image, channels=self.channels))
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[self.channels]
        return np.asarray(self.resize_crop(load_image(image, mode=mode)))

    def __call__(self, image: ImageLike) -> np.ndarray:
        return self.normalize(self.pixels(image))

    def probe(self, n: int = 2, *, seed: int = 0) -> np.ndarray:
        """A batch of ``n`` random inputs of the right shape and dtype, for checks that must not
        depend on images (export and migrate verification, bench, crash probes)."""
        rng = np.random.default_rng(seed)
        shape = (int(n), *self.item_shape)
        if self.integer:
            return rng.integers(0, 256, size=shape).astype(self.dtype)
        return rng.standard_normal(shape, dtype=np.float32).astype(self.dtype)


_KNOWN_OPS = ("DecodeImage", "ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage")
_PASSIVE_OPS = ("DecodeImage", "ToCHWImage")  # decode to RGB and CHW: what clsviz does anyway


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - a core dependency
        raise BackendUnavailable("backend='cv2' needs OpenCV", hint="pip install opencv-python-headless") from e
    return cv2


class _Cv2Interp(dict):
    def __missing__(self, key):
        cv2 = _cv2()
        table = {
            "nearest": cv2.INTER_NEAREST,
            "bilinear": cv2.INTER_LINEAR,
            "bicubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA,
            "box": cv2.INTER_AREA,
            "lanczos": cv2.INTER_LANCZOS4,
        }
        self.update(table)
        return table[key]


_CV2_INTERP = _Cv2Interp()


def image_name(image: ImageLike, index: int = 0) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    filename = getattr(image, "filename", "") if isinstance(image, Image.Image) else ""
    if filename:
        return str(filename)
    return f"<{type(image).__name__} #{index}>"


def _to_mode(img: Image.Image, where: str, *, own: bool = False, mode: str = "RGB") -> Image.Image:
    """``img`` as ``mode``: RGB (alpha composited on white), L (luma of that RGB) or RGBA
    (alpha kept).  ``own``: clsviz decoded it, so it may be changed in place (a large image
    is not copied just to apply its EXIF orientation)."""
    if own:
        ImageOps.exif_transpose(img, in_place=True)
    else:
        img = ImageOps.exif_transpose(img)
    if mode == "L":
        return img if img.mode == "L" else _to_mode(img, where, own=True, mode="RGB").convert("L")
    if mode == "RGBA":
        if img.mode.startswith("I;16") or img.mode in ("I", "F"):
            img = Image.fromarray(_image_to_uint8(img, where))
        return img if img.mode == "RGBA" else img.convert("RGBA")
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # composite on white, as a viewer would show it
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return Image.fromarray(_image_to_uint8(img, where)).convert("RGB")
    return img.convert("RGB")


_BAND = 1 << 22  # values converted at a time: bounds the temporaries of 16-bit/float images


def to_uint8(arr: np.ndarray, *, where: str = "") -> np.ndarray:
    """Pixel values of any dtype → uint8, by the one rule files and arrays share.

    ========================================  ==============================================
    uint8                                     as they are
    bool                                      0 / 255
    uint16 (16-bit PNG/TIFF, grey or colour)  the high byte, ``v >> 8``: what Pillow does for
                                              16-bit colour PNGs, so grey and colour agree
    other integers (32-bit ``I`` images)      0..255 as they are; 0..65535 as 16-bit; beyond,
                                              stretched from their min..max to 0..255
    floats (arrays, 32-bit ``F`` images)      all within 0..1 → ``round(v × 255)``; otherwise
                                              read as 0..255 → ``round(v)``; clipped to 0..255;
                                              NaN or inf is refused
    ========================================  ==============================================

    Works in bands of rows, so a large 16-bit image needs ~1 byte per pixel beyond its input.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    step = _rows(arr.shape)
    if arr.dtype.kind == "f":
        for i in range(0, len(arr), step):
            _check_finite(arr[i : i + step], where)
    lo, hi = (arr.min(), arr.max()) if arr.size else (0, 0)
    band = _band(arr.dtype, lo, hi, where)
    out = np.empty(arr.shape, np.uint8)
    for i in range(0, len(arr), step):
        out[i : i + step] = band(arr[i : i + step])
    return out


def _image_to_uint8(img: Image.Image, where: str) -> np.ndarray:
    """:func:`to_uint8` of a 16/32-bit integer PIL image band by band, without a numpy copy of
    the whole image (a 9400 x 9400 16-bit PNG is 170 MB decoded)."""
    if img.mode == "F":
        return to_uint8(np.asarray(img), where=where)
    w, h = img.size
    lo, hi = img.getextrema()
    band = _band(np.asarray(img.crop((0, 0, w, 1))).dtype, lo, hi, where)
    out = np.empty((h, w), np.uint8)
    step = _rows((h, w))
    for i in range(0, h, step):
        out[i : i + step] = band(np.asarray(img.crop((0, i, w, min(h, i + step)))))
    return out


def _check_finite(a: np.ndarray, where: str) -> None:
    if not np.isfinite(a).all():
        raise ImageError("image has NaN or inf values", path=where or None)


def _band(dtype: np.dtype, lo, hi, where: str):
    """The conversion of one band of rows of ``dtype`` pixels spanning ``lo..hi`` (see to_uint8)."""
    kind = dtype.kind
    if kind == "u" and dtype.itemsize == 2:
        return lambda a: (a >> 8).astype(np.uint8)
    if kind in "ui":
        lo, hi = int(lo), int(hi)
        if lo >= 0 and hi <= 255:
            return lambda a: a.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return lambda a: (a >> 8).astype(np.uint8)
        span = float(hi - lo) or 1.0
        return lambda a: np.rint((a.astype(np.float64) - lo) * (255.0 / span)).astype(np.uint8)
    if kind == "f":
        factor = np.float32(255.0 if lo >= 0 and hi <= 1.0 else 1.0)
        return lambda a: np.rint(np.clip(a.astype(np.float32) * factor, 0, 255)).astype(np.uint8)
    raise ImageError(
        f"pixels of dtype {dtype} are not an image",
        path=where or None,
        hint="pass uint8, uint16, integer, bool or float pixels",
    )


def _rows(shape: tuple) -> int:
    per_row = max(1, int(np.prod(shape[1:]))) if len(shape) > 1 else 1
    return max(1, _BAND // per_row)


def load_image(image: ImageLike, *, mode: str = "RGB") -> Image.Image:
    """Any supported input → a PIL image with EXIF orientation applied: RGB (alpha composited
    on white), or ``mode="L"`` (its ITU-R 601-2 luma) or ``"RGBA"`` (alpha kept).

    Accepts a path, PIL image, HWC/HW/CHW ndarray or raw bytes.  Arrays follow the same
    rule as files of the same mode (:func:`to_uint8`): a uint16 array gives what the same
    pixels saved as a 16-bit PNG give.  Files must be regular files; an image over
    ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb guard, 89,478,485 by
    default; CLI ``--max_pixels``) is refused before it is decoded.
    """
    where = image_name(image)
    try:
        if isinstance(image, Image.Image):
            if getattr(image, "is_animated", False):
                image.seek(0)
            return _to_mode(image, where, mode=mode)
        if isinstance(image, np.ndarray):
            return _to_mode(_from_array(image), where, mode=mode)
        fh: BinaryIO
        if isinstance(image, (bytes, bytearray)):
            fh = io.BytesIO(image)
        elif isinstance(image, (str, os.PathLike)):
            p = Path(image)
            if p.is_dir():
                raise ImageError(
                    "expected an image file, found a folder",
                    path=p,
                    hint="pass the folder to a command that takes IMG_OR_DIR",
                )
            fh = open_regular(p, what="image file", error=ImageError)
            if os.fstat(fh.fileno()).st_size == 0:
                fh.close()
                raise ImageError("image file is empty (0 bytes)", path=p)
        else:
            raise ImageError(
                f"cannot read an image from a {type(image).__name__}",
                hint="pass a path, PIL.Image, numpy array or bytes",
            )
        with fh:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fh)
                if getattr(img, "is_animated", False):
                    img.seek(0)
                img.load()
            return _to_mode(img, where, own=True, mode=mode)
    except ImageError:
        raise
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        MemoryError,
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        KeyError,
        struct.error,
        zlib.error,
    ) as e:  # IndexError: a truncated animated GIF (Pillow 13, is_animated)
        raise _decode_error(e, where) from e


def _decode_error(e: BaseException, where: str) -> ImageError:
    """What Pillow's failure to read an image means, as the one ImageError both decoders raise."""
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageError(
            f"image is too large to decode safely ({e})",
            path=where,
            hint=f"if you trust it, raise the limit of {Image.MAX_IMAGE_PIXELS:,} pixels: "
            "CLI --max_pixels N, Python PIL.Image.MAX_IMAGE_PIXELS = N",
        )
    if isinstance(e, MemoryError):
        return ImageError(
            "not enough memory to decode this image",
            path=where,
            hint="is it far larger than it looks? (lower --max_pixels)",
        )
    if isinstance(e, UnidentifiedImageError):  # before OSError, its base class
        return ImageError(
            "not an image Pillow can identify", path=where, hint="is this really a JPEG/PNG/BMP/GIF/WebP file?"
        )
    return ImageError(f"image is damaged or truncated: {e}", path=where)


def load_array_cv2(image: ImageLike, *, channels: int = 3) -> np.ndarray:
    """An image decoded as PaddleClas deploy and PaddleX decode it: files and bytes with
    ``cv2.imdecode(IMREAD_COLOR)`` (EXIF orientation applied, alpha dropped, 16-bit → 8-bit),
    BGR → RGB.  PIL images and arrays follow the same rule (alpha dropped, not composited).

    ``channels``: 3 → HxWx3 RGB, 1 → HxW grey (``cv2.COLOR_RGB2GRAY``, ITU-R 601-2 luma),
    4 → HxWx4 RGBA (alpha kept; 255 where the image has none).  The size and format checks of
    :func:`load_image` apply (Pillow reads the header first: the decompression-bomb guard).
    """
    cv2 = _cv2()
    where = image_name(image)
    arr = None
    if isinstance(image, (bytes, bytearray, str, os.PathLike)):
        data = _read_image_bytes(image, where)
        _check_header(data, where)
        flag = cv2.IMREAD_UNCHANGED if channels == 4 else cv2.IMREAD_COLOR
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if arr is not None and channels == 4:
            arr = _bgra_to_rgba(to_uint8(arr, where=where), cv2)
        elif arr is not None:
            arr = arr[..., ::-1]  # BGR -> RGB
        else:  # a format OpenCV does not read (GIF frames, …): Pillow decodes it
            image = data
    if arr is None:
        arr = np.asarray(load_image(image, mode="RGBA"))
        if channels != 4:
            arr = arr[..., :3]
    arr = np.ascontiguousarray(arr)
    if channels == 1:
        return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    return arr


def _bgra_to_rgba(arr: np.ndarray, cv2) -> np.ndarray:
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGBA)
    if arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGBA)
    return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)


def _read_image_bytes(image, where: str) -> bytes:
    if isinstance(image, (bytes, bytearray)):
        if not image:
            raise ImageError("image bytes are empty")
        return bytes(image)
    p = Path(image)
    if p.is_dir():
        raise ImageError(
            "expected an image file, found a folder", path=p, hint="pass the folder to a command that takes IMG_OR_DIR"
        )
    with open_regular(p, what="image file", error=ImageError) as fh:
        data = fh.read()
    if not data:
        raise ImageError("image file is empty (0 bytes)", path=p)
    return data


def _check_header(data: bytes, where: str) -> None:
    """Pillow reads the header only: not an image, or over the pixel limit, is refused before
    OpenCV allocates for it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)):
                pass
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        zlib.error,
    ) as e:
        raise _decode_error(e, where) from e


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW given
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape} is not an image", hint="expected HxW, HxWx3 or HxWx4")
    if arr.size == 0:
        raise ImageError("array image is empty")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ImageError("array image has NaN or inf values")
    return Image.fromarray(np.ascontiguousarray(to_uint8(arr)))


def expand_images(images) -> list:
    """Normalise the ``images`` argument into a flat list; folders expand to their images."""
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray, bytes, bytearray)):
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return list(images)
        images = [images]
    elif not hasattr(images, "__iter__"):
        images = [images]  # load_image says what it cannot read
    out: list = []
    for item in images:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            found = sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(
                    "folder holds no images", path=item, hint=f"expected files ending in {', '.join(IMAGE_SUFFIXES)}"
                )
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise ImageError("no images given")
    return out
