"""Paddle's LoDTensor serialisation, read and written without Paddle.

One serialised tensor (what ``save_persistables`` writes to a loose file per
variable, and what combined files such as ``__params__``, ``params`` and
``*.pdiparams`` hold back to back), all little-endian:

=======  ==========================  ===========================================
size     field                       notes
=======  ==========================  ===========================================
4        uint32 version              always 0
8        uint64 lod_level            number of LoD levels (0 for weights)
per LoD  uint64 nbytes + offsets     ``nbytes / 8`` size_t offsets per level
4        uint32 tensor version       always 0
4        int32 desc_size             length of the next field
n        ``VarType.TensorDesc``      protobuf: field 1 data_type, field 2 dims
rest     raw data                    C order, ``prod(dims) * itemsize`` bytes
=======  ==========================  ===========================================

A combined file is just these records concatenated, in the order of the
program's persistable names sorted byte-wise (see
:func:`clsviz.formats.programdesc.Program.persistable_names`); it carries no
names itself.

bfloat16: numpy has no bf16, so bf16 tensors come back as ``uint16`` bit
patterns, and ``uint16`` arrays are written as bf16 (Paddle's own convention
for ``np.uint16``).  Pass ``dtype="uint16"`` to write a true uint16 tensor.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..errors import FormatError
from ..safe_io import open_regular
from .protowire import encode_varint as _varint
from .protowire import read_varint as _read_varint
from .protowire import signed64 as _signed64

__all__ = [
    "TensorRecord",
    "TensorInfo",
    "DTYPES",
    "read_tensor",
    "read_tensor_record",
    "write_tensor",
    "tensor_bytes",
    "read_tensor_file",
    "write_tensor_file",
    "read_combined",
    "iter_combined",
    "write_combined",
    "scan_combined",
    "is_tensor_file",
    "encode_tensor_desc",
    "decode_tensor_desc",
]

# VarType.Type codes (framework.proto) -> (name, numpy dtype).
_CODE_TO_DTYPE: dict[int, tuple[str, np.dtype]] = {
    0: ("bool", np.dtype("bool")),
    1: ("int16", np.dtype("<i2")),
    2: ("int32", np.dtype("<i4")),
    3: ("int64", np.dtype("<i8")),
    4: ("float16", np.dtype("<f2")),
    5: ("float32", np.dtype("<f4")),
    6: ("float64", np.dtype("<f8")),
    20: ("uint8", np.dtype("uint8")),
    21: ("int8", np.dtype("int8")),
    22: ("bfloat16", np.dtype("<u2")),
    23: ("complex64", np.dtype("<c8")),
    24: ("complex128", np.dtype("<c16")),
    36: ("uint16", np.dtype("<u2")),
    37: ("uint32", np.dtype("<u4")),
    38: ("uint64", np.dtype("<u8")),
}
_NAME_TO_CODE = {name: code for code, (name, _) in _CODE_TO_DTYPE.items()}
#: Paddle dtype names this codec knows, by ``VarType.Type`` code.
DTYPES = {code: name for code, (name, _) in _CODE_TO_DTYPE.items()}

# numpy kind -> code.  uint16 maps to bf16 on purpose (see module docstring).
_NUMPY_TO_CODE = {
    np.dtype("bool"): 0,
    np.dtype("int16"): 1,
    np.dtype("int32"): 2,
    np.dtype("int64"): 3,
    np.dtype("float16"): 4,
    np.dtype("float32"): 5,
    np.dtype("float64"): 6,
    np.dtype("uint8"): 20,
    np.dtype("int8"): 21,
    np.dtype("uint16"): 22,
    np.dtype("complex64"): 23,
    np.dtype("complex128"): 24,
    np.dtype("uint32"): 37,
    np.dtype("uint64"): 38,
}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
# Refuse absurd headers instead of allocating gigabytes for a damaged file.
_MAX_DESC = 1 << 16
_MAX_LOD_LEVELS = 64


@dataclass(frozen=True)
class TensorRecord:
    """One deserialised tensor: data plus what the header said."""

    array: np.ndarray
    dtype: str  # Paddle name: "float32", "bfloat16", …
    lod: tuple = ()  # tuple of tuples of offsets, usually empty


@dataclass(frozen=True)
class TensorInfo:
    """Header of one tensor inside a file, without its data."""

    index: int
    offset: int  # where the record starts in the file
    data_offset: int  # where its raw data starts
    dtype: str
    shape: tuple
    nbytes: int
    lod_level: int = 0


# --------------------------------------------------------------------- protobuf


def encode_tensor_desc(code: int, dims: Sequence[int]) -> bytes:
    """``VarType.TensorDesc``: field 1 data_type, field 2 dims (unpacked, as proto2 writes)."""
    out = bytearray(b"\x08" + _varint(code))
    for d in dims:
        out += b"\x10" + _varint(int(d))
    return bytes(out)


def decode_tensor_desc(buf: bytes) -> tuple[int, tuple]:
    """Return ``(data_type code, dims)``; accepts packed or unpacked dims."""
    code = None
    dims: list[int] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            if field == 1:
                code = value
            elif field == 2:
                dims.append(_signed64(value))
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            end = pos + size
            if end > len(buf):
                raise ValueError("length-delimited field runs past the end")
            if field == 2:  # packed dims
                while pos < end:
                    value, pos = _read_varint(buf, pos)
                    dims.append(_signed64(value))
            pos = end
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if code is None:
        raise ValueError("TensorDesc has no data_type")
    return code, tuple(dims)


# --------------------------------------------------------------------- reading
def _open(path):
    return open_regular(path, what="tensor file")


def _read_exact(f: BinaryIO, n: int, what: str, index: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise FormatError(
            f"truncated file: expected {n} bytes for the {what} of tensor #{index}, found {len(data)}",
            path=getattr(f, "name", None),
            hint="the file was cut short (interrupted download or copy?)",
        )
    return data


def _read_header(f: BinaryIO, index: int):
    """Read up to the raw data.  Returns None at a clean EOF."""
    path = getattr(f, "name", None)
    first = f.read(4)
    if not first:
        return None
    if len(first) != 4:
        raise FormatError(f"truncated file: {len(first)} stray bytes where tensor #{index} should start", path=path)
    (version,) = _U32.unpack(first)
    if version != 0:
        raise FormatError(
            f"not a Paddle tensor record: tensor #{index} starts with version {version}, expected 0",
            path=path,
            hint="is this a pickle (.pdparams) or a program (.pdmodel) instead of parameters?",
        )
    (lod_level,) = _U64.unpack(_read_exact(f, 8, "LoD level", index))
    if lod_level > _MAX_LOD_LEVELS:
        raise FormatError(
            f"tensor #{index} claims {lod_level} LoD levels; the file is damaged or not a Paddle tensor file", path=path
        )
    lod = []
    for _ in range(lod_level):
        (size,) = _U64.unpack(_read_exact(f, 8, "LoD size", index))
        if size % 8:
            raise FormatError(
                f"tensor #{index}: LoD level of {size} bytes is not a whole number of size_t offsets", path=path
            )
        left = _remaining(f)
        if left is not None and size > left:  # checked before reading: never allocate what is not there
            raise FormatError(
                f"truncated file: tensor #{index} declares a LoD level of {size} bytes, but only {left} remain",
                path=path,
                hint="the file is damaged or not a Paddle tensor file",
            )
        raw = _read_exact(f, size, "LoD offsets", index)
        lod.append(tuple(int(v) for v in np.frombuffer(raw, "<u8")))
    (tversion,) = _U32.unpack(_read_exact(f, 4, "tensor version", index))
    if tversion != 0:
        raise FormatError(f"tensor #{index}: tensor version {tversion}, expected 0", path=path)
    (desc_size,) = _I32.unpack(_read_exact(f, 4, "descriptor size", index))
    if not 0 < desc_size <= _MAX_DESC:
        raise FormatError(
            f"tensor #{index}: descriptor size {desc_size} is out of range; the "
            "file is damaged or not a Paddle tensor file",
            path=path,
        )
    desc = _read_exact(f, desc_size, "descriptor", index)
    try:
        code, dims = decode_tensor_desc(desc)
    except ValueError as e:
        raise FormatError(f"tensor #{index}: cannot decode its TensorDesc ({e})", path=path) from e
    if code not in _CODE_TO_DTYPE:
        raise FormatError(
            f"tensor #{index}: unsupported data type code {code}",
            path=path,
            hint=f"known codes: {sorted(_CODE_TO_DTYPE)}",
        )
    if any(d < 0 for d in dims):
        raise FormatError(f"tensor #{index}: negative dimension in shape {list(dims)}", path=path)
    name, np_dtype = _CODE_TO_DTYPE[code]
    nbytes = math.prod(dims) * np_dtype.itemsize
    return name, np_dtype, dims, nbytes, tuple(lod)


def _remaining(f: BinaryIO) -> int | None:
    """Bytes left in a seekable stream, or None when that cannot be known cheaply."""
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    if isinstance(f, io.BytesIO):
        return f.getbuffer().nbytes - f.tell()
    return None


def _read_record(f: BinaryIO, index: int) -> TensorRecord | None:
    """Read one record; None at a clean end of file."""
    header = _read_header(f, index)
    if header is None:
        return None
    name, np_dtype, dims, nbytes, lod = header
    left = _remaining(f)
    if left is not None and left < nbytes:
        # checked before allocating: a damaged shape must not ask for terabytes
        raise FormatError(
            f"truncated file: expected {nbytes} bytes of data for tensor #{index}, found {left}",
            path=getattr(f, "name", None),
            hint="the file was cut short (interrupted download or copy?)",
        )
    buf = bytearray(nbytes)
    if hasattr(f, "readinto"):
        got = f.readinto(buf)
    else:
        data = f.read(nbytes)
        got = len(data)
        buf[:got] = data
    if got != nbytes:
        raise FormatError(
            f"truncated file: expected {nbytes} bytes of data for tensor #{index}, found {got}",
            path=getattr(f, "name", None),
            hint="the file was cut short (interrupted download or copy?)",
        )
    arr = np.frombuffer(buf, dtype=np_dtype).reshape(dims)
    if not np_dtype.isnative:
        arr = arr.astype(np_dtype.newbyteorder("="))
    return TensorRecord(arr, name, lod)


def read_tensor_record(f: BinaryIO, *, index: int = 0) -> TensorRecord:
    """Read one tensor record from a binary stream (header, LoD, data)."""
    record = _read_record(f, index)
    if record is None:
        raise FormatError(f"unexpected end of file: expected tensor #{index}", path=getattr(f, "name", None))
    return record


def read_tensor(f: BinaryIO) -> np.ndarray:
    """Read one serialised tensor from a binary stream and return its array."""
    return read_tensor_record(f).array


def read_tensor_file(path) -> np.ndarray:
    """Read a loose tensor file (one variable, as ``save_persistables`` writes)."""
    with _open(path) as f:
        arr = read_tensor_record(f).array
        extra = len(f.read(1))
    if extra:
        raise FormatError(
            "file holds more than one tensor", path=path, hint="use read_combined() for combined parameter files"
        )
    return arr


def iter_combined(path) -> Iterator[np.ndarray]:
    """Yield the tensors of a combined file in order, until a clean end of file."""
    with _open(path) as f:
        index = 0
        while (record := _read_record(f, index)) is not None:
            yield record.array
            index += 1


def read_combined(path, names: Sequence[str] | None = None):
    """Read every tensor of a combined params file.

    Without ``names`` a list comes back.  With ``names`` (the program's
    persistable names in combined order) a ``{name: array}`` dict, and the
    count must match exactly.
    """
    arrays = list(iter_combined(path))
    if names is None:
        return arrays
    names = list(names)
    if len(names) != len(arrays):
        raise FormatError(
            f"the params file holds {len(arrays)} tensors but {len(names)} names were given",
            path=path,
            hint="does the params file belong to this program? (combined files follow the "
            "sorted persistable names of the model file next to them)",
        )
    return dict(zip(names, arrays))


def scan_combined(path) -> list[TensorInfo]:
    """Headers of every tensor in a (combined or loose) file, skipping the data."""
    infos: list[TensorInfo] = []
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        index = 0
        while True:
            start = f.tell()
            header = _read_header(f, index)
            if header is None:
                return infos
            name, _, dims, nbytes, lod = header
            data_offset = f.tell()
            if data_offset + nbytes > size:
                raise FormatError(
                    f"truncated file: expected {nbytes} bytes of data for tensor #{index}, found {size - data_offset}",
                    path=path,
                )
            infos.append(TensorInfo(index, start, data_offset, name, dims, nbytes, len(lod)))
            f.seek(data_offset + nbytes)
            index += 1


def is_tensor_file(path) -> bool:
    """Whether ``path`` is exactly one serialised tensor (a loose persistable file).

    Reads only the header; the data size must account for the rest of the file.
    """
    try:
        with _open(path) as f:
            size = os.fstat(f.fileno()).st_size
            header = _read_header(f, 0)
            if header is None:
                return False
            return f.tell() + header[3] == size
    except (OSError, FormatError):
        return False


# --------------------------------------------------------------------- writing
def _code_for(arr: np.ndarray, dtype: str | None) -> int:
    if dtype is not None:
        if dtype not in _NAME_TO_CODE:
            raise FormatError(f"unknown tensor dtype {dtype!r}", hint=f"one of {sorted(_NAME_TO_CODE)}")
        code = _NAME_TO_CODE[dtype]
        if _CODE_TO_DTYPE[code][1].itemsize != arr.dtype.itemsize:
            raise FormatError(f"cannot write a {arr.dtype} array as {dtype}")
        return code
    key = arr.dtype.newbyteorder("=") if arr.dtype.byteorder not in "=|" else arr.dtype
    if key not in _NUMPY_TO_CODE:
        raise FormatError(
            f"arrays of dtype {arr.dtype} cannot be stored in a Paddle tensor file",
            hint="convert to float32/float16/int64/… first",
        )
    return _NUMPY_TO_CODE[key]


def tensor_bytes(arr, *, dtype: str | None = None, lod: Sequence[Sequence[int]] = ()) -> bytes:
    """Serialise one array exactly as Paddle's ``SerializeToStream`` does."""
    buf = io.BytesIO()
    write_tensor(buf, arr, dtype=dtype, lod=lod)
    return buf.getvalue()


