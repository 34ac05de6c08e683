"""Load and verify checkpoints (state dicts) against a network.

Loading is strict: a mismatch raises :class:`CheckpointMismatch` carrying a
:class:`LoadDiagnostics` table (missing / unexpected / shape-mismatched keys).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import safe_pickle
from .archs.specs import infer_class_num as infer_class_num  # re-exported: its old home
from .errors import CheckpointMismatch, FormatError
from .formats import load_checkpoint_folder  # fluid 1.x persistables
from .transforms import PathLike


@dataclass(frozen=True)
class LoadDiagnostics:
    """How a state dict lines up with a network's parameters."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple, tuple], ...]  # (key, expected shape, found shape)
    matched: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "matched": self.matched,
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatched": [{"key": k, "expected": list(e), "found": list(f)} for k, e, f in self.mismatched],
            "note": self.note,
        }

    def summary(self) -> str:
        return (
            f"{self.matched} matched, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape-mismatched"
        )

    def to_text(self, limit: int = 8) -> str:
        lines = [self.summary()]
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            for k in items[:limit]:
                lines.append(f"  {title:<10} {k}")
            if len(items) > limit:
                lines.append(f"  {title:<10} … and {len(items) - limit} more")
        for k, e, f in self.mismatched[:limit]:
            lines.append(f"  {'shape':<10} {k}: network {list(e)} vs checkpoint {list(f)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [f"<tr><td>missing</td><td>{html.escape(k)}</td><td></td></tr>" for k in self.missing]
        rows += [f"<tr><td>unexpected</td><td>{html.escape(k)}</td><td></td></tr>" for k in self.unexpected]
        rows += [
            f"<tr><td>shape</td><td>{html.escape(k)}</td><td>network {list(e)} vs checkpoint {list(f)}</td></tr>"
            for k, e, f in self.mismatched
        ]
        return (
            f"<div><b>{html.escape(self.summary())}</b>"
            f"<table><tr><th>problem</th><th>key</th><th>detail</th></tr>{''.join(rows)}</table></div>"
        )


def load_state_dict(path: PathLike, *, trust: bool = False) -> dict[str, np.ndarray]:
    """Read a ``.pdparams`` file (dygraph state dict or ``paddle.static.save`` output).

    Uses clsviz's restricted unpickler unless ``trust=True``.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError("checkpoint not found", path=p, hint="check the path")
    if p.is_dir():
        return load_checkpoint_folder(p)
    state = safe_pickle.load_pdparams(p, trust=trust)
    for wrapper in ("model", "state_dict", "model_state_dict", "net"):  # {"model": sd, "epoch": 3}
        if (
            isinstance(state, dict)
            and isinstance(state.get(wrapper), dict)
            and not any(isinstance(v, np.ndarray) for v in state.values())
        ):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not state:
        raise FormatError("checkpoint holds no tensors", path=p)
    return {str(k): v for k, v in state.items() if isinstance(v, np.ndarray)}


def diagnose(net, state: dict) -> LoadDiagnostics:
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = tuple(k for k in expected if k not in state)
    unexpected = tuple(k for k in state if k not in expected)
    mismatched = tuple(
        (k, expected[k], tuple(state[k].shape)) for k in expected if k in state and tuple(state[k].shape) != expected[k]
    )
    return LoadDiagnostics(missing, unexpected, mismatched, matched=len(expected) - len(missing) - len(mismatched))


def _match_by_position(net, state: dict) -> dict | None:
    """``paddle.static.save`` names tensors by op (``conv2d_0.w_0``), not by layer path.

    When no key matches but the counts and every shape agree in creation order,
    the state is renamed positionally.
    """
    expected = list(net.state_dict().items())
    if len(expected) != len(state) or any(k in state for k, _ in expected):
        return None
    found = list(state.items())
    if any(tuple(v.shape) != tuple(f.shape) for (_, v), (_, f) in zip(expected, found)):
        return None
    return {k: f for (k, _), (_, f) in zip(expected, found)}


def load_into(net, state: dict, *, strict: bool = True, path=None) -> LoadDiagnostics:
    """Set ``net``'s parameters from ``state``; strict by default."""
    diag = diagnose(net, state)
    if not diag.ok and diag.matched == 0:
        renamed = _match_by_position(net, state)
        if renamed is not None:
            state = renamed
            diag = LoadDiagnostics((), (), (), len(renamed), note="matched by position (static-save names)")
    if strict and not diag.ok:
        raise CheckpointMismatch(
            f"checkpoint does not fit the network: {diag.to_text()}",  # to_text starts with the summary
            diagnostics=diag,
            path=path,
            hint="check --arch and --class_num, or pass strict=False to load what matches",
        )
    usable = {
        k: v for k, v in state.items() if k in dict(net.state_dict()) and k not in {m[0] for m in diag.mismatched}
    }
    net.set_state_dict({k: np.ascontiguousarray(v) for k, v in usable.items()})
    return diag
