"""One schema for everything clsviz reads from a sidecar, and the limits on declared sizes.

:func:`validate_sidecar` checks a parsed ``inference.yml`` before any value is used: every
field's type and range, each ``PreProcess.transform_ops`` entry, and the fields that must
agree (``class_num`` and the label list, the channel count and mean/std).  A bad value is a
:class:`~clsviz.errors.FormatError` that names the field, the value and what is allowed::

    inference.yml: PreProcess.transform_ops[1].CropImage.size is -5; allowed: a whole
    number of pixels from 1 to 4096, or [width, height]

The limits below apply to every size clsviz would allocate for, wherever it was declared
(a sidecar, a program's input shape, an option such as ``--img_size``), and are checked
before any allocation: :func:`check_image_shape`, :func:`check_preprocess`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .errors import FormatError, OptionError

__all__ = [
    "MAX_SIDE",
    "MAX_CHANNELS",
    "MAX_INPUT_VALUES",
    "MAX_CLASSES",
    "validate_sidecar",
    "check_image_shape",
    "check_preprocess",
    "show",
]

#: pixels per side of a model input, a crop or a resize target
MAX_SIDE = 4096
#: channels of a model input (1 grey, 3 RGB, 4 RGBA; more for multispectral models)
MAX_CHANNELS = 64
#: values of one input image, C x H x W: an RGB image of MAX_SIDE x MAX_SIDE (192 MiB as float32)
MAX_INPUT_VALUES = 3 * MAX_SIDE * MAX_SIDE
#: classes of a classifier (ImageNet-21k has 21,841)
MAX_CLASSES = 1 << 20
_MAX_STR = 4096


class _Bad(Exception):
    """A value outside what is allowed (internal): carries the text of what is allowed."""

    def __init__(self, allowed: str, field: str | None = None, value=None):
        super().__init__(allowed)
        self.allowed, self.field, self.value = allowed, field, value


def show(value) -> str:
    """A short ``repr`` for messages."""
    if isinstance(value, (list, tuple, dict)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    r = repr(value)
    return r if len(r) <= 80 else r[:77] + "..."


# ------------------------------------------------------------------ value checkers
def _is_int(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def _int(lo: int, hi: int, what: str = "an integer"):
    allowed = f"{what} from {lo:,} to {hi:,}"

    def check(v):
        if not _is_int(v) or not lo <= v <= hi:
            raise _Bad(allowed)
        return int(v)

    check.allowed = allowed  # type: ignore[attr-defined]  # read by the error messages
    return check


_side = _int(1, MAX_SIDE, "a whole number of pixels")
_resize = _int(1, 2 * MAX_SIDE, "a whole number of pixels")  # resize-short before a crop of up to MAX_SIDE
_SIZE2 = f"{_side.allowed}, or [width, height]"


def _size2(v):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise _Bad(_SIZE2)
        try:
            return [_side(x) for x in v]
        except _Bad:
            raise _Bad(_SIZE2) from None
    try:
        return _side(v)
    except _Bad:
        raise _Bad(_SIZE2) from None


def _number(v, allowed: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _Bad(allowed)
    return float(v)


_SCALE = "a positive finite number, or a fraction such as '1.0/255.0'"


def _scale(v):
    if isinstance(v, str):  # PaddleClas writes "1.0/255.0"
        num, slash, den = v.partition("/")
        try:
            a, b = float(num), float(den) if slash else 1.0
            v = a / b
        except (ValueError, ZeroDivisionError, OverflowError):
            raise _Bad(_SCALE) from None
    v = _number(v, _SCALE)
    if v <= 0:
        raise _Bad(_SCALE)
    return v


def _floats(nonzero: bool, lengths: tuple = (1, 3)):
    *head, last = (str(n) for n in sorted(set(lengths)))
    counts = f"{', '.join(head)} or {last}" if head else last

    def check(v):
        allowed = f"a list of {counts} finite numbers (one per channel, or one for all)" + (
            ", none of them 0" if nonzero else ""
        )
        if not isinstance(v, (list, tuple)) or len(v) not in lengths:
            raise _Bad(allowed)
        out = [_number(x, allowed) for x in v]
        if nonzero and any(x == 0 for x in out):
            raise _Bad(allowed)
        return out

    return check


def _str(v, limit: int = _MAX_STR):
    if not isinstance(v, str) or len(v) > limit:
        raise _Bad(f"a string of at most {limit} characters")
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad("true or false")
    return v


def _opt(check):
    def opt(v):
        return None if v is None else check(v)

    return opt


def _mapping(v, what="a mapping (key: value)"):
    if not isinstance(v, dict):
        raise _Bad(what)
    return v


def _scalar(v):
    if isinstance(v, bool) or v is None or (isinstance(v, int) and abs(v) < 1 << 62):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return v
    if isinstance(v, str) and len(v) <= 256:
        return v
    raise _Bad("a boolean, a number, a string of at most 256 characters, or a short list of them")


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FILE = re.compile(r"^[^/\\\x00]{1,255}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ------------------------------------------------------------------ the sidecar walk
class _Walk:
    """Checks fields of one document; remembers the dotted path for messages."""

    def __init__(self, doc: dict):
        self.doc = doc

    def at(self, path: str, check, *, base=None):
        """``check`` the value at dotted ``path`` (missing → None is passed only to _opt)."""
        node = self.doc if base is None else base
        *parents, last = path.split(".")
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            return None
        value = node[last]
        try:
            return check(value)
        except _Bad as e:
            raise _Bad(e.allowed, e.field or path, value if e.field is None else e.value) from None


def _section(v):
    return None if v is None else _mapping(v)


def _ops(ops, channels: int | None):
    """``PreProcess.transform_ops``: a list of single-key mappings, known ops' arguments checked."""
    allowed = "a list of operations, each a mapping {OpName: {arguments}}"
    if not isinstance(ops, list):
        raise _Bad(allowed)
    for i, op in enumerate(ops):
        where = f"PreProcess.transform_ops[{i}]"
        if not isinstance(op, dict) or len(op) != 1 or not isinstance(next(iter(op)), str):
            raise _Bad(allowed, where, op)
        ((name, args),) = op.items()
        if args is not None and not isinstance(args, dict):
            raise _Bad("a mapping of arguments, or nothing", f"{where}.{name}", args)
        for key, check in _OP_ARGS.get(name, {}).items():
            if channels and key in ("mean", "std"):  # the image_shape says how many channels
                check = _floats(key == "std", (1, 3, channels))
            if args and key in args:
                try:
                    check(args[key])
                except _Bad as e:
                    raise _Bad(e.allowed, f"{where}.{name}.{key}", args[key]) from None
    return ops


