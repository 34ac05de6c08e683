"""Rebuild an inference program as a dygraph ``paddle.nn.Layer``, op by op.

Paddle 3 cannot load a fluid-era program into dygraph (``jit.load`` and
``load_inference_model`` need the old IR, and ``paddle.pir.translate_to_pir``
fails on old ops such as ``flatten2``).  But a classifier uses a small op set,
and each op maps onto one ``paddle.nn.functional`` call.  So
:func:`program_to_layer` reads the program with :mod:`.programdesc` (or a PIR
``.json`` with :mod:`.pirjson`, whose ops are translated to the same handlers)
and the weights with :mod:`.tensorfile`, and returns a ``ProgramLayer`` that
holds the weights as parameters (named as in the program) and replays the ops.

The layer runs in dygraph (the ``dygraph`` mode for inference models) and
converts with ``paddle.jit.save`` into a Paddle 3 program
(:func:`clsviz.migrate`).  Ops outside :data:`SUPPORTED_OPS` raise
:class:`~clsviz.errors.FormatError` naming every one of them, before any
weight is read.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .._paddle import dygraph_mode, paddle
from ..archs.layers import SoftmaxHead
from ..bundle import BundleConfig
from ..errors import ClsvizError, FormatError, OptionError, UnsupportedOps
from . import detect
from .pirjson import PirProgram, read_pir
from .programdesc import OpDesc, Program, read_program
from .signature import apply_signature, program_io, read_signature
from .tensorfile import DTYPES, read_combined, read_tensor_file, shape_fits

__all__ = [
    "program_to_layer",
    "SUPPORTED_OPS",
    "unsupported_ops",
    "read_program_weights",
    "infer_config",
    "config_from_program",
    "program_io",
    "ends_with_softmax",
    "PIR_SUPPORTED_OPS",
    "pir_unsupported_ops",
    "legacy_op_name",
]

_HANDLERS: dict[str, Callable] = {}
#: ops whose outputs the layer never needs (no-ops at inference)
_IGNORED = {"feed", "fetch"}


def _op(*names):
    def deco(fn):
        for n in names:
            _HANDLERS[n] = fn
        return fn

    return deco


# ------------------------------------------------------------------ op handlers
# Each handler gets (op, env) and writes its outputs into env.  env maps
# variable names to tensors; parameters are in it from the start.
def _F():
    return paddle, paddle.nn.functional


def _in(op: OpDesc, env: dict, param: str, index: int = 0):
    names = op.input(param)
    if len(names) <= index:
        raise FormatError(f"op {op.type!r} has no input {param!r}")
    try:
        return env[names[index]]
    except KeyError:
        raise FormatError(
            f"op {op.type!r} reads {names[index]!r}, which no earlier op writes and which is not a parameter"
        ) from None


def _set(op: OpDesc, env: dict, value, param: str = "Out"):
    env[op.output(param)[0]] = value


def _data_format(op: OpDesc, key: str = "data_format") -> str:
    fmt = op.attr(key, "NCHW") or "NCHW"
    return "NCHW" if fmt == "AnyLayout" else fmt


def _padding(op: OpDesc, paddings):
    algo = (op.attr("padding_algorithm", "EXPLICIT") or "EXPLICIT").upper()
    if algo in ("SAME", "VALID"):
        return algo
    p = [int(v) for v in paddings]
    if len(p) == 4:  # the op stores [top, bottom, left, right], as the functional API wants
        return p
    return p[:2] if len(p) >= 2 else (p * 2 if p else [0, 0])


@_op("conv2d", "depthwise_conv2d")
def _conv2d(op, env):
    _paddle, F = _F()
    x, w = _in(op, env, "Input"), _in(op, env, "Filter")
    b = _in(op, env, "Bias") if op.input("Bias") else None
    y = F.conv2d(
        x,
        w,
        bias=b,
        stride=op.attr("strides", [1, 1]),
        padding=_padding(op, op.attr("paddings", [0, 0])),
        dilation=op.attr("dilations", [1, 1]),
        groups=int(op.attr("groups", 1) or 1),
        data_format=_data_format(op),
    )
    _set(op, env, y, "Output")


@_op("batch_norm")
def _batch_norm(op, env):
    _paddle, F = _F()
    y = F.batch_norm(
        _in(op, env, "X"),
        _in(op, env, "Mean"),
        _in(op, env, "Variance"),
        weight=_in(op, env, "Scale"),
        bias=_in(op, env, "Bias"),
        training=False,
        epsilon=float(op.attr("epsilon", 1e-5)),
        data_format=_data_format(op, "data_layout"),
    )
    _set(op, env, y, "Y")


@_op("pool2d")
def _pool2d(op, env):
    _paddle, F = _F()
    x = _in(op, env, "X")
    kind = op.attr("pooling_type", "max")
    fmt = _data_format(op)
    ksize = [int(v) for v in op.attr("ksize", [1, 1])]
    if op.attr("global_pooling", False):
        y = F.adaptive_max_pool2d(x, 1) if kind == "max" else F.adaptive_avg_pool2d(x, 1, data_format=fmt)
    elif op.attr("adaptive", False):
        y = F.adaptive_max_pool2d(x, ksize) if kind == "max" else F.adaptive_avg_pool2d(x, ksize, data_format=fmt)
    else:
        pad = _padding(op, op.attr("paddings", [0, 0]))
        ceil = bool(op.attr("ceil_mode", False))
        stride = op.attr("strides", ksize)
        if kind == "max":
            y = F.max_pool2d(x, ksize, stride, pad, ceil_mode=ceil, data_format=fmt)
        else:
            y = F.avg_pool2d(
                x, ksize, stride, pad, ceil_mode=ceil, exclusive=bool(op.attr("exclusive", True)), data_format=fmt
            )
    _set(op, env, y)


def _unary(fn):
    def handler(op, env):
        _set(op, env, fn(op, _in(op, env, "X")))

    return handler


_op("relu")(_unary(lambda op, x: _F()[1].relu(x)))
_op("sigmoid")(_unary(lambda op, x: _F()[1].sigmoid(x)))
_op("tanh")(_unary(lambda op, x: _F()[0].tanh(x)))
_op("silu")(_unary(lambda op, x: _F()[1].silu(x)))
_op("gelu")(_unary(lambda op, x: _F()[1].gelu(x, approximate=bool(op.attr("approximate", False)))))
_op("leaky_relu")(_unary(lambda op, x: _F()[1].leaky_relu(x, float(op.attr("alpha", 0.02)))))
_op("relu6")(_unary(lambda op, x: _F()[0].clip(x, 0.0, float(op.attr("threshold", 6.0)))))
_op("clip")(_unary(lambda op, x: _F()[0].clip(x, float(op.attr("min", 0.0)), float(op.attr("max", 0.0)))))
_op("hard_sigmoid")(
    _unary(
        lambda op, x: _F()[1].hardsigmoid(x, slope=float(op.attr("slope", 0.2)), offset=float(op.attr("offset", 0.5)))
    )
)
_op("swish")(_unary(lambda op, x: x * _F()[1].sigmoid(float(op.attr("beta", 1.0)) * x)))


@_op("cast")
def _cast(op, env):
    """Fluid's ``out_dtype`` is a ``VarType`` code; a PIR program's ``dtype`` a name ("float32")."""
    paddle, _ = _F()
    to = op.attr("out_dtype", None)
    name = DTYPES.get(to) if isinstance(to, int) else to
    if not isinstance(name, str) or name in ("bfloat16", "complex64", "complex128"):
        raise FormatError(f"op 'cast' to {to!r}: clsviz rebuilds casts to plain numeric types only")
    _set(op, env, paddle.cast(_in(op, env, "X"), name))


@_op("hard_swish")
def _hard_swish(op, env):
    paddle, _ = _F()
    x = _in(op, env, "X")
    threshold = float(op.attr("threshold", 6.0))
    scale = float(op.attr("scale", 6.0))
    offset = float(op.attr("offset", 3.0))
    _set(op, env, x * paddle.clip(x + offset, 0.0, threshold) / scale)


def _broadcast_y(x, y, axis: int):
    """Fluid's elementwise broadcast: Y lines up with X's dims from ``axis`` on."""
    paddle, _ = _F()
    xr, yr = len(x.shape), len(y.shape)
    if axis == -1 or xr == yr:
        return x, y
    if yr < xr:
        after = xr - axis - yr
        if after < 0:
            raise FormatError(f"elementwise op: Y of rank {yr} does not fit X of rank {xr} at axis {axis}")
        shape_axes = list(range(axis)) + list(range(axis + yr, xr))
        return x, paddle.unsqueeze(y, shape_axes) if shape_axes else y
    x2, y2 = _broadcast_y(y, x, axis)  # X is the smaller one: the same rule, mirrored
    return y2, x2


def _elementwise(fn):
    def handler(op, env):
        x, y = _broadcast_y(_in(op, env, "X"), _in(op, env, "Y"), int(op.attr("axis", -1)))
        _set(op, env, fn(x, y))

    return handler


_op("elementwise_add")(_elementwise(lambda x, y: x + y))
_op("elementwise_sub")(_elementwise(lambda x, y: x - y))
_op("elementwise_mul")(_elementwise(lambda x, y: x * y))
_op("elementwise_div")(_elementwise(lambda x, y: x / y))


@_op("sum")
def _sum(op, env):
    xs = [env[n] for n in op.input("X")]
    out = xs[0]
    for t in xs[1:]:
        out = out + t
    _set(op, env, out)


def _flatten_from(x, axis: int):
    """``[prod(dims[:axis]), prod(dims[axis:])]``: fluid's flatten / mul reshape."""
    paddle, _ = _F()
    rank = len(x.shape)
    if axis == 0:
        return paddle.reshape(x, [1, -1])
    y = paddle.flatten(x, axis, rank - 1) if axis < rank - 1 else x
    return paddle.flatten(y, 0, axis - 1) if axis > 1 else y


