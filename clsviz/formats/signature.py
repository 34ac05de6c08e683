"""A program's input signature: what one image must become before the engine sees it.

Read from the program file (PIR JSON or ProgramDesc), never by running it:

* the input's name, its declared shape and dtype, and from the shape its layout —
  ``NCHW`` (``[N, C, H, W]``), ``NHWC`` (``[N, H, W, C]``) or ``flat`` (``[N, D]``);
* the output clsviz scores: the one named by ``output=``, else the one shaped
  ``[N, classes]``.

A program with several inputs is not an image classifier clsviz can feed: :func:`read_signature`
says so and names them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import FormatError, OptionError
from ..schema import check_image_shape
from ..transforms import _DTYPES
from .pirjson import PirProgram, read_pir
from .programdesc import Program, read_program

__all__ = ["InputSpec", "Signature", "read_signature", "signature_of", "LAYOUTS"]

LAYOUTS = ("NCHW", "NHWC", "flat")
_CHANNELS = (1, 3, 4)
_INT_DTYPES = ("uint8", "int8", "int16", "int32", "int64")


@dataclass(frozen=True)
class InputSpec:
    """One program input.  ``shape`` is as declared (``-1`` for a dimension fixed at run time)."""

    name: str
    shape: tuple
    dtype: str = "float32"

    @property
    def layout(self) -> str:
        s = self.shape
        if len(s) == 2:
            return "flat"
        if len(s) != 4:
            raise FormatError(
                f"input {self.name!r} has shape {list(s)}; clsviz feeds images as "
                f"[N, C, H, W], [N, H, W, C] or flat [N, D]"
            )
        c_first, c_last = s[1] in _CHANNELS, s[3] in _CHANNELS
        if c_last and not c_first:
            return "NHWC"
        return "NCHW"

    @property
    def channels(self) -> int | None:
        """1, 3 or 4; None for a flat input (the channel count is chosen by the caller)."""
        layout = self.layout
        if layout == "flat":
            return None
        c = int(self.shape[1] if layout == "NCHW" else self.shape[3])
        return c if c > 0 else 3

    @property
    def hw(self) -> tuple[int | None, int | None]:
        """Declared height and width; None where the program leaves them dynamic."""
        if self.layout == "flat":
            return None, None
        h, w = (self.shape[2], self.shape[3]) if self.layout == "NCHW" else (self.shape[1], self.shape[2])
        return (int(h) if h and h > 0 else None), (int(w) if w and w > 0 else None)

    @property
    def flat_dim(self) -> int | None:
        return int(self.shape[1]) if self.layout == "flat" and self.shape[1] > 0 else None

    @property
    def integer(self) -> bool:
        return self.dtype in _INT_DTYPES

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    def __str__(self) -> str:
        return f"{self.name} {list(self.shape)} {self.dtype} ({self.layout})"


@dataclass(frozen=True)
class Signature:
    """All inputs and outputs of a program, and which output clsviz scores."""

    inputs: tuple  # InputSpec
    outputs: tuple  # InputSpec (name, shape, dtype) of each fetch, in column order
    output_index: int = 0

    @property
    def input(self) -> InputSpec:
        """The one input; a clear error for several."""
        if len(self.inputs) != 1:
            names = ", ".join(str(i) for i in self.inputs) or "none"
            raise FormatError(
                f"the program has {len(self.inputs)} inputs ({names}); clsviz feeds "
                "an image classifier with exactly one image input",
                hint="export a program whose only input is the image batch",
            )
        return self.inputs[0]

    @property
    def output(self) -> InputSpec | None:
        return self.outputs[self.output_index] if self.outputs else None

    def to_dict(self) -> dict:
        return {
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [{"name": o.name, "shape": list(o.shape), "dtype": o.dtype} for o in self.outputs],
            "output": self.output.name if self.output else None,
        }


def _pick_output(outputs, output) -> int:
    if output is not None:
        if isinstance(output, int) and not isinstance(output, bool):
            if 0 <= output < len(outputs):
                return output
        else:
            for i, o in enumerate(outputs):
                if o.name == output:
                    return i
        raise OptionError(
            f"output={output!r} is not an output of this program",
            hint="its outputs: " + ", ".join(str(o) for o in outputs),
        )
    for i, o in enumerate(outputs):
        if len(o.shape) == 2:  # [N, classes]
            return i
    return 0


def read_signature(program, *, output=None) -> Signature:
    """The :class:`Signature` of a decoded program (``PirProgram`` or ``Program``)."""
    feeds, fetches = program_io(program)

    def spec(t):
        name, shape, dtype = t
        return InputSpec(str(name), tuple(int(v) for v in (shape or ())), str(dtype or "float32"))

    inputs = tuple(spec(t) for t in feeds)
    outputs = tuple(spec(t) for t in fetches)
    return Signature(inputs, outputs, _pick_output(outputs, output))


def signature_of(files, *, output=None) -> Signature | None:
    """The signature of a resolved model (``ModelFiles``); None when it has no readable program
    (a checkpoint, or a damaged program the engines will report)."""
    if files.model_file is None:
        return None
    program: Program | PirProgram
    try:
        program = read_program(files.model_file) if files.legacy_program else read_pir(files.model_file)
    except FormatError:  # damaged: the engines report it when they load it
        return None
    return read_signature(program, output=output)


def _square_side(n: int) -> int | None:
    side = round(n**0.5)
    return side if side > 0 and side * side == n else None


def flat_image_shape(dim: int | None, image_shape=None, *, where=None) -> tuple[int, int, int]:
    """``(C, H, W)`` for a flat ``[N, D]`` input: ``image_shape`` when given (C×H×W must be D),
    else a square grey (D = H×W) or RGB (D = 3×H×W) image; otherwise a clear error."""
    if image_shape is not None:
        c, h, w = (int(v) for v in image_shape)
        if dim is not None and c * h * w != dim:
            raise FormatError(
                f"image_shape {[c, h, w]} gives {c * h * w} values, but the program's flat input takes {dim}",
                path=where,
                hint="pass image_shape=(C, H, W) with C×H×W equal to the input size",
            )
        return c, h, w
    if dim is not None:
        for c in (1, 3):
            side = _square_side(dim // c) if dim % c == 0 else None
            if side:
                return c, side, side
    raise FormatError(
        f"the program takes a flat input [N, {dim if dim else '?'}] and clsviz cannot "
        "tell which image size it flattens",
        path=where,
        hint="pass image_shape=(C, H, W) (CLI --image_shape C,H,W), with C×H×W equal to the input size",
    )


def apply_signature(config, sig: Signature, *, where=None):
    """``config`` (a ``BundleConfig``) whose preprocessing produces what ``sig``'s input takes:
    channels, layout and dtype from the program; a fixed H and W from the program, dynamic ones
    (-1) from the config's crop; a flat input's image size per :func:`flat_image_shape`."""
    inp = sig.input
    if inp.dtype not in _DTYPES:
        raise FormatError(
            f"the program's input {inp} has dtype {inp.dtype}; clsviz feeds images as one of {', '.join(_DTYPES)}",
            path=where,
            hint="this program does not take an image",
        )
    layout = inp.layout
    pre = config.preprocess
    c: int | None
    if layout == "flat":
        c, h, w = flat_image_shape(inp.flat_dim, config.image_shape if config.image_shape_given else None, where=where)
    else:
        c = inp.channels
        ph, pw = inp.hw
        ch, cw = pre.crop_hw
        h, w = ph or ch, pw or cw
    check_image_shape((c, h, w), field="the program's input shape", error=FormatError, where=where)
    changes: dict[str, Any] = {"channels": c, "layout": layout, "dtype": inp.dtype}
    if (h, w) != pre.crop_hw:
        changes["crop_size"] = h if h == w else (h, w)
        changes["resize_short"] = round(min(h, w) * 256 / 224) if pre.resize_short else None
    return replace(
        config,
        preprocess=replace(pre, **changes),
        image_shape=(c, h, w),
        output_index=sig.output_index,
        input_name=inp.name,
    )


def program_io(program) -> tuple[list[tuple], list[tuple]]:
    """``([(feed name, shape, dtype)], [(fetch name, shape, dtype)])`` of an inference program.

    ``program`` is a legacy :class:`~clsviz.formats.programdesc.Program` or a
    :class:`~clsviz.formats.pirjson.PirProgram`.
    """
    if isinstance(program, PirProgram):
        return [tuple(i) for i in program.inputs], [tuple(o) for o in program.outputs]

    def spec(name):
        v = program.vars.get(name)
        return (name, None if v is None else v.shape, None if v is None else v.dtype)

    return [spec(n) for n in program.feed_targets()], [spec(n) for n in program.fetch_targets()]
