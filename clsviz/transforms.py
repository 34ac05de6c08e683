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


def _to_rgb(img: Image.Image, where: str) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # composite on white, as a viewer would show it
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit samples map to 8 bits by /257 (65535 -> 255), not by the image's own maximum:
        # that would turn a uniform mid-grey (or a dark) picture white.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if img.mode == "I" and lo >= 0 and hi <= 255:
            scaled = arr                                  # 8-bit values held in 32-bit ints
        elif lo >= 0 and hi <= 65535:
            scaled = arr / 257.0
        else:                                             # 32-bit data beyond 16 bits: stretch
            scaled = (arr - lo) / ((hi - lo) or 1.0) * 255.0
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ImageError("image has non-finite float pixels", path=where)
        lo, hi = arr.min(), arr.max()
        arr = (arr - lo) / ((hi - lo) or 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def load_image(image: ImageLike) -> Image.Image:
    """Any supported input → an RGB PIL image with EXIF orientation applied.

    Accepts a path, PIL image, HWC/HW ndarray (uint8, or float in [0, 1]) or raw bytes.
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
            if not p.exists():
                raise ImageError("image file not found", path=p, hint="check the path")
            if p.is_dir():
                raise ImageError("expected an image file, found a folder", path=p,
                                 hint="pass the folder to a command that takes IMG_OR_DIR")
            if p.stat().st_size == 0:
                raise ImageError("image file is empty (0 bytes)", path=p)
            fh = open(p, "rb")
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
            return _to_rgb(img, where)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image is too large to decode safely ({e})", path=where,
                         hint="raise PIL.Image.MAX_IMAGE_PIXELS if you trust it") from e
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
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError("array image has NaN or inf values")
        if a.min() >= 0 and a.max() <= 1.0:
            a = a * 255.0
        arr = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


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