@_op("mul")
def _mul(op, env):
    paddle, _ = _F()
    x, y = _in(op, env, "X"), _in(op, env, "Y")
    xn, yn = int(op.attr("x_num_col_dims", 1)), int(op.attr("y_num_col_dims", 1))
    out = paddle.matmul(_flatten_from(x, xn), _flatten_from(y, yn))
    if xn > 1 or len(y.shape) - yn > 1:
        out = paddle.reshape(out, list(x.shape[:xn]) + list(y.shape[yn:]))
    _set(op, env, out)


@_op("fc")
def _fc(op, env):
    paddle, F = _F()
    x = _flatten_from(_in(op, env, "Input"), int(op.attr("in_num_col_dims", 1)))
    out = paddle.matmul(x, _in(op, env, "W"))
    if op.input("Bias"):
        out = out + paddle.reshape(_in(op, env, "Bias"), [1, -1])
    act = op.attr("activation_type", "") or ""
    if act == "relu":
        out = F.relu(out)
    elif act:
        raise FormatError(f"op 'fc' with activation_type {act!r} is not covered")
    _set(op, env, out)


@_op("matmul")
def _matmul_v1(op, env):
    paddle, _ = _F()
    out = paddle.matmul(
        _in(op, env, "X"),
        _in(op, env, "Y"),
        transpose_x=bool(op.attr("transpose_X", False)),
        transpose_y=bool(op.attr("transpose_Y", False)),
    )
    alpha = float(op.attr("alpha", 1.0))
    _set(op, env, out * alpha if alpha != 1.0 else out)


