"""Read ``.pdparams`` files without running the code a pickle can carry.

``paddle.load`` is ``pickle.load``, so a checkpoint from the internet can run
anything.  :func:`load_pdparams` unpickles with an allow-list instead: numpy
array reconstruction, plain containers, and the two records Paddle itself
writes for tensors.  Anything else raises :class:`~clsviz.errors.UnsafeCheckpoint`
naming the global the file asked for; ``trust=True`` falls back to ``paddle.load``.
Paddle is not imported on the safe path.

What Paddle writes (``python/paddle/framework/io.py``, 2.1 to 3.3):

* ``paddle.save(layer.state_dict(), p)`` and any dict whose values are all
  tensors (or dicts without tensors, so an optimizer state too): tensors become
  bare ndarrays, plus a ``"StructuredToParameterName@@"`` table {key: tensor
  name}.  ``paddle.static.save`` writes a plain {variable name: ndarray} dict.
* At protocol 2 or 3 an array over 1 GiB is split into ``key@@.0``, ``key@@.1``,
  … with an ``"UnpackBigParamInfor@@"`` table {key: {"OriginShape", "slices"}}.
  Protocol 4, the default, writes it whole.
* Anything else (nested dicts, lists, a lone tensor) goes through a custom
  reducer: a Tensor becomes ``builtins.tuple(((name, ndarray),))``, i.e. the
  pair ``(name, ndarray)``; a DenseTensor (LoDTensor before 3.0) becomes
  ``builtins.eval("data", {"data": ndarray})``.  ``eval`` is never allowed
  itself: a stand-in accepts exactly that call and returns the array.
* Protocol 2 also spells ``builtins`` as ``__builtin__`` and stores bytes as
  ``_codecs.encode(str, "latin1")``; both are handled the same narrow way.
* ``paddle.save(..., safetensors=True)`` writes a safetensors file, read here
  directly (no pickle involved).
"""

from __future__ import annotations

import _compat_pickle
import collections
import functools
import json
import math
import os
import pickle
import pickletools
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ._paddle import paddle
from .errors import FormatError, UnsafeCheckpoint
from .formats.detect import FileKind, sniff, what_is
from .safe_io import open_regular

__all__ = ["load_pdparams", "sniff", "TRUST_HINT"]

TRUST_HINT = "if you trust this file, pass trust=True (CLI: --trust)"

NAME_TABLE_KEY = "StructuredToParameterName@@"
BIG_PARAMS_KEY = "UnpackBigParamInfor@@"  # sic: Paddle's spelling

try:  # numpy >= 2 (numpy 1.x pickles say numpy.core, 2.x say numpy._core)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


# ---------------------------------------------------------------- allow-list
class _Refused(Exception):
    """A pickle asked for something outside the allow-list (internal)."""

    def __init__(self, name: str, detail: str = ""):
        self.name, self.detail = name, detail
        super().__init__(name)


class _NotPaddle(Exception):
    """The pickle is some other framework's (internal)."""