_OP_ARGS = {
    "ResizeImage": {"resize_short": _resize, "size": _size2, "interpolation": _opt(_str), "backend": _opt(_str)},
    "CropImage": {"size": _size2},
    "NormalizeImage": {
        "scale": _scale,
        "mean": _floats(False),
        "std": _floats(True),
        "order": _opt(_str),
        "channel_num": _int(1, MAX_CHANNELS),
    },
    "DecodeImage": {"to_rgb": _bool, "channel_first": _bool},
}


def _choice(*allowed):
    def check(v):
        if v not in allowed:
            raise _Bad("one of " + ", ".join(map(repr, allowed)))
        return v

    return check


def _output(v):
    if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int) and not 0 <= v < 64):
        raise _Bad("an output name, or its index from 0 to 63")
    return _str(v) if isinstance(v, str) else v


def _image_shape(v):
    return list(check_image_shape(v, error=_BadRaiser))


def _arch_kwargs(v):
    _mapping(v)
    for k, x in v.items():
        if not isinstance(k, str) or not _IDENT.match(k):
            raise _Bad("a mapping of Python keyword names to simple values")
        if isinstance(x, list):
            if len(x) > 64:
                raise _Bad("lists of at most 64 simple values")
            for item in x:
                _scalar(item)
        else:
            _scalar(x)
    return v


def _checksums(v):
    allowed = "a mapping of file names to sha256 digests (64 lower-case hex digits)"
    _mapping(v, allowed)
    for k, x in v.items():
        if (
            not isinstance(k, str)
            or not _FILE.match(k)
            or k in (".", "..")
            or not isinstance(x, str)
            or not _HEX64.match(x)
        ):
            raise _Bad(allowed)
    return v


def _label_list(v):
    allowed = f"a list of at most {MAX_CLASSES:,} labels (strings or numbers)"
    if not isinstance(v, list) or not v or len(v) > MAX_CLASSES:
        raise _Bad(allowed)
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (str, int, float)) or (isinstance(x, str) and len(x) > _MAX_STR):
            raise _Bad(allowed)
    return v


