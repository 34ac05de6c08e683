"""Architecture registry: ``get_model(name)`` and ``list_models(pattern)``.

Families register builders with :func:`register_model`; a duplicate name is an
error.  Besides registered names, ``get_model`` accepts
``"paddle.vision:resnet18"``-style names for ``paddle.vision.models`` and any
``"package.module:callable"`` that returns a ``paddle.nn.Layer``.
"""
from __future__ import annotations

import fnmatch
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

from ..errors import ArchitectureError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    family: str
    default_input: tuple = (3, 224, 224)
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str | None = None, *, family: str = "", default_input=(3, 224, 224)):
    """Decorator: register ``fn(class_num=..., **kw) -> Layer`` under ``name``."""

    def deco(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ArchitectureError(f"architecture {key!r} is registered twice")
        doc = (inspect.getdoc(fn) or "").splitlines()
        _REGISTRY[key] = ModelSpec(key, fn, family, tuple(default_input), doc[0] if doc else "")
        return fn

    return deco


def _ensure_builtin():
    from . import resnet_vd, vision  # noqa: F401  (register on import)


def list_models(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a glob ``pattern`` (case-insensitive)."""
    _ensure_builtin()
    pat = pattern.lower()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n.lower(), pat))


def model_spec(name: str) -> ModelSpec:
    _ensure_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    lower = {k.lower(): k for k in _REGISTRY}
    if name.lower() in lower:
        return _REGISTRY[lower[name.lower()]]
    close = fnmatch.filter(list(_REGISTRY), f"*{name[:6]}*")[:5]
    raise ArchitectureError(
        f"unknown architecture {name!r}",
        hint=(f"did you mean one of {close}? " if close else "")
        + "see clsviz.list_models(), or pass 'package.module:callable'",
    )


def get_model(name: str, class_num: int = 1000, **kwargs):
    """Build a network by registry name, ``paddle.vision:NAME`` or ``module:callable``."""
    from .._paddle import dygraph_mode, paddle

    if not isinstance(class_num, int) or isinstance(class_num, bool) or class_num < 1:
        raise ArchitectureError(f"class_num must be a positive integer, got {class_num!r}")
    if ":" in name:
        fn = _import_callable(name)
    else:
        fn = model_spec(name).builder
    try:
        with dygraph_mode():
            net = fn(class_num=class_num, **kwargs)
    except TypeError as e:
        raise ArchitectureError(f"cannot build {name!r}: {e}",
                                hint="the callable must accept class_num=") from e
    if not isinstance(net, paddle.nn.Layer):
        raise ArchitectureError(f"{name!r} returned {type(net).__name__}, expected a paddle.nn.Layer")
    return net


def _import_callable(ref: str):
    mod_name, _, attr = ref.partition(":")
    if mod_name in ("paddle.vision", "vision"):
        _ensure_builtin()
        key = f"paddle.vision:{attr}"
        if key in _REGISTRY:
            return _REGISTRY[key].builder
        raise ArchitectureError(f"paddle.vision.models has no classifier {attr!r}",
                                hint="see clsviz.list_models('paddle.vision:*')")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:
        raise ArchitectureError(f"cannot import module {mod_name!r} for architecture {ref!r}: {e}",
                                hint="is it on sys.path / installed?") from e
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ArchitectureError(f"module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ArchitectureError(f"{ref!r} is not callable")
    return obj