class _CheckedArray(np.ndarray):
    """What ``_reconstruct`` hands the unpickler: an ndarray whose ``__setstate__`` (pickle's
    BUILD) checks the declared shape against the bytes actually given before numpy
    allocates.  numpy's own would allocate the declared size first (an object array, or a
    shape of 2**80 with 2 bytes of data).  :func:`_to_numpy` turns it back into an ndarray."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("numpy.ndarray.__setstate__", "with a state numpy does not write")
        shape, dtype, _, raw = state[-4:]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise _Refused(
                "numpy.ndarray.__setstate__", f"with dtype {dtype!r} (object arrays hold Python objects, not tensors)"
            )
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"array shape {str(shape)[:60]} is not a tuple of sizes")
        if not isinstance(raw, (bytes, bytearray)):
            raise _Refused("numpy.ndarray.__setstate__", f"with {type(raw).__name__} data")
        need = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if need != len(raw):
            raise ValueError(f"an array declares shape {list(shape)} {dtype} ({need} bytes) but holds {len(raw)} bytes")
        super().__setstate__(state)


def _reconstruct(subtype, shape, dtype, *, limit: int | None = None):
    # numpy's _reconstruct calls subtype.__new__: only the plain ndarray may come in.
    if subtype is not np.ndarray:
        raise _Refused(
            "numpy._core.multiarray._reconstruct",
            f"with class {getattr(subtype, '__name__', subtype)!r} instead of ndarray",
        )
    dtype = np.dtype(dtype)
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise ValueError(f"array shape {str(shape)[:60]} is not a tuple of sizes")
    need = math.prod(shape) * dtype.itemsize
    if limit is not None and need > limit:  # checked before numpy allocates it
        raise _TooLarge(need, limit)
    return _multiarray._reconstruct(_CheckedArray, shape, dtype)


class _TooLarge(Exception):
    """A size declared inside the pickle exceeds what the file holds (internal)."""

    def __init__(self, declared: int, available: int, at: int | None = None):
        self.declared, self.available, self.at = declared, available, at
        super().__init__(declared)


def _paddle_dense_tensor(source, globals_=None, locals_=None):
    """Stand-in for ``eval``: Paddle's DenseTensor record is ``eval("data", {"data": arr})``."""
    if (
        source == "data"
        and locals_ is None
        and type(globals_) is dict
        and list(globals_) == ["data"]
        and isinstance(globals_["data"], np.ndarray)
    ):
        return _plain(globals_["data"])
    raise _Refused("builtins.eval", f"with {str(source)[:80]!r} (not Paddle's tensor record)")


def _latin1_bytes(text, encoding="utf-8", errors="strict"):
    """Stand-in for ``_codecs.encode``: protocol 2 stores bytes as ``encode(str, "latin1")``."""
    if isinstance(text, str) and encoding in ("latin1", "latin-1") and errors == "strict":
        return text.encode("latin-1")
    raise _Refused("_codecs.encode", f"with encoding {encoding!r}")


def _empty_bytes(*args):
    """Stand-in for ``bytes``: protocol 2 stores ``b""`` as ``bytes()``."""
    if args:
        raise _Refused("builtins.bytes", "with arguments")
    return b""


_frombuffer = getattr(_numeric, "_frombuffer", None)  # protocol-5 ndarray pickles