def validate_sidecar(doc, *, where=None) -> None:
    """Raise :class:`FormatError` for the first value of a parsed ``inference.yml`` that is not
    allowed, naming the field, the value and what is allowed.  Unknown keys are ignored."""
    name = Path(where).name if where is not None else "inference.yml"
    if not isinstance(doc, dict):
        raise FormatError(
            f"{name} is not a mapping (found {show(doc)})",
            path=where,
            hint="expected Global / PreProcess / PostProcess sections",
        )
    w = _Walk(doc)
    try:
        for section in ("Global", "Global.clsviz", "clsviz", "Hpi", "PreProcess", "PostProcess", "PostProcess.Topk"):
            w.at(section, _section)
        w.at("Global.model_name", _opt(lambda v: _str(v, 512)))
        # clsviz's own section: top level (PaddleX-compatible bundles) or Global.clsviz (older ones)
        facts = {}
        for ns in ("Global.clsviz", "clsviz"):
            facts[ns] = (
                w.at(f"{ns}.class_num", _opt(_int(1, MAX_CLASSES))),
                w.at(f"{ns}.image_shape", _opt(_image_shape)),
            )
            w.at(f"{ns}.softmax", _opt(_bool))
            w.at(f"{ns}.arch_kwargs", _opt(_arch_kwargs))
            w.at(f"{ns}.sha256", _opt(_checksums))
            w.at(f"{ns}.interpolation", _opt(_str))
            w.at(f"{ns}.onnx", _opt(_mapping))  # engines/convert.py: the cached ONNX's record
            w.at(f"{ns}.backend", _opt(_choice("pil", "cv2")))
            w.at(f"{ns}.output", _opt(_output))
            w.at(f"{ns}.arch", _opt(lambda v: _str(v, 512)))
        shape = facts["clsviz"][1] or facts["Global.clsviz"][1]
        w.at("PreProcess.transform_ops", _opt(lambda ops: _ops(ops, shape[0] if shape else None)))
        w.at("PostProcess.Topk.topk", _opt(_int(1, MAX_CLASSES)))
        labels = w.at("PostProcess.Topk.label_list", _opt(_label_list))
        w.at("PostProcess.Topk.class_id_map_file", _opt(_str))
    except _Bad as e:
        raise FormatError(
            f"{name}: {e.field} is {show(e.value)}; allowed: {e.allowed}",
            path=where,
            hint="fix the value, or export the model again",
        ) from None
    for ns, (class_num, _) in facts.items():
        if class_num and labels and len(labels) != class_num:
            raise FormatError(
                f"{name}: {ns}.class_num is {class_num} but PostProcess.Topk.label_list has {len(labels)} labels",
                path=where,
                hint="give exactly one label per class",
            )


# ------------------------------------------------------------------ options and declared sizes
class _BadRaiser(Exception):
    """``error=`` for :func:`check_image_shape` inside the sidecar walk (internal)."""


def check_image_shape(shape, *, field: str = "image_shape", error=OptionError, where=None) -> tuple:
    """``(C, H, W)`` as ints, or raise ``error``: three whole numbers, C from 1 to
    :data:`MAX_CHANNELS`, H and W from 1 to :data:`MAX_SIDE`, C×H×W at most
    :data:`MAX_INPUT_VALUES` (so a declared size never makes clsviz allocate gigabytes)."""
    allowed = (
        f"[C, H, W]: C from 1 to {MAX_CHANNELS} channels, H and W from 1 to {MAX_SIDE} "
        f"pixels, C×H×W at most {MAX_INPUT_VALUES:,}"
    )
    ok = isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(v) for v in shape)
    if ok:
        c, h, w = (int(v) for v in shape)
        ok = 1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and c * h * w <= MAX_INPUT_VALUES
    if not ok:
        if error is _BadRaiser:
            raise _Bad(allowed)
        raise error(f"{field} is {show(shape)}; allowed: {allowed}", path=where)
    return (c, h, w)


def check_preprocess(pre) -> None:
    """Raise :class:`OptionError` if a :class:`~clsviz.transforms.Preprocess` holds a value
    that would make preprocessing fail or allocate without bound."""
    checks = [
        ("resize_short", pre.resize_short, _opt(_resize)),
        ("crop_size", pre.crop_size, _size2),
        ("scale", pre.scale, _scale),
        ("mean", list(pre.mean), _floats(False)),
        ("std", list(pre.std), _floats(True)),
    ]
    for field, value, check in checks:
        try:
            check(value)
        except _Bad as e:
            raise OptionError(f"Preprocess {field} is {show(value)}; allowed: {e.allowed}") from None
