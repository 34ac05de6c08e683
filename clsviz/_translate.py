"""Paddle's errors → clsviz's error tree: the one place that reads Paddle's error text.

Paddle raises plain ``RuntimeError`` / ``ValueError`` / ``OSError`` whose text carries a
C++ trace.  :func:`first_line` picks the one line a person needs; a table of
:class:`Rule` rows (checked in order, the first that matches wins) decides which clsviz
error a failure to *load* a model becomes, which file it blames and what to try.
A failure to *run* a built engine is always an :class:`EngineError`
(:func:`run_error`); a child process that does not answer in time is one too
(:func:`timeout_error`).  Callers raise the result ``from`` the original, so
``--debug`` still shows Paddle's own text.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ClsvizError, EngineError, FormatError

__all__ = ["LEGACY_LOAD_RULES", "LOAD_RULES", "Rule", "first_line", "load_error", "run_error", "timeout_error"]

# Paddle's own error classes open the line worth showing.
_PADDLE_KINDS = (
    "InvalidArgumentError",
    "NotFoundError",
    "PreconditionNotMetError",
    "UnavailableError",
    "FatalError",
    "ExternalError",
    "OutOfRangeError",
)
_TRACE_LINES = ("C++ Traceback", "---", "0 ", "1 ", "2 ")


def first_line(e: BaseException) -> str:
    """The line of a (Paddle) exception's text that says what went wrong, at most 300 characters."""
    text = str(e).strip()
    for ln in text.splitlines():
        ln = ln.strip()
        if (
            ln
            and not ln.startswith(_TRACE_LINES)
            and "Error Message Summary" not in ln
            and ln.startswith(_PADDLE_KINDS)
        ):
            return ln
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "Error:" in ln and "Traceback" not in ln:
            return ln[:300]
    return (lines[-1] if lines else type(e).__name__)[:300]


@dataclass(frozen=True)
class Rule:
    """One row of a translation table.

    It matches an exception that is an instance of one of ``types``, or whose lower-cased
    text holds one of ``markers``, or anything if ``otherwise``; ``needs_params`` limits it to models with a separate
    parameters file.  The result is ``error(f"{message}: {first line}", path=<the file
    named by blame>, hint=hint)``.
    """

    error: type[ClsvizError]
    message: str
    blame: str  # "model" | "params" (falls back to the folder)
    hint: str | None = None
    markers: tuple[str, ...] = ()
    types: tuple[type[BaseException], ...] = ()
    needs_params: bool = False
    otherwise: bool = False  # the table's last row: matches whatever is left

    def matches(self, e: BaseException, low: str, files) -> bool:
        if self.needs_params and getattr(files, "params_file", None) is None:
            return False
        return self.otherwise or isinstance(e, self.types) or any(m in low for m in self.markers)

    def build(self, e: BaseException, files) -> ClsvizError:
        if self.blame == "model":
            path = files.model_file
        else:
            path = getattr(files, "params_file", None) or files.root
        return self.error(f"{self.message}: {first_line(e)}", path=path, hint=self.hint)


_PARAMS_HINT = "are the parameters truncated or from another model?"

#: Building a predictor or executor from an inference model.
LOAD_RULES: tuple[Rule, ...] = (
    # Tensor-stream errors name C++ sources such as dense_tensor_serialize.cc; test them first,
    # or their "version" would blame the program for damaged parameters.
    Rule(
        FormatError,
        "cannot load the parameters",
        "params",
        _PARAMS_HINT,
        needs_params=True,
        markers=("dense_tensor", "save_load_parameters", "load_combine", "is.good()", "fin.eof()"),
    ),
    Rule(
        FormatError,
        "cannot read the model program",
        "model",
        "is the model file damaged or from an unsupported Paddle version?",
        types=(UnicodeDecodeError,),
        markers=("parse", "protobuf", "json", "deserial", "version", "magic", "codec"),
    ),
    Rule(
        FormatError,
        "cannot load the parameters",
        "params",
        _PARAMS_HINT,
        markers=("params", "tensor", "size", "read", "eof", "stream", "load"),
    ),
    Rule(EngineError, "cannot build the predictor", "model", otherwise=True),
)

#: Loading a legacy (ProgramDesc) program in the legacy executor's worker process.
LEGACY_LOAD_RULES: tuple[Rule, ...] = (
    Rule(FormatError, "cannot read the legacy program", "model", markers=("parse", "protobuf", "deserial", "magic")),
    Rule(FormatError, "cannot load the legacy model", "params", _PARAMS_HINT, otherwise=True),
)


def load_error(e: BaseException, files, rules: Sequence[Rule] = LOAD_RULES) -> ClsvizError:
    """The clsviz error for a failure to load the model in ``files`` (a :class:`ModelFiles`)."""
    low = str(e).lower()
    for rule in rules:
        if rule.matches(e, low, files):
            return rule.build(e, files)
    return EngineError(f"cannot load the model: {first_line(e)}", path=files.model_file)


def run_error(
    e: BaseException, what: str, shape: Sequence[int], *, path=None, image_shape: Sequence[int] | None = None
) -> EngineError:
    """The clsviz error for an engine that was built but failed on a batch of ``shape``."""
    hint = f"the model expects {list(image_shape)} per image" if image_shape else None
    return EngineError(f"{what} failed on input {list(shape)}: {first_line(e)}", path=path, hint=hint)


def timeout_error(e: subprocess.TimeoutExpired, what: str, *, path=None, hint: str | None = None) -> EngineError:
    """The clsviz error for a child process that did not answer within its time limit."""
    return EngineError(f"{what} did not finish within {float(e.timeout):.0f} s", path=path, hint=hint)
