"""Read a Paddle 3 PIR program (``*.json`` from ``paddle.jit.save``) without Paddle.

The file is JSON: ``{"base_code": {"magic": "pir", "version": N, …},
"program": {"regions": [{"blocks": [{"ops": [...]}]}]}}``.  Each op is
``{"#": "<dialect>.<name>", "A": attributes, "I": [{"%": value id}],
"O": [{"%": id, "TT": type}]}``, where the dialect prefix is ``0`` (builtin)
or ``1`` (``pd_op``).  Two ops are special:

* ``"p"`` declares a parameter: ``"A": [_, _, _, name]``, ``"O": {"%": id,
  "TT": type}`` (a single output, not a list).
* ``1.data`` is an input (attributes ``name``, ``shape``, ``dtype``) and
  ``1.fetch`` an output (attribute ``name``, ``col``).

A dense tensor type is ``{"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, dims,
layout, lod, offset]}``; an attribute is ``{"N": name, "AT": {"#": kind,
"D": value}}`` with kinds such as ``0.a_i32``, ``0.a_array`` or
``1.a_intarray``.  The parameters file beside the program holds the
parameters sorted by name (:meth:`PirProgram.persistable_names`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError
from ..safe_io import PROGRAM_LIMIT, read_bytes

__all__ = ["PirProgram", "PirOp", "read_pir", "parse_pir", "PIR_DTYPES"]

#: PIR type tags -> numpy-style dtype names
PIR_DTYPES = {
    "t_f32": "float32",
    "t_f16": "float16",
    "t_bf16": "bfloat16",
    "t_f64": "float64",
    "t_i64": "int64",
    "t_i32": "int32",
    "t_i16": "int16",
    "t_i8": "int8",
    "t_ui8": "uint8",
    "t_bool": "bool",
    "t_c64": "complex64",
    "t_c128": "complex128",
}


@dataclass(frozen=True)
class PirOp:
    """One top-level op: ``type`` without the ``pd_op`` prefix (``conv2d``, ``batch_norm_``);
    builtin-dialect ops read ``builtin.combine``, ``builtin.split``."""

    type: str
    attrs: dict = field(default_factory=dict)
    inputs: tuple = ()  # value ids
    outputs: tuple = ()  # value ids
    dialect: str = "1"


@dataclass(frozen=True)
class PirProgram:
    """The parts of a PIR program a classifier needs."""

    version: int | None
    ops: tuple  # PirOp, in order (params and data excluded)
    params: tuple  # (name, dtype, shape) in program order
    inputs: tuple  # (name, shape, dtype)
    outputs: tuple  # (name, shape, dtype)
    value_types: dict = field(default_factory=dict, repr=False)  # id -> (dtype, shape)
    param_ids: dict = field(default_factory=dict, repr=False)  # id -> name
    input_ids: dict = field(default_factory=dict, repr=False)  # id -> name
    path: str | None = None

    def persistable_names(self) -> list[str]:
        """Parameter names in the order of the ``.pdiparams`` file (sorted by name)."""
        return sorted((p[0] for p in self.params), key=lambda n: n.encode("utf-8"))

    def op_histogram(self) -> dict[str, int]:
        """``{op type: count}`` of the top-level ops (data/fetch included), most frequent first."""
        counts = Counter(op.type for op in self.ops)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def producer(self, value_id: int) -> PirOp | None:
        for op in self.ops:
            if value_id in op.outputs:
                return op
        return None

    def fetch_ops(self) -> list[PirOp]:
        return sorted((op for op in self.ops if op.type == "fetch"), key=lambda op: op.attrs.get("col", 0))


def _attr_value(at):
    if not isinstance(at, dict):
        return at
    kind, data = at.get("#", ""), at.get("D")
    if kind == "0.a_array":
        return [_attr_value(v) for v in data or []]
    return data


def _tensor_type(tt) -> tuple[str | None, tuple | None]:
    try:
        d = tt["D"]
        tag = d[0]["#"].split(".", 1)[-1]
        return PIR_DTYPES.get(tag, tag), tuple(int(v) for v in d[1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None, None


def parse_pir(doc, *, path=None) -> PirProgram:
    """Decode a parsed PIR JSON document.  Raises :class:`FormatError` if it is not one."""
    try:
        if doc["base_code"]["magic"] != "pir":
            raise KeyError("magic")
        version = doc["base_code"].get("version")
        raw_ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    except (KeyError, IndexError, TypeError):
        raise FormatError(
            "not a Paddle 3 program: the JSON has no PIR base_code/program block",
            path=path,
            hint="a .json program is written by paddle.jit.save",
        ) from None
    ops, params, inputs, outputs = [], [], [], []
    value_types, param_ids, input_ids = {}, {}, {}
    try:
        for raw in raw_ops:
            name = raw.get("#", "")
            if name == "p":
                out = raw["O"]
                dtype, shape = _tensor_type(out.get("TT"))
                pname = str(raw["A"][3])
                params.append((pname, dtype, shape))
                value_types[out["%"]] = (dtype, shape)
                param_ids[out["%"]] = pname
                continue
            dialect, _, op_type = name.partition(".")
            if dialect == "0" and op_type:  # builtin ops (combine, split, …) keep a prefix
                op_type = "builtin." + op_type
            attrs = {a["N"]: _attr_value(a.get("AT")) for a in raw.get("A", []) if isinstance(a, dict)}
            outs = raw.get("O", [])
            outs = [outs] if isinstance(outs, dict) else outs
            out_ids = []
            for o in outs:
                if isinstance(o, dict) and "%" in o:
                    out_ids.append(o["%"])
                    value_types[o["%"]] = _tensor_type(o.get("TT"))
            in_ids = tuple(i.get("%") for i in raw.get("I", []) if isinstance(i, dict))
            op = PirOp(op_type or dialect, attrs, in_ids, tuple(out_ids), dialect if op_type else "")
            ops.append(op)
            if op.type == "data":
                shape = attrs.get("shape")
                inputs.append((str(attrs.get("name")), tuple(shape) if shape else None, attrs.get("dtype")))
                for i in out_ids:
                    input_ids[i] = str(attrs.get("name"))
        for op in sorted((o for o in ops if o.type == "fetch"), key=lambda o: o.attrs.get("col", 0)):
            dtype, shape = value_types.get(op.inputs[0], (None, None)) if op.inputs else (None, None)
            outputs.append((str(op.attrs.get("name")), shape, dtype))
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise FormatError(f"damaged PIR program ({type(e).__name__}: {e})", path=path) from e
    return PirProgram(
        version,
        tuple(ops),
        tuple(params),
        tuple(inputs),
        tuple(outputs),
        value_types,
        param_ids,
        input_ids,
        None if path is None else str(path),
    )


def load_json(path, *, what: str = "program") -> object:
    """The parsed JSON of a ``.json`` program: a regular file of at most
    :data:`~clsviz.safe_io.PROGRAM_LIMIT`, UTF-8, not nested beyond Python's recursion limit.
    Raises :class:`FormatError` for anything else."""
    data = read_bytes(path, what=f"{what} file", max_bytes=PROGRAM_LIMIT)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FormatError(
            f"not a Paddle 3 program: the file is not UTF-8 text (byte {e.start})",
            path=path,
            hint="a .json program is JSON text written by paddle.jit.save",
        ) from e
    except json.JSONDecodeError as e:
        raise FormatError(
            f"not a Paddle 3 program: invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})",
            path=path,
            hint="the file is damaged or cut short; export the model again",
        ) from e
    except RecursionError as e:
        raise FormatError(
            "not a Paddle 3 program: the JSON nests deeper than any program does",
            path=path,
            hint="the file is damaged or was built to crash readers",
        ) from e


def read_pir(path) -> PirProgram:
    """Read ``inference.json`` (or any ``paddle.jit.save`` PIR program) into a :class:`PirProgram`."""
    return parse_pir(load_json(path), path=path)


def declared_params(doc: Any) -> tuple[list[tuple[str, tuple]] | None, bool]:
    """What a parsed PIR JSON document declares, read defensively (for the load-safety probe):
    ``([(parameter name, shape)] or None when the layout is unknown, well-formed)``.

    Well-formed means one region and block whose ops carry the keys Paddle's deserializer reads
    and use only values defined before them (see :func:`_well_formed`).
    """
    try:
        if doc["base_code"]["magic"] != "pir":
            return None, False
        regions = doc["program"]["regions"]
        block = regions[0]["blocks"][0]
        ops = block["ops"]
    except (KeyError, IndexError, TypeError):
        return None, False
    try:
        declared = [
            (str(op["A"][3]), tuple(int(d) for d in op["O"]["TT"]["D"][1]))
            for op in ops
            if isinstance(op, dict) and op.get("#") == "p"
        ]
    except (KeyError, IndexError, TypeError, ValueError):
        declared = None  # a layout we do not know: let Paddle judge the parameters
    return declared, len(regions) == 1 and len(regions[0]["blocks"]) == 1 and _well_formed(block)


def _well_formed(block) -> bool:
    """Every op has the keys Paddle's deserializer reads, and reads only values defined before it.

    Paddle 3.3 segfaults on, for example, a parameter op without its ``OA`` list.  Anything
    unusual here (sub-regions, another serialisation layout) only means "probe it".
    """

    def tensor_ok(v) -> bool:
        if not (isinstance(v, dict) and isinstance(v.get("%"), int)):
            return False
        tt = v.get("TT")
        if tt is None:
            return True
        d = tt.get("D") if isinstance(tt, dict) else None
        return isinstance(d, list) and len(d) >= 2 and isinstance(d[1], list) and all(isinstance(x, int) for x in d[1])

    try:
        defined = {0}  # id 0: an absent optional input
        for arg in block.get("args", []):
            if not tensor_ok(arg):
                return False
            defined.add(arg["%"])
        for op in block["ops"]:
            if not isinstance(op, dict) or not isinstance(op.get("#"), str) or "regions" in op:
                return False
            if op["#"] == "p":
                if not {"A", "DA", "O", "OA", "QA"} <= set(op) or not tensor_ok(op["O"]):
                    return False
                if not (isinstance(op["A"], list) and len(op["A"]) >= 4 and isinstance(op["A"][3], str)):
                    return False
                defined.add(op["O"]["%"])
                continue
            if not {"A", "I", "O", "OA"} <= set(op):
                return False
            if not all(isinstance(a, list) for a in (op["A"], op["I"], op["O"], op["OA"])):
                return False
            for v in op["I"]:
                if not isinstance(v, dict) or v.get("%") not in defined:
                    return False
            for v in op["O"]:
                if not tensor_ok(v):
                    return False
                defined.add(v["%"])
    except (KeyError, TypeError, AttributeError):
        return False
    return True