_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,  # Paddle's Tensor record
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytes"): _empty_bytes,
    ("builtins", "eval"): _paddle_dense_tensor,
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = _reconstruct
    _SAFE_GLOBALS[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar
    if _frombuffer is not None:
        _SAFE_GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = _frombuffer


def _plain(arr):
    return arr.view(np.ndarray) if type(arr) is _CheckedArray else arr


class _RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler, with globals looked up in :data:`_SAFE_GLOBALS` only.

    ``limit`` (the file's size) bounds the array an ``_reconstruct`` call may declare.
    """

    def __init__(self, f, *, limit: int | None = None, **kw):
        super().__init__(f, **kw)
        self.limit = limit

    def find_class(self, module, name):
        # Python 2 names (``__builtin__``, ``copy_reg``), as protocol < 3 writes them.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            found = _SAFE_GLOBALS[(module, name)]
        except KeyError:
            pass
        else:
            return functools.partial(_reconstruct, limit=self.limit) if found is _reconstruct else found
        if module.partition(".")[0] == "torch":
            raise _NotPaddle(f"{module}.{name}")
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        # Paddle never writes persistent ids; PyTorch's legacy format does.
        raise _NotPaddle(f"persistent id {str(pid)[:40]}")


_NOT_PARAMS = {
    "torch": (
        "this is a PyTorch checkpoint, not Paddle",
        "convert it first (e.g. with X2Paddle), then load the .pdparams it writes",
    ),
    "onnx": ("this is an ONNX model, not a Paddle checkpoint", "convert it with X2Paddle, or run it with onnxruntime"),
    "program": (
        "this is a Paddle program (the network structure), not parameters",
        "pass the .pdparams / .pdiparams file beside it",
    ),
    "numpy": (
        "this is a NumPy file, not a Paddle .pdparams pickle",
        "load it with numpy.load(path, allow_pickle=False)",
    ),
    "zip": ("this is a zip archive, not a Paddle .pdparams pickle", None),
    "empty": ("the file is empty (0 bytes)", "re-download or re-save the checkpoint"),
    "directory": (
        "this is a directory, not a .pdparams file",
        "for a fluid persistables folder use clsviz.load_state_dict(folder)",
    ),
    "missing": ("no such file", "check the path"),
    "unreadable": ("cannot read the file", "check the file's permissions"),
    "special": (
        "this is not a regular file",
        "clsviz reads only regular files: a FIFO, device or socket could block or never end",
    ),
}


def _refuse_non_pickle(found: FileKind, path: Path) -> None:
    if found.kind == "tensors":
        raise FormatError(
            f"this is an inference params file, not a .pdparams state dict (found {found.text}); "
            "pass the model file too: its tensors have no names, those come from the "
            ".json/.pdmodel program beside it",
            path=path,
            hint="e.g. clsviz.load('inference.json'); a single tensor saved with "
            "use_binary_format=True reads with clsviz.formats.tensorfile.read_tensor_file",
        )
    if found.kind in _NOT_PARAMS:
        message, hint = _NOT_PARAMS[found.kind]
        raise FormatError(f"{message} (found {found.text})", path=path, hint=hint)


# ---------------------------------------------------------------- loading
def load_pdparams(path, *, trust: bool = False) -> dict[str, Any]:
    """Read a ``.pdparams`` (or ``.pdopt``) file into numpy arrays, without running its code.

    A state dict (``paddle.save(layer.state_dict())``, ``paddle.static.save``)
    comes back flat, ``{key: ndarray}``, keys as in the file and in file order;
    Paddle's name table is dropped and arrays split at save time (protocol 2/3,
    over 1 GiB) are joined again.  A file holding a nested object (an optimizer
    state, ``{"model": ..., "epoch": 3}``) keeps its nesting, with every tensor
    as an ndarray and other values (ints, floats, strings) as they are.
    bfloat16 tensors are ``uint16`` bit patterns, as Paddle saves them.

    ``trust=True`` uses ``paddle.load`` (it runs whatever the pickle asks for).
    Raises :class:`UnsafeCheckpoint` for a pickle outside the safe set and
    :class:`FormatError` for anything that is not a Paddle parameter pickle
    (PyTorch, ONNX, an inference ``.pdiparams``, an empty or truncated file, …).
    """
    path = Path(os.fspath(path))
    found = what_is(path)
    if found.kind == "safetensors":
        return _load_safetensors(path)
    _refuse_non_pickle(found, path)
    obj = _paddle_load(path) if trust else _restricted_load(path, found)
    if not isinstance(obj, dict):
        raise FormatError(
            f"expected a state dict (a dict of tensors), found {_describe(obj)}",
            path=path,
            hint="save parameters with paddle.save(layer.state_dict(), path)",
        )
    try:
        obj = _to_numpy(obj)
    except RecursionError as e:
        raise FormatError("the pickle nests containers too deeply", path=path) from e
    obj = _join_big_params(obj, path)
    if isinstance(obj.get(NAME_TABLE_KEY), dict):
        del obj[NAME_TABLE_KEY]
    return obj


class _Bounded:
    """A read-only view of a file for :func:`pickletools.genops` that refuses, before reading,
    any read past the end of the file (so a declared length cannot make it allocate)."""

    def __init__(self, f, size: int):
        self.f, self.size = f, size

    def tell(self) -> int:
        return self.f.tell()

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.f.tell()
        if n > left:
            raise _TooLarge(n, left, self.f.tell())
        return self.f.read(n)

    def readline(self) -> bytes:
        return self.f.readline(self.size - self.f.tell())


#: opcodes a checkpoint may hold (ResNet50_vd's state dict: 7,802; its optimizer state: 4,832).
#: Each can build an object of ~64 bytes, so a file of one-byte ``EMPTY_LIST``s would expand
#: 64-fold; this bounds that at a few hundred MB.
MAX_PICKLE_OPS = 5_000_000


class _TooMany(Exception):
    """The pickle holds more opcodes than any checkpoint (internal)."""


def _prescan(f, size: int) -> None:
    """Walk the pickle's opcodes without building anything; raise :class:`_TooLarge` if one
    declares more bytes (a ``BINBYTES8``, a protocol-4 ``FRAME``, …) than the file has left,
    and :class:`_TooMany` past :data:`MAX_PICKLE_OPS` opcodes.

    The C unpickler allocates a declared length before reading it; an 11 GiB claim in a
    14-byte file must fail here instead.  Anything else odd is left to the unpickler.
    """
    view = _Bounded(f, size)
    try:
        for count, (op, arg, pos) in enumerate(pickletools.genops(view)):  # type: ignore[arg-type]  # a bounded file-like
            if op.name == "FRAME" and isinstance(arg, int) and arg > size - f.tell():
                raise _TooLarge(arg, size - f.tell(), pos)
            if count >= MAX_PICKLE_OPS:
                raise _TooMany()
    except (_TooLarge, _TooMany):
        raise
    except Exception:  # noqa: BLE001 - not a size problem: the unpickler says what is wrong
        pass
    finally:
        f.seek(0)


def _restricted_load(path: Path, found: FileKind):
    try:
        with open_regular(path, what="checkpoint") as f:
            size = os.fstat(f.fileno()).st_size
            _prescan(f, size)
            return _RestrictedUnpickler(f, limit=size, encoding="latin1").load()
    except _TooLarge as e:
        where = f" at byte {e.at}" if e.at is not None else ""
        raise FormatError(
            f"the pickle is truncated or damaged: it declares {e.declared:,} bytes of data{where}, "
            f"but the file holds only {e.available:,} more",
            path=path,
            hint="the file was cut short or altered; fetch it again",
        ) from None
    except _TooMany:
        raise FormatError(
            f"the pickle holds more than {MAX_PICKLE_OPS:,} objects; a Paddle checkpoint holds a few thousand",
            path=path,
            hint="the file is damaged or built to exhaust memory",
        ) from None
    except _Refused as e:
        raise UnsafeCheckpoint(
            f"refusing to unpickle {path}: it asks for {e.name}"
            + (f" {e.detail}" if e.detail else "")
            + ", which is outside the safe set (numpy arrays, plain containers, "
            "Paddle's tensor records)",
            path=path,
            hint=TRUST_HINT,
        ) from None
    except _NotPaddle as e:
        raise FormatError(
            f"this is a PyTorch checkpoint, not Paddle (the pickle uses {e})", path=path, hint=_NOT_PARAMS["torch"][1]
        ) from None
    except (EOFError, pickle.UnpicklingError) as e:
        text = str(e)
        if isinstance(e, EOFError) or "truncated" in text:
            raise FormatError(
                f"the pickle is truncated: the data stops before its end ({size} bytes)",
                path=path,
                hint="the file was cut short (interrupted download or copy?); fetch it again",
            ) from e
        raise FormatError(
            f"not a valid pickle ({text}); the file is {found.text}", path=path, hint="is this really a .pdparams file?"
        ) from e
    except MemoryError as e:
        raise FormatError(f"ran out of memory unpickling a {size}-byte file; it may be damaged", path=path) from e
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        OverflowError,
        struct.error,
        UnicodeDecodeError,
        RecursionError,
    ) as e:
        raise FormatError(f"damaged pickle: {type(e).__name__}: {e}", path=path) from e


def _paddle_load(path: Path):
    """``paddle.load`` for files the user trusts; tensors come back as numpy."""
    try:
        obj = paddle.load(str(path), return_numpy=True)
    except (EOFError, pickle.UnpicklingError) as e:
        raise FormatError(f"paddle.load cannot read it ({e}); it may be truncated", path=path) from e
    except (ValueError, TypeError, RuntimeError) as e:
        raise FormatError(f"paddle.load cannot read it: {e}", path=path) from e
    dense = getattr(paddle.base.core, "DenseTensor", None)

    def leaf(value):
        if isinstance(value, paddle.Tensor):
            return value.numpy()
        if dense is not None and isinstance(value, dense):
            return np.array(value)
        return value

    return _map_leaves(obj, leaf)


def _map_leaves(obj, fn):
    if isinstance(obj, dict):
        return {k: _map_leaves(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_leaves(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_leaves(v, fn) for v in obj)
    return fn(obj)


def _to_numpy(obj, seen: dict | None = None):
    """Paddle's ``(name, ndarray)`` tensor records → ndarray; OrderedDict → dict.

    Shared and cyclic references stay shared: a small pickle can reference one
    list 2**60 times over ("billion laughs"), and copying would never finish.
    """
    if isinstance(obj, np.ndarray):
        return _plain(obj)
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    if seen is None:
        seen = {}
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, dict):
        out: Any = {}
        seen[key] = out
        # dict.items, not obj.items: pickle's BUILD can set attributes on an OrderedDict
        for k, v in dict.items(obj):
            out[k] = _to_numpy(v, seen)
        return out
    if isinstance(obj, list):
        out = []
        seen[key] = out
        out.extend(_to_numpy(v, seen) for v in obj)
        return out
    if len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], np.ndarray):
        out = _plain(obj[1])
    else:
        out = tuple(_to_numpy(v, seen) for v in obj)
    seen[key] = out
    return out


def _join_big_params(obj: dict, path: Path) -> dict:
    """Undo ``_unpack_saved_dict``: join ``key@@.0``, ``key@@.1``, … into ``key``."""
    info = obj.get(BIG_PARAMS_KEY)
    if info is None:
        return obj
    try:
        joined, first_slice = {}, {}
        for key, spec in info.items():
            parts = [obj[name] for name in spec["slices"]]
            joined[key] = np.concatenate(parts).reshape(tuple(spec["OriginShape"]))
            first_slice[spec["slices"][0]] = key
        dropped = {name for spec in info.values() for name in spec["slices"]}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FormatError(f"damaged {BIG_PARAMS_KEY} table ({type(e).__name__}: {e})", path=path) from e
    # Put each joined array where its slices were, so file order (= layer order) holds.
    out = {}
    for key, value in obj.items():
        if key in first_slice:
            out[first_slice[key]] = joined[first_slice[key]]
        elif key not in dropped and key != BIG_PARAMS_KEY:
            out[key] = value
    return out


def _describe(obj) -> str:
    if isinstance(obj, np.ndarray):
        return f"a single array {list(obj.shape)} {obj.dtype}"
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], np.ndarray):
        return f"a single tensor {obj[0]!r} {list(obj[1].shape)} {obj[1].dtype}"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


# ---------------------------------------------------------------- safetensors
_SAFETENSORS_DTYPES = {
    "BOOL": "bool",
    "U8": "u1",
    "I8": "i1",
    "I16": "<i2",
    "U16": "<u2",
    "I32": "<i4",
    "U32": "<u4",
    "I64": "<i8",
    "U64": "<u8",
    "F16": "<f2",
    "F32": "<f4",
    "F64": "<f8",
    "BF16": "<u2",  # numpy has no bfloat16: bit patterns, as Paddle does
    "C64": "<c8",
}


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """``paddle.save(..., safetensors=True)`` output: a JSON header, then raw data."""
    with open_regular(path, what="checkpoint") as f:
        size = os.fstat(f.fileno()).st_size
        (n,) = struct.unpack("<Q", f.read(8))
        if not 2 <= n <= size - 8:  # checked before reading: a declared size never drives allocation
            raise FormatError(
                f"damaged safetensors header: it declares {n:,} bytes, the file has {size - 8:,}", path=path
            )
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise FormatError(f"damaged safetensors header ({e})", path=path) from e
        data = bytearray(size - 8 - n)
        f.readinto(data)
    out = {}
    try:
        entries = sorted(
            ((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]
        )
        for key, spec in entries:
            dtype = np.dtype(_SAFETENSORS_DTYPES[spec["dtype"]])
            begin, end = spec["data_offsets"]
            shape = tuple(int(d) for d in spec["shape"])
            if not 0 <= begin <= end <= len(data) or end - begin != dtype.itemsize * int(
                np.prod(shape, dtype=np.int64)
            ):
                raise ValueError(f"tensor {key!r}: offsets {begin}..{end} do not fit")
            arr = np.frombuffer(data, dtype, count=(end - begin) // dtype.itemsize, offset=begin)
            out[key] = arr.reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    except KeyError as e:
        raise FormatError(f"safetensors entry without {e} or with an unsupported dtype", path=path) from e
    except (ValueError, TypeError, AttributeError) as e:
        raise FormatError(f"damaged safetensors file ({e})", path=path) from e
    return out