@_op("matmul_v2")
def _matmul_v2(op, env):
    paddle, _ = _F()
    _set(
        op,
        env,
        paddle.matmul(
            _in(op, env, "X"),
            _in(op, env, "Y"),
            transpose_x=bool(op.attr("trans_x", False)),
            transpose_y=bool(op.attr("trans_y", False)),
        ),
    )


@_op("flatten", "flatten2")
def _flatten2(op, env):
    _set(op, env, _flatten_from(_in(op, env, "X"), int(op.attr("axis", 1))))


@_op("flatten_contiguous_range")
def _flatten_range(op, env):
    paddle, _ = _F()
    _set(op, env, paddle.flatten(_in(op, env, "X"), int(op.attr("start_axis", 1)), int(op.attr("stop_axis", -1))))


def _static_list(op, attr: str, tensor_inputs: tuple[str, ...]):
    if any(op.input(t) for t in tensor_inputs):
        raise FormatError(
            f"op {op.type!r} takes its {attr} from a tensor ({'/'.join(tensor_inputs)}); "
            "only attribute values are covered"
        )
    return [int(v) for v in op.attr(attr, [])]


@_op("reshape", "reshape2")
def _reshape(op, env):
    paddle, _ = _F()
    shape = _static_list(op, "shape", ("Shape", "ShapeTensor"))
    _set(op, env, paddle.reshape(_in(op, env, "X"), shape))


@_op("transpose", "transpose2")
def _transpose(op, env):
    paddle, _ = _F()
    _set(op, env, paddle.transpose(_in(op, env, "X"), [int(v) for v in op.attr("axis", [])]))


