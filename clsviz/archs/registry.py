"""Architecture registry: ``get_model(name)`` and ``list_models(pattern)``.

Families register builders with :func:`register_model`; a duplicate name (or
alias) is an error.  A registered network answers to its PaddleClas name
(``PPLCNet_x1_0``), its PaddleX name (``PP-LCNet_x1_0``), any alias, and any
spelling of those that differs only in case, ``-`` and ``_``.  Besides
registered names, ``get_model`` accepts ``"paddle.vision:resnet18"``-style
names for ``paddle.vision.models`` and any ``"package.module:callable"`` that
returns a ``paddle.nn.Layer``.

Parameter counts and FLOPs at 224x224 are measured once by
``python benchmarks/arch_table.py --write`` into ``clsviz/data/architectures.json``
(building 60 networks takes a minute, too long for ``list_models``);
``tests/test_arch_table.py`` re-measures them, so the stored numbers stay true.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import html
import importlib
import inspect
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .._paddle import dygraph_mode, paddle
from ..errors import ArchitectureError, UntrustedCode
from .specs import infer_class_num

STATS_FILE = Path(__file__).resolve().parents[1] / "data" / "architectures.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    family: str
    default_input: tuple = (3, 224, 224)
    description: str = ""
    paddlex_name: str | None = None  # the name PaddleX's model list knows (Global.model_name)
    aliases: tuple = ()


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`list_models`: names, family, size and cost at 224x224."""

    name: str
    family: str
    paddlex_name: str | None
    params: int | None  # trainable parameters at 1000 classes (BN running stats excluded)
    macs: int | None  # multiply-accumulates of conv + linear layers, one 3x224x224 image
    description: str = ""

    @property
    def flops(self) -> int | None:
        """FLOPs = 2 × MACs (PaddleClas's model-zoo "FLOPs" column counts MACs)."""
        return None if self.macs is None else 2 * self.macs

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "paddlex_name": self.paddlex_name,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "description": self.description,
        }


def _fmt(n: int | None, scale: float, digits: int) -> str:
    return "?" if n is None else f"{n / scale:.{digits}f}"


class ModelList(tuple):
    """The names :func:`list_models` matched — a tuple of ``str`` — that shows itself as a table.

    ``.info`` holds a :class:`ModelInfo` per name (parameters, FLOPs at 224, PaddleX name).
    """

    info: tuple

    def __new__(cls, infos):
        infos = tuple(infos)
        obj = super().__new__(cls, (i.name for i in infos))
        obj.info = infos
        return obj

    def __eq__(self, other):
        return tuple(self) == tuple(other) if isinstance(other, (list, tuple)) else NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = tuple.__hash__

    def to_dict(self) -> list[dict]:
        return [i.to_dict() for i in self.info]

    def to_text(self) -> str:
        w = max([len(n) for n in self] + [4])
        lines = [f"{'name':<{w}}  {'family':<12} {'params':>8} {'GFLOPs':>7} {'GMACs':>7}  PaddleX name"]
        for i in self.info:
            lines.append(
                f"{i.name:<{w}}  {i.family:<12} {_fmt(i.params, 1e6, 2) + 'M':>8} "
                f"{_fmt(i.flops, 1e9, 3):>7} {_fmt(i.macs, 1e9, 3):>7}  {i.paddlex_name or '-'}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text() if self else "ModelList()"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(i.name)}</code></td><td>{html.escape(i.family)}</td>"
            f"<td style='text-align:right'>{_fmt(i.params, 1e6, 2)} M</td>"
            f"<td style='text-align:right'>{_fmt(i.flops, 1e9, 3)}</td>"
            f"<td style='text-align:right'>{_fmt(i.macs, 1e9, 3)}</td>"
            f"<td><code>{html.escape(i.paddlex_name or '-')}</code></td></tr>"
            for i in self.info
        )
        return (
            "<table><tr><th>name</th><th>family</th><th>params</th><th>GFLOPs @224</th>"
            f"<th>GMACs @224</th><th>PaddleX name</th></tr>{rows}</table>"
        )


