"""Read a legacy Paddle ``ProgramDesc`` without protobuf or Paddle.

Legacy model files (``__model__``, ``model``, ``*.pdmodel``) are one
serialised ``paddle.framework.proto.ProgramDesc`` (``framework.proto``).
This module decodes the part of it a classifier needs: blocks, variables
(name, kind, dtype, shape, persistable) and operators (type, named inputs and
outputs, attributes).  Unknown fields are skipped, so files from Paddle 1.x to
3.x read alike.

Field numbers used (framework.proto)::

    ProgramDesc  1 blocks  4 version{1 version}  5 op_version_map{1 pair{1 op_name 2 {1 version}}}
    BlockDesc    1 idx  2 parent_idx  3 vars  4 ops  5 forward_block_idx
    VarDesc      1 name  2 type  3 persistable  4 need_check_feed  5 is_parameter  6 stop_gradient
    VarType      1 type  2 selected_rows  3 lod_tensor{1 tensor 2 lod_level}  4 tensor_array
    TensorDesc   1 data_type  2 dims
    OpDesc       3 type  1 inputs  2 outputs  4 attrs  5 is_target;  Var: 1 parameter  2 arguments
    OpDesc.Attr  1 name 2 type 3 i 4 f 5 s 6 ints 7 floats 8 strings 10 b 11 bools 12 block_idx
                 13 l 14 blocks_idx 15 longs 16 float64s 17 var_name 18 vars_name 19 float64
                 20 scalar 21 scalars
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError
from ..safe_io import PROGRAM_LIMIT, read_bytes
from .protowire import WireError as _DecodeError
from .protowire import read_varint as _varint
from .protowire import signed64 as _signed
from .tensorfile import DTYPES

__all__ = ["Program", "BlockDesc", "VarDesc", "OpDesc", "read_program", "parse_program", "VAR_KINDS", "ATTR_TYPES"]

#: VarType.Type codes of non-POD kinds.  7 is called DENSE_TENSOR in Paddle 3.
VAR_KINDS = {
    7: "LOD_TENSOR",
    8: "SELECTED_ROWS",
    9: "FEED_MINIBATCH",
    10: "FETCH_LIST",
    11: "STEP_SCOPES",
    12: "LOD_RANK_TABLE",
    13: "LOD_TENSOR_ARRAY",
    14: "PLACE_LIST",
    15: "READER",
    17: "RAW",
    18: "TUPLE",
    25: "STRING",
    26: "STRINGS",
    27: "VOCAB",
    28: "FEED_LIST",
    29: "PSTRING",
    30: "SPARSE_COO",
    31: "SPARSE_CSR",
}
#: OpDesc.Attr ``type`` enum (AttrType).
ATTR_TYPES = {
    0: "INT",
    1: "FLOAT",
    2: "STRING",
    3: "INTS",
    4: "FLOATS",
    5: "STRINGS",
    6: "BOOLEAN",
    7: "BOOLEANS",
    8: "BLOCK",
    9: "LONG",
    10: "BLOCKS",
    11: "LONGS",
    12: "FLOAT64S",
    13: "VAR",
    14: "VARS",
    15: "FLOAT64",
    16: "SCALAR",
    17: "SCALARS",
}
# Kinds Paddle never stores in a params file (inference/io.cc IsPersistable).
_NOT_SAVED = {"FEED_MINIBATCH", "FETCH_LIST", "RAW", "READER", "FEED_LIST"}

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


# ------------------------------------------------------------------ data model
@dataclass(frozen=True)
class VarDesc:
    """One variable of a block."""

    name: str
    kind: str  # "LOD_TENSOR", "FEED_MINIBATCH", …
    dtype: str | None = None  # "float32", … (tensor kinds only)
    shape: tuple | None = None  # -1 for unknown (batch) dimensions
    persistable: bool = False
    lod_level: int = 0
    is_parameter: bool = False
    stop_gradient: bool = False
    need_check_feed: bool = False


@dataclass(frozen=True)
class OpDesc:
    """One operator: ``inputs``/``outputs`` map parameter names to argument (var) names."""

    type: str
    inputs: dict = field(default_factory=dict)  # {"X": ("conv2d_0.tmp_0",), …}
    outputs: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)  # {"strides": [1, 1], …}
    attr_types: dict = field(default_factory=dict, repr=False)  # {"strides": "INTS", …}
    is_target: bool = False

    def input(self, parameter: str) -> tuple:
        """Argument names bound to an input parameter (empty if absent)."""
        return self.inputs.get(parameter, ())

    def output(self, parameter: str) -> tuple:
        return self.outputs.get(parameter, ())

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def input_names(self) -> list[str]:
        return [a for args in self.inputs.values() for a in args]

    def output_names(self) -> list[str]:
        return [a for args in self.outputs.values() for a in args]


@dataclass(frozen=True)
class BlockDesc:
    idx: int
    parent_idx: int
    vars: tuple = ()  # VarDesc, in file order
    ops: tuple = ()  # OpDesc, in execution order
    forward_block_idx: int = -1

    def var(self, name: str) -> VarDesc:
        for v in self.vars:
            if v.name == name:
                return v
        raise KeyError(name)


@dataclass(frozen=True)
class Program:
    """A decoded ProgramDesc.  Block 0 is the global block."""

    blocks: tuple
    version: int | None = None
    op_versions: dict = field(default_factory=dict, repr=False)
    path: str | None = None

    # -- global block shortcuts
    @property
    def global_block(self) -> BlockDesc:
        return self.blocks[0]

    @property
    def vars(self) -> dict:
        """Variables of the global block, ``{name: VarDesc}``."""
        return {v.name: v for v in self.blocks[0].vars}

    @property
    def ops(self) -> tuple:
        """Operators of the global block, in execution order."""
        return self.blocks[0].ops

    def feed_targets(self) -> list[str]:
        """Input variable names, in ``feed`` op column order (empty for a training program)."""
        feeds = [op for op in self.ops if op.type == "feed"]
        feeds.sort(key=lambda op: op.attr("col", 0))
        return [op.output("Out")[0] for op in feeds if op.output("Out")]

    def fetch_targets(self) -> list[str]:
        """Output variable names, in ``fetch`` op column order."""
        fetches = [op for op in self.ops if op.type == "fetch"]
        fetches.sort(key=lambda op: op.attr("col", 0))
        return [op.input("X")[0] for op in fetches if op.input("X")]

    def persistable_names(self) -> list[str]:
        """Names stored in the params file, in combined-file order.

        Paddle keeps global-block variables that are persistable and not
        feed/fetch/raw holders, sorted byte-wise (``std::sort`` on
        ``std::string``; Python's ``sorted`` agrees for UTF-8 names).
        """
        names = [v.name for v in self.blocks[0].vars if v.persistable and v.kind not in _NOT_SAVED]
        return sorted(names, key=lambda n: n.encode("utf-8"))

    def op_histogram(self, *, all_blocks: bool = True) -> dict[str, int]:
        """``{op type: count}``, most frequent first."""
        blocks = self.blocks if all_blocks else self.blocks[:1]
        counts = Counter(op.type for b in blocks for op in b.ops)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def producers(self) -> dict[str, OpDesc]:
        """``{var name: op that writes it}`` for the global block (last writer wins)."""
        out = {}
        for op in self.ops:
            for name in op.output_names():
                out[name] = op
        return out

    def summary(self) -> str:
        n_params = len(self.persistable_names())
        hist = ", ".join(f"{k}×{v}" for k, v in list(self.op_histogram().items())[:8])
        return (
            f"ProgramDesc: {len(self.blocks)} block(s), {len(self.ops)} ops, "
            f"{n_params} persistable tensors; feeds {self.feed_targets()}, "
            f"fetches {self.fetch_targets()}; ops: {hist}"
        )


# ------------------------------------------------------------------ protobuf


def _fields(buf, schema: dict) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field number, wire type, value)``: int, memoryview, or 4/8 raw bytes.

    ``schema`` maps the field numbers the caller reads to the wire types it
    accepts; a known field with another wire type means the bytes are not
    this message (damage, or not a ProgramDesc at all).
    """
    pos, n = 0, len(buf)
    value: int | bytes
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _DecodeError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise _DecodeError("length-delimited field runs past the end of its message")
            value = buf[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > n:
                raise _DecodeError("fixed32 runs past the end")
            value = bytes(buf[pos : pos + 4])
            pos += 4
        elif wire == 1:
            if pos + 8 > n:
                raise _DecodeError("fixed64 runs past the end")
            value = bytes(buf[pos : pos + 8])
            pos += 8
        else:
            raise _DecodeError(f"unsupported wire type {wire}")
        if number in schema and wire not in schema[number]:
            raise _DecodeError(f"field {number} has wire type {wire}")
        yield number, wire, value


# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_TENSOR_DESC = {1: {0}, 2: {0, 2}}
_DENSE_DESC = {1: {2}, 2: {0}}
_VAR_TYPE = {1: {0}, 2: {2}, 3: {2}, 4: {2}}
_VAR_DESC = {1: {2}, 2: {2}, 3: {0}, 4: {0}, 5: {0}, 6: {0}}
_SCALAR = {1: {0}, 2: {0}, 3: {0}, 4: {1}, 5: {2}}
_COMPLEX = {1: {1}, 2: {1}}
_ATTR = {
    1: {2},
    2: {0},
    3: {0},
    4: {5},
    5: {2},
    6: {0, 2},
    7: {5, 2},
    8: {2},
    10: {0},
    11: {0, 2},
    12: {0},
    13: {0},
    14: {0, 2},
    15: {0, 2},
    16: {1, 2},
    17: {2},
    18: {2},
    19: {1},
    20: {2},
    21: {2},
}
_OP_VAR = {1: {2}, 2: {2}}
_OP_DESC = {1: {2}, 2: {2}, 3: {2}, 4: {2}, 5: {0}}
_BLOCK = {1: {0}, 2: {0}, 3: {2}, 4: {2}, 5: {0}}
_PROGRAM = {1: {2}, 4: {2}, 5: {2}}
_VERSION = {1: {0}}
_OP_VERSION_MAP = {1: {2}}
_OP_VERSION_PAIR = {1: {2}, 2: {2}}


def _str(value) -> str:
    data = bytes(value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _packed_varints(value) -> list[int]:
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _repeated_int(wire, value, out: list) -> None:
    if wire == 2:  # packed
        out.extend(_signed(v) for v in _packed_varints(value))
    else:
        out.append(_signed(value))


def _repeated_fixed(wire, value, out: list, st: struct.Struct) -> None:
    if wire == 2:  # packed
        out.extend(x[0] for x in st.iter_unpack(bytes(value)))
    else:
        out.append(st.unpack(value)[0])


def _repeated_bool(wire, value, out: list) -> None:
    if wire == 2:
        out.extend(bool(v) for v in _packed_varints(value))
    else:
        out.append(bool(value))


def _tensor_desc(buf) -> tuple[str | None, tuple]:
    code: int | None = None
    dims: list[int] = []
    for num, wire, value in _fields(buf, _TENSOR_DESC):
        if num == 1:
            code = value
        elif num == 2:
            _repeated_int(wire, value, dims)
    dtype = None if code is None else DTYPES.get(code, f"type{code}")
    return dtype, tuple(dims)


def _var_type(buf) -> tuple[str, str | None, tuple | None, int]:
    kind_code, dtype, shape, lod_level = None, None, None, 0
    for num, _, value in _fields(buf, _VAR_TYPE):
        if num == 1:
            kind_code = value
        elif num in (3, 4):  # lod_tensor / tensor_array: {1 tensor, 2 lod_level}
            for n2, _, v2 in _fields(value, _DENSE_DESC):
                if n2 == 1:
                    dtype, shape = _tensor_desc(v2)
                elif n2 == 2:
                    lod_level = _signed(v2)
        elif num == 2:  # selected_rows: a bare TensorDesc
            dtype, shape = _tensor_desc(value)
    if kind_code in VAR_KINDS:
        kind = VAR_KINDS[kind_code]
    elif kind_code in DTYPES:  # POD-typed scalar variables
        kind = DTYPES[kind_code]
    else:
        kind = f"type{kind_code}"
    return kind, dtype, shape, lod_level


def _var_desc(buf) -> VarDesc:
    kw: dict[str, Any] = {}
    kind, dtype, shape, lod_level = "LOD_TENSOR", None, None, 0
    for num, _, value in _fields(buf, _VAR_DESC):
        if num == 1:
            kw["name"] = _str(value)
        elif num == 2:
            kind, dtype, shape, lod_level = _var_type(value)
        elif num == 3:
            kw["persistable"] = bool(value)
        elif num == 4:
            kw["need_check_feed"] = bool(value)
        elif num == 5:
            kw["is_parameter"] = bool(value)
        elif num == 6:
            kw["stop_gradient"] = bool(value)
    if "name" not in kw:
        raise _DecodeError("a VarDesc has no name")
    return VarDesc(kind=kind, dtype=dtype, shape=shape, lod_level=lod_level, **kw)


def _scalar(buf) -> Any:
    kind: Any = None
    b: bool | None = None
    i: int | None = None
    r: float | None = None
    c: complex | None = None
    for num, _, value in _fields(buf, _SCALAR):
        if num == 1:
            kind = value
        elif num == 2:
            b = bool(value)
        elif num == 3:
            i = _signed(value)
        elif num == 4:
            r = _F64.unpack(value)[0]
        elif num == 5:
            re = im = 0.0
            for n2, _, v2 in _fields(value, _COMPLEX):
                if n2 == 1:
                    re = _F64.unpack(v2)[0]
                elif n2 == 2:
                    im = _F64.unpack(v2)[0]
            c = complex(re, im)
    # Scalar.Type: 1 BOOLEAN, 2 LONG, 3 FLOAT64, 4 COMPLEX128
    values: dict[Any, Any] = {1: b, 2: i, 3: r, 4: c}
    return values.get(kind, next((x for x in (b, i, r, c) if x is not None), None))


def _attr(buf) -> tuple[str, str, Any]:
    name: str | None = None
    type_code: int | None = None
    scalars: dict[int, Any] = {}
    lists: dict[int, list] = {}
    for num, wire, value in _fields(buf, _ATTR):
        if num == 1:
            name = _str(value)
        elif num == 2:
            type_code = value
        elif num in (3, 12, 13):  # i, block_idx, l
            scalars[num] = _signed(value)
        elif num == 4:
            scalars[num] = _F32.unpack(value)[0]
        elif num == 19:
            scalars[num] = _F64.unpack(value)[0]
        elif num in (5, 17):  # s, var_name
            scalars[num] = _str(value)
        elif num == 10:
            scalars[num] = bool(value)
        elif num == 20:
            scalars[num] = _scalar(value)
        elif num in (6, 14, 15):  # ints, blocks_idx, longs
            _repeated_int(wire, value, lists.setdefault(num, []))
        elif num == 7:
            _repeated_fixed(wire, value, lists.setdefault(num, []), _F32)
        elif num == 16:
            _repeated_fixed(wire, value, lists.setdefault(num, []), _F64)
        elif num in (8, 18):  # strings, vars_name
            lists.setdefault(num, []).append(_str(value))
        elif num == 11:
            _repeated_bool(wire, value, lists.setdefault(num, []))
        elif num == 21:
            lists.setdefault(num, []).append(_scalar(value))
    if name is None:
        raise _DecodeError("an attribute has no name")
    type_name = ATTR_TYPES.get(type_code, f"type{type_code}") if type_code is not None else "typeNone"
    slot = {
        "INT": 3,
        "FLOAT": 4,
        "STRING": 5,
        "BOOLEAN": 10,
        "BLOCK": 12,
        "LONG": 13,
        "VAR": 17,
        "FLOAT64": 19,
        "SCALAR": 20,
    }.get(type_name)
    if slot is not None:
        default = {"STRING": "", "BOOLEAN": False, "FLOAT": 0.0, "FLOAT64": 0.0}.get(type_name, 0)
        return name, type_name, scalars.get(slot, None if type_name == "SCALAR" else default)
    slot = {
        "INTS": 6,
        "FLOATS": 7,
        "STRINGS": 8,
        "BOOLEANS": 11,
        "BLOCKS": 14,
        "LONGS": 15,
        "FLOAT64S": 16,
        "VARS": 18,
        "SCALARS": 21,
    }.get(type_name)
    if slot is not None:
        return name, type_name, lists.get(slot, [])
    # Unknown type code (a newer Paddle): keep whatever was set.
    found = list(scalars.values()) + list(lists.values())
    return name, type_name, found[0] if found else None


def _op_var(buf) -> tuple[str, tuple]:
    parameter, args = None, []
    for num, _, value in _fields(buf, _OP_VAR):
        if num == 1:
            parameter = _str(value)
        elif num == 2:
            args.append(_str(value))
    if parameter is None:
        raise _DecodeError("an op input/output has no parameter name")
    return parameter, tuple(args)


def _op_desc(buf) -> OpDesc:
    op_type, inputs, outputs, attrs, types, is_target = None, {}, {}, {}, {}, False
    for num, _, value in _fields(buf, _OP_DESC):
        if num == 3:
            op_type = _str(value)
        elif num == 1:
            k, v = _op_var(value)
            inputs[k] = v
        elif num == 2:
            k, v = _op_var(value)
            outputs[k] = v
        elif num == 4:
            k, t, v = _attr(value)
            attrs[k] = v
            types[k] = t
        elif num == 5:
            is_target = bool(value)
    if op_type is None:
        raise _DecodeError("an OpDesc has no type")
    return OpDesc(op_type, inputs, outputs, attrs, types, is_target)


def _block_desc(buf) -> BlockDesc:
    idx, parent, fwd, vars_, ops = None, None, -1, [], []
    for num, _, value in _fields(buf, _BLOCK):
        if num == 1:
            idx = _signed(value)
        elif num == 2:
            parent = _signed(value)
        elif num == 3:
            vars_.append(_var_desc(value))
        elif num == 4:
            ops.append(_op_desc(value))
        elif num == 5:
            fwd = _signed(value)
    if idx is None:
        raise _DecodeError("a BlockDesc has no idx")
    return BlockDesc(idx, -1 if parent is None else parent, tuple(vars_), tuple(ops), fwd)


def parse_program(data: bytes, *, path=None) -> Program:
    """Decode ProgramDesc bytes.  Raises :class:`FormatError` if they are not one."""
    head = bytes(data[:16]).lstrip()
    if head.startswith(b"{"):
        raise FormatError(
            "this is a PIR JSON program, not a legacy ProgramDesc",
            path=path,
            hint="Paddle 3 writes *.json programs; load them with the predictor",
        )
    if head[:1] == b"\x80":
        raise FormatError("this is a Python pickle (e.g. .pdparams), not a ProgramDesc", path=path)
    buf = memoryview(data)
    blocks, version, op_versions = [], None, {}
    try:
        for num, _, value in _fields(buf, _PROGRAM):
            if num == 1:
                blocks.append(_block_desc(value))
            elif num == 4:
                for n2, _, v2 in _fields(value, _VERSION):
                    if n2 == 1:
                        version = _signed(v2)
            elif num == 5:
                for n2, _, pair in _fields(value, _OP_VERSION_MAP):
                    if n2 != 1:
                        continue
                    op_name, op_version = None, None
                    for n3, _, v3 in _fields(pair, _OP_VERSION_PAIR):
                        if n3 == 1:
                            op_name = _str(v3)
                        elif n3 == 2:
                            for n4, _, v4 in _fields(v3, _VERSION):
                                if n4 == 1:
                                    op_version = _signed(v4)
                    if op_name is not None:
                        op_versions[op_name] = op_version
    except (_DecodeError, struct.error) as e:
        raise FormatError(
            f"not a Paddle ProgramDesc (protobuf decoding failed: {e})",
            path=path,
            hint="expected __model__, model or *.pdmodel written by Paddle",
        ) from e
    if not blocks or blocks[0].idx != 0:
        raise FormatError(
            "not a Paddle ProgramDesc: no global block found",
            path=path,
            hint="expected __model__, model or *.pdmodel written by Paddle",
        )
    return Program(tuple(blocks), version, op_versions, None if path is None else str(path))


def read_program(path) -> Program:
    """Read ``__model__`` / ``model`` / ``*.pdmodel`` into a :class:`Program`."""
    data = read_bytes(path, what="program file", max_bytes=PROGRAM_LIMIT)
    if not data:
        raise FormatError("program file is empty", path=path)
    return parse_program(data, path=path)