@_op("squeeze", "squeeze2")
def _squeeze(op, env):
    paddle, _ = _F()
    axes = [int(v) for v in op.attr("axes", [])]
    _set(op, env, paddle.squeeze(_in(op, env, "X"), axes or None))


@_op("unsqueeze", "unsqueeze2")
def _unsqueeze(op, env):
    paddle, _ = _F()
    axes = _static_list(op, "axes", ("AxesTensor", "AxesTensorList"))
    _set(op, env, paddle.unsqueeze(_in(op, env, "X"), axes))


@_op("concat")
def _concat(op, env):
    paddle, _ = _F()
    if op.input("AxisTensor"):
        raise FormatError("op 'concat' takes its axis from a tensor; only the attribute is covered")
    _set(op, env, paddle.concat([env[n] for n in op.input("X")], axis=int(op.attr("axis", 0))))


@_op("split")
def _split(op, env):
    paddle, _ = _F()
    if op.input("AxisTensor") or op.input("SectionsTensorList"):
        raise FormatError("op 'split' takes its axis/sections from tensors; only attributes are covered")
    sections = [int(v) for v in op.attr("sections", [])]
    parts = paddle.split(_in(op, env, "X"), sections or int(op.attr("num", 0)), axis=int(op.attr("axis", 0)))
    for name, t in zip(op.output("Out"), parts):
        env[name] = t


@_op("dropout")
def _dropout(op, env):
    x = _in(op, env, "X")
    # inference: "downgrade_in_infer" (fluid's default) scales by 1 - p; "upscale_in_train" is identity
    impl = op.attr("dropout_implementation", "downgrade_in_infer") or "downgrade_in_infer"
    p = float(op.attr("dropout_prob", 0.5))
    _set(op, env, x * (1.0 - p) if impl == "downgrade_in_infer" and p != 0.0 else x)


@_op("scale")
def _scale(op, env):
    paddle, _ = _F()
    if op.input("ScaleTensor"):
        raise FormatError("op 'scale' takes its scale from a tensor; only the attribute is covered")
    _set(
        op,
        env,
        paddle.scale(
            _in(op, env, "X"),
            scale=float(op.attr("scale", 1.0)),
            bias=float(op.attr("bias", 0.0)),
            bias_after_scale=bool(op.attr("bias_after_scale", True)),
        ),
    )


@_op("softmax")
def _softmax(op, env):
    _, F = _F()
    _set(op, env, F.softmax(_in(op, env, "X"), axis=int(op.attr("axis", -1))))


@_op("mean")
def _mean(op, env):
    paddle, _ = _F()
    _set(op, env, paddle.mean(_in(op, env, "X")))


@_op("reduce_mean")
def _reduce_mean(op, env):
    paddle, _ = _F()
    x = _in(op, env, "X")
    axes = None if op.attr("reduce_all", False) else [int(v) for v in op.attr("dim", [])] or None
    _set(op, env, paddle.mean(x, axis=axes, keepdim=bool(op.attr("keep_dim", False))))


@_op("assign")
def _assign(op, env):
    _set(op, env, _in(op, env, "X"))


#: op types :func:`program_to_layer` can rebuild
SUPPORTED_OPS = frozenset(_HANDLERS) | _IGNORED


def unsupported_ops(program: Program) -> dict[str, int]:
    """``{op type: count}`` of the global block's ops that cannot be rebuilt (empty if all can)."""
    out: dict[str, int] = {}
    for op in program.ops:
        if op.type not in SUPPORTED_OPS:
            out[op.type] = out.get(op.type, 0) + 1
    return out


def is_training_program(program) -> bool:
    """A training program (no feed ops, or gradient ops): no engine runs it as an inference model.
    A PIR program (``jit.save``) is always an inference program."""
    if isinstance(program, PirProgram):
        return False
    return not program.feed_targets() or any(t.endswith("_grad") for t in program.op_histogram())


def rebuild_gaps(program) -> dict[str, int]:
    """``{op type: count}`` of the ops of a program (legacy or PIR) the dygraph rebuild does not cover."""
    return pir_unsupported_ops(program) if isinstance(program, PirProgram) else unsupported_ops(program)


def read_any_program(files) -> Program | PirProgram:
    """The program of a resolved model (:class:`~clsviz.formats.detect.ModelFiles` with one)."""
    return read_program(files.model_file) if files.legacy_program else read_pir(files.model_file)