_REGISTRY: dict[str, ModelSpec] = {}
_LOOKUP: dict[str, str] = {}  # normalised spelling -> registered name


def _norm(name: str) -> str:
    """``PP-HGNetV2-B0``, ``pphgnetv2_b0`` and ``PPHGNetV2_B0`` are one spelling."""
    return re.sub(r"[-_\s]", "", name).lower()


def register_model(
    name: str | None = None,
    *,
    family: str = "",
    default_input=(3, 224, 224),
    paddlex_name: str | None = None,
    aliases=(),
):
    """Decorator: register ``fn(class_num=..., **kw) -> Layer`` under ``name`` (and its aliases)."""

    def deco(fn):
        key = name or fn.__name__
        spellings = [key] + ([paddlex_name] if paddlex_name else []) + list(aliases)
        for s in spellings:
            other = _LOOKUP.get(_norm(s))
            if (other is not None and other != key) or key in _REGISTRY:
                raise ArchitectureError(
                    f"architecture {s!r} is registered twice" + (f" (as {other!r})" if other and other != key else "")
                )
        doc = (inspect.getdoc(fn) or "").splitlines()
        _REGISTRY[key] = ModelSpec(
            key, fn, family, tuple(default_input), doc[0] if doc else "", paddlex_name, tuple(aliases)
        )
        for s in spellings:
            _LOOKUP[_norm(s)] = key
        return fn

    return deco


@lru_cache(maxsize=1)
def _stats() -> dict:
    try:
        return json.loads(STATS_FILE.read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError):
        return {}


def model_info(name: str) -> ModelInfo:
    """Names, family, parameters and FLOPs at 224 of one registered architecture."""
    spec = model_spec(name)
    s = _stats().get(spec.name, {})
    return ModelInfo(spec.name, spec.family, spec.paddlex_name, s.get("params"), s.get("macs"), spec.description)


def state_signature(state) -> str | None:
    """A short hash of a state dict's names and shapes, the class count left out.

    ``state`` maps names to arrays or shape tuples.  The classifier's trailing tensors
    (the last ones whose shapes hold the class count) have that dimension masked, so a
    checkpoint fine-tuned to 7 classes signs like the 1000-class network.
    """
    shapes = {k: tuple(int(d) for d in getattr(v, "shape", v)) for k, v in state.items()}
    if not shapes:
        return None
    n = infer_class_num({k: _Shaped(s) for k, s in shapes.items()})
    masked = set()
    for k in reversed(list(shapes)):
        if n is None or n not in shapes[k]:
            break
        masked.add(k)
    rows = [f"{k}:{tuple(-1 if (k in masked and d == n) else d for d in shapes[k])}" for k in sorted(shapes)]
    return hashlib.sha1("\n".join(rows).encode()).hexdigest()[:16]


class _Shaped:
    """A shape standing in for an array (``infer_class_num`` reads ``ndim`` and ``shape``)."""

    def __init__(self, shape):
        self.shape, self.ndim = shape, len(shape)


def guess_architecture(state) -> str | None:
    """The registered architecture whose parameter names and shapes ``state`` has, or None.

    Compares with signatures stored by ``benchmarks/arch_table.py`` (networks at their
    default options); a network built with other options, or an unknown one, gives None.
    """
    sig = state_signature(state)
    hits = sorted(n for n, s in _stats().items() if sig is not None and s.get("signature") == sig)
    return hits[0] if len(hits) == 1 else None