def write_tensor(f: BinaryIO, arr, *, dtype: str | None = None, lod: Sequence[Sequence[int]] = ()) -> None:
    """Write one array as a Paddle tensor record to a binary stream."""
    arr = np.asarray(arr)
    code = _code_for(arr, dtype)
    f.write(_U32.pack(0))
    f.write(_U64.pack(len(lod)))
    for level in lod:
        offsets = np.asarray(level, dtype="<u8")
        f.write(_U64.pack(offsets.nbytes))
        f.write(offsets.tobytes())
    f.write(_U32.pack(0))
    desc = encode_tensor_desc(code, arr.shape)
    f.write(_I32.pack(len(desc)))
    f.write(desc)
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    f.write(np.ascontiguousarray(little).tobytes())


def write_tensor_file(path, arr, *, dtype: str | None = None) -> None:
    """Write one array to a loose tensor file."""
    with open(path, "wb") as f:
        write_tensor(f, arr, dtype=dtype)


def write_combined(path, arrays) -> None:
    """Write a combined params file.

    ``arrays`` is a sequence (written in that order) or a mapping (written in
    sorted-key order, which is how Paddle orders combined files).
    """
    if hasattr(arrays, "keys"):
        arrays = [arrays[k] for k in sorted(arrays.keys())]
    with open(path, "wb") as f:
        for arr in arrays:
            write_tensor(f, arr)


def shape_fits(declared, stored) -> bool:
    """Whether a stored tensor's shape is what a program declares (``-1``: any size).

    The one weights-vs-program shape check: the load-safety probe, ``inspect`` and the
    program rebuild all ask it.
    """
    return len(declared) == len(stored) and all(w < 0 or w == g for w, g in zip(declared, stored))