def _unsupported_error(missing: dict, path) -> FormatError:
    listing = ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in sorted(missing.items()))
    return UnsupportedOps(
        f"cannot rebuild this program as a dygraph Layer: {len(missing)} op type(s) not covered: {listing}",
        path=path,
        unsupported_ops=sorted(missing),
        hint="run it with mode='predictor' or mode='executor'; clsviz.migrate falls back to a "
        "Paddle 2 bundle (.pdmodel + .pdiparams) for such programs",
    )


# ------------------------------------------------------------------ weights and I/O
def read_program_weights(program: Program, *, model_file, params_file=None) -> dict[str, np.ndarray]:
    """``{name: array}`` of a legacy program's persistables, from a combined file or loose files."""
    names = program.persistable_names()
    if params_file is not None:
        weights = read_combined(params_file, names)
    else:
        folder = Path(model_file).parent
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise FormatError(
                f"{len(missing)} parameter file(s) the program needs are missing: "
                f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}",
                path=folder,
                hint="copy the whole model folder, or pass the combined params file (params=…)",
            )
        weights = {n: read_tensor_file(folder / n) for n in names}
    for n, arr in weights.items():
        want = program.vars[n].shape
        if want is not None and not shape_fits(want, arr.shape):
            raise FormatError(
                f"parameter {n} is {list(arr.shape)} on disk but {list(want)} in the program",
                path=params_file or model_file,
                hint="the parameters belong to another model",
            )
    return weights


def ends_with_softmax(program) -> bool:
    """Whether the (first) output is a softmax over the class axis: the program outputs probabilities."""
    if isinstance(program, PirProgram):
        fetches = program.fetch_ops()
        op = program.producer(fetches[0].inputs[0]) if fetches and fetches[0].inputs else None
        return op is not None and op.type in ("softmax", "softmax_") and int(op.attrs.get("axis", -1)) in (-1, 1)
    fetch = program.fetch_targets()
    if not fetch:
        return False
    op = program.producers().get(fetch[0])
    return op is not None and op.type == "softmax" and int(op.attr("axis", -1)) in (-1, 1)


def infer_config(program, config=None, *, from_file: bool = False):
    """Fill what a :class:`~clsviz.bundle.BundleConfig` lacks from the program.

    The input signature (channels, layout, dtype, fixed H/W; :func:`~clsviz.formats.signature.
    apply_signature`) always comes from the program; ``class_num`` from the scored output's last
    dimension; ``softmax`` from a final softmax op (whatever a sidecar says: PaddleX's and
    PaddleClas's do not say it).  ``from_file``: the config came from an ``inference.yml``.
    """
    config = config or BundleConfig()

    sig = read_signature(program, output=config.output)
    config = apply_signature(config, sig, where=getattr(program, "path", None))
    if sig.output_index == 0 and ends_with_softmax(program):  # a PaddleClas/PaddleX export's head too
        config = replace(config, softmax=True)
    out_shape = sig.output.shape if sig.output else None
    if config.class_num is None and out_shape and len(out_shape) == 2 and out_shape[-1] > 0:
        config = config.with_class_num(int(out_shape[-1]))
    return config


def config_from_program(files, config, *, from_file: bool | None = None):
    """:func:`infer_config` for a resolved model, best effort: a program that cannot be
    read, or holds odd values, leaves ``config`` as it is (the engine reports the damage when it
    loads).  A declared input size beyond clsviz's limits is refused here, before anything
    allocates for it."""
    if files.model_file is None:
        return config
    program: Program | PirProgram
    try:
        program = read_program(files.model_file) if files.legacy_program else read_pir(files.model_file)
    except FormatError:  # damaged: the engine that loads it says what is wrong, in its own terms
        return config
    try:
        if from_file is None:
            from_file = files.config_file is not None
        return infer_config(program, config, from_file=from_file)
    except (FormatError, OptionError):
        raise  # an input size over clsviz's limits, a signature clsviz cannot fill, output=: say so now
    except (ClsvizError, TypeError, ValueError, IndexError, KeyError):  # odd values: the engines' business
        return config


