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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, OptionError
from .safe_io import open_regular
from .schema import check_preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

_INTERP = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a CHW float32 array; stored in ``inference.yml``."""

    resize_short: int | None = 256
    crop_size: int | tuple[int, int] = 224
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.resize_short is not None and int(self.resize_short) < 1:
            raise OptionError(f"resize_short must be ≥ 1, got {self.resize_short}")
        if self.interpolation not in _INTERP:
            raise OptionError(f"interpolation must be one of {sorted(_INTERP)}, got {self.interpolation!r}")
        if any(s == 0 for s in self.std):
            raise OptionError("std must not contain 0")
        check_preprocess(self)  # sizes bounded, scale/mean/std finite (clsviz.schema)

    @property
    def crop_hw(self) -> tuple[int, int]:
        c = self.crop_size
        return (int(c), int(c)) if isinstance(c, (int, np.integer)) else (int(c[0]), int(c[1]))

    # -- PaddleClas inference.yml ------------------------------------------------------
    def to_transform_ops(self) -> list[dict]:
        ops: list[dict] = []
        if self.resize_short:
            ops.append({"ResizeImage": {"resize_short": int(self.resize_short),
                                        "interpolation": self.interpolation}})
        h, w = self.crop_hw
        ops.append({"CropImage": {"size": h if h == w else [w, h]}})
        ops.append({"NormalizeImage": {"scale": float(self.scale), "mean": list(self.mean),
                                       "std": list(self.std), "order": "", "channel_num": 3}})
        ops.append({"ToCHWImage": None})
        return ops

    @classmethod
    def from_transform_ops(cls, ops: Sequence[dict]) -> "Preprocess":
        kw: dict = {"resize_short": None}
        for op in ops or []:
            (name, args), = op.items()
            args = args or {}
            if name == "ResizeImage":
                if "resize_short" in args:
                    kw["resize_short"] = int(args["resize_short"])
                elif "size" in args:  # fixed resize: approximate by short side
                    size = args["size"]
                    kw["resize_short"] = int(min(size) if isinstance(size, (list, tuple)) else size)
                if args.get("interpolation") in _INTERP:
                    kw["interpolation"] = args["interpolation"]
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
        return cls(**kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    # -- the work -----------------------------------------------------------------------
    def resize_crop(self, img: Image.Image) -> Image.Image:
        h, w = self.crop_hw
        interp = _INTERP[self.interpolation]
        if self.resize_short:
            iw, ih = img.size
            s = self.resize_short / min(iw, ih)
            nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
            if (nw, nh) != (iw, ih):
                img = img.resize((nw, nh), interp, reducing_gap=3.0 if s < 0.5 else None)
        iw, ih = img.size
        if iw < w or ih < h:  # too small to crop: scale up so the crop fits
            s = max(w / iw, h / ih)
            img = img.resize((max(w, round(iw * s)), max(h, round(ih * s))), interp)
            iw, ih = img.size
        left, top = (iw - w) // 2, (ih - h) // 2
        return img.crop((left, top, left + w, top + h))

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """HWC uint8 RGB → CHW float32 (one fused multiply-add)."""
        a = (np.float32(self.scale) / np.asarray(self.std, np.float32))
        b = -np.asarray(self.mean, np.float32) / np.asarray(self.std, np.float32)
        out = rgb.astype(np.float32)
        out *= a
        out += b
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def __call__(self, image: ImageLike) -> np.ndarray:
        img = load_image(image)
        return self.normalize(np.asarray(self.resize_crop(img)))


def image_name(image: ImageLike, index: int = 0) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, Image.Image) and getattr(image, "filename", ""):
        return str(image.filename)
    return f"<{type(image).__name__} #{index}>"


def _to_rgb(img: Image.Image, where: str, *, own: bool = False) -> Image.Image:
    """``img`` as RGB.  ``own``: clsviz decoded it, so it may be changed in place (a large image
    is not copied just to apply its EXIF orientation)."""
    if own:
        ImageOps.exif_transpose(img, in_place=True)
    else:
        img = ImageOps.exif_transpose(img)
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
            _check_finite(arr[i:i + step], where)
    lo, hi = (arr.min(), arr.max()) if arr.size else (0, 0)
    band = _band(arr.dtype, lo, hi, where)
    out = np.empty(arr.shape, np.uint8)
    for i in range(0, len(arr), step):
        out[i:i + step] = band(arr[i:i + step])
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
        out[i:i + step] = band(np.asarray(img.crop((0, i, w, min(h, i + step)))))
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
    raise ImageError(f"pixels of dtype {dtype} are not an image", path=where or None,
                     hint="pass uint8, uint16, integer, bool or float pixels")


def _rows(shape: tuple) -> int:
    per_row = max(1, int(np.prod(shape[1:]))) if len(shape) > 1 else 1
    return max(1, _BAND // per_row)


def load_image(image: ImageLike) -> Image.Image:
    """Any supported input → an RGB PIL image with EXIF orientation applied.

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
            return _to_rgb(image, where)
        if isinstance(image, np.ndarray):
            return _to_rgb(_from_array(image), where)
        if isinstance(image, (bytes, bytearray)):
            fh = io.BytesIO(image)
        elif isinstance(image, (str, os.PathLike)):
            p = Path(image)
            if p.is_dir():
                raise ImageError("expected an image file, found a folder", path=p,
                                 hint="pass the folder to a command that takes IMG_OR_DIR")
            fh = open_regular(p, what="image file", error=ImageError)
            if os.fstat(fh.fileno()).st_size == 0:
                fh.close()
                raise ImageError("image file is empty (0 bytes)", path=p)
        else:
            raise ImageError(f"cannot read an image from a {type(image).__name__}",
                             hint="pass a path, PIL.Image, numpy array or bytes")
        with fh:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fh)
                if getattr(img, "is_animated", False):
                    img.seek(0)
                img.load()
            return _to_rgb(img, where, own=True)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        limit = Image.MAX_IMAGE_PIXELS
        raise ImageError(f"image is too large to decode safely ({e})", path=where,
                         hint=f"if you trust it, raise the limit of {limit:,} pixels: CLI --max_pixels N, "
                              "Python PIL.Image.MAX_IMAGE_PIXELS = N") from e
    except MemoryError as e:
        raise ImageError("not enough memory to decode this image", path=where,
                         hint="is it far larger than it looks? (lower --max_pixels)") from e
    except UnidentifiedImageError as e:
        raise ImageError("not an image Pillow can identify", path=where,
                         hint="is this really a JPEG/PNG/BMP/GIF/WebP file?") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error,
            zlib.error) as e:  # IndexError: a truncated animated GIF (Pillow 13, is_animated)
        raise ImageError(f"image is damaged or truncated: {e}", path=where) from e


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW given
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape} is not an image",
                         hint="expected HxW, HxWx3 or HxWx4")
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
            found = sorted(p for p in Path(item).iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError("folder holds no images", path=item,
                                 hint=f"expected files ending in {', '.join(IMAGE_SUFFIXES)}")
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise ImageError("no images given")
    return out
