"""The one clsviz exception tree.

    ClsvizError
    ├── ImageError            an image cannot be read or converted
    ├── FormatError           files on disk are not a model clsviz understands
    │   ├── UnsafeCheckpoint  a pickle asks for objects outside the safe set
    │   └── UnsupportedOps    a program uses ops the dygraph rebuild does not cover (.unsupported_ops)
    ├── CheckpointMismatch    weights do not fit the network (carries .diagnostics)
    ├── ArchitectureError     unknown or unbuildable network
    │   └── UntrustedCode     a model's files name Python code to import (needs trust=True)
    ├── EngineError           an engine failed to build or run
    │   └── BackendUnavailable  an option this build/machine cannot honour
    ├── ExportError           export or migration failed (nothing was left behind)
    ├── OutputError           a result (report, figures) cannot be written where asked
    └── OptionError           an option value is out of range (also a ValueError)

Every message says what was expected, what was found and what to do.
Lower-level (Paddle, Pillow, OS) errors are translated at the boundary and
kept as ``__cause__`` so ``--debug`` can show them.
"""

from __future__ import annotations

import html


class ClsvizError(Exception):
    """Base of every error clsviz raises on purpose."""

    def __init__(self, message: str, *, path=None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self._join(message))

    def _join(self, message: str) -> str:
        parts = [message]
        if self.path and self.path not in message:
            parts.append(f"[{self.path}]")
        if self.hint:
            parts.append(f"— {self.hint}")
        return " ".join(parts)

    def one_line(self) -> str:
        """The message's first line, the path and the hint: what a terminal shows."""
        return self._join((self.message.strip().splitlines() or [""])[0])

    def _repr_html_(self) -> str:
        return (
            f'<div style="border-left:4px solid #c62828;padding:4px 8px;background:#fff5f5">'
            f"<b>{type(self).__name__}</b>: {html.escape(str(self))}</div>"
        )


class ImageError(ClsvizError):
    """An input image is missing, unreadable, or cannot be converted to RGB."""


class FormatError(ClsvizError):
    """The files are not a Paddle model format clsviz can read (or are damaged)."""


class UnsafeCheckpoint(FormatError):
    """A ``.pdparams`` pickle references objects outside the safe set."""


class UnsupportedOps(FormatError):
    """A program uses op types that :mod:`clsviz.formats.rebuild` cannot replay as a Layer.

    ``.unsupported_ops`` holds their names, sorted.
    """

    def __init__(self, message: str, *, unsupported_ops=(), path=None, hint: str | None = None):
        self.unsupported_ops: tuple[str, ...] = tuple(unsupported_ops)
        super().__init__(message, path=path, hint=hint)


class CheckpointMismatch(ClsvizError):
    """The checkpoint's keys or shapes do not match the network.

    ``.diagnostics`` holds a :class:`clsviz.checkpoint.LoadDiagnostics`.
    """

    def __init__(self, message: str, *, diagnostics=None, path=None, hint=None):
        self.diagnostics = diagnostics
        super().__init__(message, path=path, hint=hint)

    def _repr_html_(self) -> str:
        head = super()._repr_html_()
        if self.diagnostics is None:
            return head
        return head + self.diagnostics._repr_html_()


class ArchitectureError(ClsvizError):
    """Unknown architecture name, or a network that is not a classifier."""


class UntrustedCode(ArchitectureError):
    """A name read from a model's files (``Global.model_name``) would import Python code.

    Names from files resolve only in clsviz's registry; ``"package.module:callable"``
    is imported only when the caller passes it (``arch=``) or opts in with ``trust=True``.
    """


class EngineError(ClsvizError):
    """An engine failed to build or run."""


class BackendUnavailable(EngineError):
    """An option (GPU, TensorRT, bf16, …) that this build or machine cannot honour."""


class ExportError(ClsvizError):
    """Export or migration failed; the target was left untouched."""


class OutputError(ClsvizError):
    """An output folder or file cannot be written: it is a file, lies under a file, is not
    writable, or the disk is full.  Checked before the work starts where possible."""


class OptionError(ClsvizError, ValueError):
    """An option value is out of range or of the wrong kind."""


__all__ = [
    "ClsvizError",
    "ImageError",
    "FormatError",
    "UnsafeCheckpoint",
    "UnsupportedOps",
    "CheckpointMismatch",
    "ArchitectureError",
    "UntrustedCode",
    "EngineError",
    "BackendUnavailable",
    "ExportError",
    "OutputError",
    "OptionError",
]