# ------------------------------------------------------------------ PIR programs
# A PIR op becomes the legacy op the handlers know: (legacy type, what each operand is, output
# parameter, {PIR attr: legacy attr}).  An operand is a tensor input (Capitalised), a constant
# the translation folds into an attribute (lower case), or ignored ("-").
_PIR_MAP = {
    "conv2d": ("conv2d", ("Input", "Filter"), "Output", {}),
    "depthwise_conv2d": ("depthwise_conv2d", ("Input", "Filter"), "Output", {}),
    "batch_norm": ("batch_norm", ("X", "Mean", "Variance", "Scale", "Bias"), "Y", {"data_format": "data_layout"}),
    "pool2d": ("pool2d", ("X", "ksize"), "Out", {}),
    "relu": ("relu", ("X",), "Out", {}),
    "relu6": ("relu6", ("X",), "Out", {}),
    "sigmoid": ("sigmoid", ("X",), "Out", {}),
    "tanh": ("tanh", ("X",), "Out", {}),
    "silu": ("silu", ("X",), "Out", {}),
    "swish": ("swish", ("X",), "Out", {}),
    "gelu": ("gelu", ("X",), "Out", {}),
    "hardswish": ("hard_swish", ("X",), "Out", {}),
    "hardsigmoid": ("hard_sigmoid", ("X",), "Out", {}),
    "leaky_relu": ("leaky_relu", ("X",), "Out", {"negative_slope": "alpha"}),
    "add": ("elementwise_add", ("X", "Y"), "Out", {}),
    "subtract": ("elementwise_sub", ("X", "Y"), "Out", {}),
    "multiply": ("elementwise_mul", ("X", "Y"), "Out", {}),
    "divide": ("elementwise_div", ("X", "Y"), "Out", {}),
    "add_n": ("sum", ("X",), "Out", {}),
    "matmul": ("matmul_v2", ("X", "Y"), "Out", {"transpose_x": "trans_x", "transpose_y": "trans_y"}),
    "flatten": ("flatten_contiguous_range", ("X",), "Out", {}),
    "reshape": ("reshape2", ("X", "shape"), "Out", {}),
    "transpose": ("transpose2", ("X",), "Out", {"perm": "axis"}),
    "squeeze": ("squeeze2", ("X", "axes"), "Out", {}),
    "unsqueeze": ("unsqueeze2", ("X", "axes"), "Out", {}),
    "concat": ("concat", ("X", "axis"), "Out", {}),
    "split": ("split", ("X", "sections", "axis"), "Out", {}),
    "split_with_num": ("split", ("X", "axis"), "Out", {}),
    "softmax": ("softmax", ("X",), "Out", {}),
    "dropout": ("dropout", ("X", "-", "dropout_prob"), "Out", {"mode": "dropout_implementation"}),
    "scale": ("scale", ("X", "scale"), "Out", {}),
    "mean": ("reduce_mean", ("X", "dim"), "Out", {"keepdim": "keep_dim"}),
    "assign": ("assign", ("X",), "Out", {}),
    "cast": ("cast", ("X",), "Out", {"dtype": "out_dtype"}),
}
#: ops that only make constants or lists for the ops above
_PIR_CONSTANTS = {"full_int_array", "full", "builtin.combine", "builtin.split"}
_PIR_IO = {"data", "fetch", "shadow_output"}
#: PIR op types :func:`program_to_layer` can rebuild (in-place variants such as ``relu_`` too)
PIR_SUPPORTED_OPS = frozenset(_PIR_MAP) | _PIR_CONSTANTS | _PIR_IO


def _pir_spec(op_type: str):
    return _PIR_MAP.get(op_type) or _PIR_MAP.get(op_type.rstrip("_"))


def legacy_op_name(op_type: str) -> str | None:
    """The fluid-era name of a PIR op (``add`` → ``elementwise_add``, ``matmul`` → ``matmul_v2``),
    which paddle2onnx's list of PIR ops still uses for some; None for an op clsviz does not map."""
    spec = _pir_spec(op_type)
    return spec[0] if spec else None


def pir_unsupported_ops(program) -> dict[str, int]:
    """``{op type: count}`` of a :class:`~clsviz.formats.pirjson.PirProgram`'s ops that cannot be rebuilt."""
    out: dict[str, int] = {}
    for op in program.ops:
        if op.type not in _PIR_CONSTANTS | _PIR_IO and _pir_spec(op.type) is None:
            out[op.type] = out.get(op.type, 0) + 1
    return out


