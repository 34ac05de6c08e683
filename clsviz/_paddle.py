"""Import Paddle once, quietly.

``import paddle`` prints a ccache warning (Python ``warnings``) and, through
glog, PIR pass logs from C++.  Both go to the user's notebook unless silenced
*before* the import, so every clsviz module gets paddle from here.
Set ``CLSVIZ_VERBOSE=1`` to see Paddle's own logging.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings

_VERBOSE = os.environ.get("CLSVIZ_VERBOSE", "") not in ("", "0")

if not _VERBOSE:
    # glog: 0=INFO 1=WARNING 2=ERROR.  Only set what the user has not set.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("GLOG_v", "0")
    os.environ.setdefault("FLAGS_call_stack_level", "1")


@contextlib.contextmanager
def _silenced_fd(fd: int):
    """Redirect an OS-level file descriptor (C++ writes bypass sys.stdout)."""
    try:
        saved = os.dup(fd)
    except OSError:  # no such fd (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def quiet():
    """Context manager that hides C++ stdout/stderr chatter unless verbose."""
    if _VERBOSE:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    stack.enter_context(_silenced_fd(1))
    stack.enter_context(_silenced_fd(2))
    return stack


def _import_paddle():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with quiet():
            import paddle  # noqa: F401
            import paddle.inference  # noqa: F401
    return paddle


paddle = _import_paddle()


def pir_enabled() -> bool:
    """Whether this process runs Paddle's new IR (decided at import time)."""
    try:
        return bool(paddle.framework.in_pir_mode() or
                    paddle.get_flags(["FLAGS_enable_pir_api"])["FLAGS_enable_pir_api"])
    except Exception:  # pragma: no cover - older paddle
        return False


@contextlib.contextmanager
def static_mode():
    """Scope ``paddle.enable_static()``: restore the caller's mode afterwards.

    Paddle keeps the mode per thread, and ``enable_static()`` is a no-op in any thread but the
    one that imported paddle (others start in dygraph mode without the context it undoes), so
    there the tracer is switched off directly.  Ray Data, for one, calls actors from a thread.
    """
    if not paddle.in_dynamic_mode():
        yield
        return
    paddle.enable_static()
    with contextlib.ExitStack() as stack:
        if paddle.in_dynamic_mode():
            stack.enter_context(paddle.base.framework._dygraph_guard(None))
        else:
            stack.callback(paddle.disable_static)
        yield


@contextlib.contextmanager
def dygraph_mode():
    """Scope dynamic mode, even if the caller sits in static mode."""
    was_static = not paddle.in_dynamic_mode()
    if was_static:
        paddle.disable_static()
    try:
        yield
    finally:
        if was_static:
            paddle.enable_static()