def list_models(pattern: str = "*") -> ModelList:
    """Registered architectures whose name, PaddleX name or alias matches a glob (case-insensitive).

    The result is a tuple of registered names; in Jupyter (or ``print``) it is a table
    with each network's parameters, FLOPs at 224x224 and PaddleX name (see ``.info``).
    """
    pat = pattern.lower()
    names = sorted(
        n
        for n, s in _REGISTRY.items()
        if any(fnmatch.fnmatch(x.lower(), pat) for x in (n, s.paddlex_name, *s.aliases) if x)
    )
    return ModelList(model_info(n) for n in names)


def model_spec(name: str) -> ModelSpec:
    """The registered spec for ``name`` in any of its spellings; :class:`ArchitectureError` if none."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    key = _LOOKUP.get(_norm(name))
    if key is not None:
        return _REGISTRY[key]

    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.6)
    raise ArchitectureError(
        f"unknown architecture {name!r}",
        hint=(f"did you mean one of {close}? " if close else "")
        + "see clsviz.list_models(), or pass 'package.module:callable'",
    )


def paddlex_name(name: str) -> str | None:
    """The PaddleX model name of a registered architecture (``PPLCNet_x1_0`` → ``PP-LCNet_x1_0``).

    None for names PaddleX does not know (``ResNet18_vd_x0_25``, ``paddle.vision:*``,
    ``module:callable``).
    """
    if ":" in name and not name.startswith("paddle.vision:"):
        return None
    try:
        return model_spec(name).paddlex_name
    except ArchitectureError:
        return None


def imports_code(name) -> bool:
    """Whether building ``name`` would import Python code from outside clsviz's registry
    (``"package.module:callable"``; ``paddle.vision:NAME`` entries are registered)."""
    return isinstance(name, str) and ":" in name and name.partition(":")[0] not in ("paddle.vision", "vision")


def refuse_code_from_files(name, *, where=None, field: str = "Global.model_name") -> None:
    """Raise :class:`UntrustedCode` if ``name``, read from a model's files, would import code.

    Names from files resolve only in clsviz's registry; arbitrary callables are imported
    only when the caller passes them (``arch=``) or opts in (``trust=True`` / ``--trust``).
    """
    if imports_code(name):
        raise UntrustedCode(
            f"{field} names the architecture {name!r}, Python code outside clsviz's registry; "
            "clsviz does not import code because a model's files ask for it",
            path=where,
            hint="if you trust this model and its code, pass trust=True (CLI: --trust); or pass "
            "arch= yourself (a registered name, see clsviz.list_models())",
        )


def get_model(name: str, class_num: int = 1000, **kwargs) -> Any:  # a paddle.nn.Layer
    """Build a network by registry name, ``paddle.vision:NAME`` or ``module:callable``."""
    if not isinstance(class_num, int) or isinstance(class_num, bool) or class_num < 1:
        raise ArchitectureError(f"class_num must be a positive integer, got {class_num!r}")
    if ":" in name:
        fn = _import_callable(name)
    else:
        fn = model_spec(name).builder
    try:
        with dygraph_mode():
            net = fn(class_num=class_num, **kwargs)
    except (TypeError, ValueError) as e:
        raise ArchitectureError(
            f"cannot build {name!r}: {e}", hint="the callable must accept class_num= and the options given"
        ) from e
    if not isinstance(net, paddle.nn.Layer):
        raise ArchitectureError(f"{name!r} returned {type(net).__name__}, expected a paddle.nn.Layer")
    return net


def _import_callable(ref: str):
    mod_name, _, attr = ref.partition(":")
    if mod_name in ("paddle.vision", "vision"):
        key = f"paddle.vision:{attr}"
        if key in _REGISTRY:
            return _REGISTRY[key].builder
        raise ArchitectureError(
            f"paddle.vision.models has no classifier {attr!r}", hint="see clsviz.list_models('paddle.vision:*')"
        )
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:
        raise ArchitectureError(
            f"cannot import module {mod_name!r} for architecture {ref!r}: {e}", hint="is it on sys.path / installed?"
        ) from e
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ArchitectureError(f"module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ArchitectureError(f"{ref!r} is not callable")
    return obj