def _pir_ops(program, output_index: int = 0):
    """Translate a PIR program's ops into legacy :class:`OpDesc` s: ``(ops, feed, fetch)``."""
    consts: dict[int, object] = {}
    lists: dict[int, tuple] = {}
    pending: dict[int, tuple] = {}  # a split's vector output, waiting for builtin.split

    def var(i):
        return program.param_ids.get(i, f"%{i}")

    ops = []
    for op in program.ops:
        if op.type == "full_int_array":
            consts[op.outputs[0]] = [int(v) for v in op.attrs.get("value", [])]
            continue
        if op.type == "full":
            value = op.attrs.get("value")
            consts[op.outputs[0]] = value[0] if isinstance(value, list) and len(value) == 1 else value
            continue
        if op.type == "builtin.combine":
            lists[op.outputs[0]] = op.inputs
            continue
        if op.type == "builtin.split":
            legacy, inputs, attrs = pending.pop(op.inputs[0])
            ops.append(OpDesc(legacy, inputs, {"Out": tuple(var(o) for o in op.outputs)}, attrs))
            continue
        if op.type in _PIR_IO:
            continue
        legacy, operands, out_param, renames = _pir_spec(op.type)
        inputs, attrs = {}, {renames.get(k, k): v for k, v in op.attrs.items()}
        for param, value_id in zip(operands, op.inputs):
            if param == "-":
                continue
            if param[0].islower():  # a constant operand becomes an attribute
                if value_id not in consts:
                    raise _unsupported_error({f"{op.type} with a computed {param}": 1}, program.path)
                attrs[param] = consts[value_id]
            elif value_id in lists:
                inputs[param] = tuple(var(i) for i in lists[value_id])
            else:
                inputs[param] = (var(value_id),)
        if legacy == "reduce_mean":
            attrs["reduce_all"] = not attrs.get("dim")
        if legacy == "dropout":
            attrs["dropout_prob"] = float(attrs.get("dropout_prob", 0.5) or 0.0)
        if legacy == "split":  # its output is a vector that builtin.split unpacks
            pending[op.outputs[0]] = (legacy, inputs, attrs)
            continue
        ops.append(OpDesc(legacy, inputs, {out_param: (var(op.outputs[0]),)}, attrs))
    data = next(op for op in program.ops if op.type == "data")
    fetch = program.fetch_ops()[output_index]
    return ops, var(data.outputs[0]), var(fetch.inputs[0])


# ------------------------------------------------------------------ the layer
def _safe_name(name: str, taken: set) -> str:
    base = "p_" + re.sub(r"\W", "_", name)
    out, i = base, 1
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def _make_layer_class():
    class ProgramLayer(paddle.nn.Layer):
        """A program replayed op by op; parameters keep the program's names."""

        def __init__(self, weights: dict, ops, *, feed: str, fetch: str, source: str = ""):
            super().__init__()
            self.feed_name, self.fetch_name, self.source = feed, fetch, source
            self._ops = tuple(op for op in ops if op.type not in _IGNORED)
            self._handlers = tuple(_HANDLERS[op.type] for op in self._ops)
            self._attr_names: dict[str, str] = {}
            taken: set = set()
            for name, arr in weights.items():
                arr = np.ascontiguousarray(arr)
                param = self._new_parameter(name, arr)
                param.set_value(arr)
                param.stop_gradient = True
                attr = _safe_name(name, taken)
                self.add_parameter(attr, param)
                self._attr_names[name] = attr

        def _new_parameter(self, name: str, arr: np.ndarray):
            # Dygraph registers parameter names process-wide, and a later Conv2D asking
            # for "conv2d_0.w_0" would then fail: create under a generated name, then
            # give the tensor the program's name (what jit.save writes) without registering it.
            param = self.create_parameter(
                shape=list(arr.shape),
                dtype=str(arr.dtype),
                attr=paddle.ParamAttr(trainable=False),
                default_initializer=paddle.nn.initializer.Constant(0.0),
            )
            try:
                param.name = name
            except (AttributeError, TypeError, ValueError):  # pragma: no cover - older Paddle
                pass
            return param

        #: ``None``, or a callable ``(variable name, tensor)`` that sees every op's outputs as the
        #: program is replayed (clsviz.explain reads feature maps through it).
        tap = None

        def program_names(self) -> dict:
            """``{program variable name: parameter}``."""
            return {n: getattr(self, a) for n, a in self._attr_names.items()}

        def forward(self, x):
            return _replay(self, x)

        def extra_repr(self) -> str:
            return f"{len(self._ops)} ops, feed={self.feed_name!r}, fetch={self.fetch_name!r}"

    @paddle.jit.not_to_static
    def _replay(layer, x):
        env = {n: getattr(layer, a) for n, a in layer._attr_names.items()}
        env[layer.feed_name] = x
        tap = layer.tap
        for handler, op in zip(layer._handlers, layer._ops):
            handler(op, env)
            if tap is not None:
                for name in op.output_names():
                    if name in env:
                        tap(name, env[name])
        return env[layer.fetch_name]

    return ProgramLayer


_LAYER_CLASS = None


def __getattr__(name):  # ProgramLayer is built on first use: importing this module needs no Paddle
    if name == "ProgramLayer":
        return _layer_class()
    raise AttributeError(name)


def _layer_class():
    global _LAYER_CLASS
    if _LAYER_CLASS is None:
        _LAYER_CLASS = _make_layer_class()
    return _LAYER_CLASS


def program_to_layer(files, config=None):
    """Rebuild an inference program as a Layer: ``(net, config)``.

    ``files`` is a :class:`~clsviz.formats.detect.ModelFiles` (or a path that
    :func:`~clsviz.formats.detect.resolve` accepts): a legacy ProgramDesc
    (``__model__``, ``model``, ``*.pdmodel``) with loose or combined weights, or
    a Paddle 3 PIR ``*.json``.  ``config`` is filled from the program where it
    lacks values (:func:`infer_config`).  A program ending in a softmax comes
    back wrapped in :class:`~clsviz.archs.layers.SoftmaxHead` (with
    ``config.softmax`` True), so the dygraph engine does not add another.
    Ops outside :data:`SUPPORTED_OPS` (:data:`PIR_SUPPORTED_OPS`) raise
    :class:`~clsviz.errors.UnsupportedOps` naming them all (``.unsupported_ops``).
    """
    if not isinstance(files, detect.ModelFiles):
        files = detect.resolve(files)
    if files.model_file is None:
        raise FormatError(
            f"a {files.kind.replace('_', ' ')} holds no program to rebuild",
            path=files.root,
            hint="pass arch= to rebuild the network from code",
        )
    if config is None and files.config_file is not None:
        config = BundleConfig.read(files.config_file)
    program: Program | PirProgram
    if files.legacy_program:
        program = read_program(files.model_file)
        feeds, fetches = program.feed_targets(), program.fetch_targets()
        if not feeds or not fetches:
            raise FormatError(
                "this program has no feed/fetch ops: it is a training program, not an inference model",
                path=files.model_file,
                hint="rebuild the network from code (arch=) with the .pdparams beside it",
            )
        if len(feeds) != 1:
            raise FormatError(
                f"the program has {len(feeds)} inputs {feeds}; an image classifier has one", path=files.model_file
            )
        missing = unsupported_ops(program)
        if missing:
            raise _unsupported_error(missing, files.model_file)
        weights = read_program_weights(program, model_file=files.model_file, params_file=files.params_file)
        config = infer_config(program, config, from_file=files.config_file is not None)
        ops, feed, fetch = (
            [op for op in program.ops if op.type not in _IGNORED],
            feeds[0],
            fetches[config.output_index],
        )
    else:
        program = read_pir(files.model_file)
        if len(program.inputs) != 1 or not program.outputs:
            raise FormatError(
                f"the program has {len(program.inputs)} inputs and "
                f"{len(program.outputs)} outputs; an image classifier has one of each",
                path=files.model_file,
            )
        missing = pir_unsupported_ops(program)
        if missing:
            raise _unsupported_error(missing, files.model_file)
        config = infer_config(program, config, from_file=files.config_file is not None)
        ops, feed, fetch = _pir_ops(program, config.output_index)
        weights = read_combined(files.params_file, program.persistable_names())

    strip = False
    if (
        config.softmax
        and ops
        and ops[-1].type == "softmax"
        and ops[-1].output("Out")[0] == fetch
        and int(ops[-1].attr("axis", -1)) in (-1, 1)
    ):
        fetch, ops, strip = ops[-1].input("X")[0], ops[:-1], True
    with dygraph_mode():
        net = _layer_class()(weights, ops, feed=feed, fetch=fetch, source=str(files.model_file))
        if strip:
            net = SoftmaxHead(net)
        net.eval()
    return net, config
