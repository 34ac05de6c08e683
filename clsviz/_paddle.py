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
import threading
import warnings
from typing import Any

_VERBOSE = os.environ.get("CLSVIZ_VERBOSE", "") not in ("", "0")

if not _VERBOSE:
    # glog: 0=INFO 1=WARNING 2=ERROR.  Only set what the user has not set.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("GLOG_v", "0")
    os.environ.setdefault("FLAGS_call_stack_level", "1")


# fds 1 and 2 belong to the whole process: one lock and a depth count, so nested or concurrent
# quiet() blocks redirect once and restore once (two interleaved save/restore pairs could
# otherwise leave the process writing to /dev/null for good).
_QUIET_LOCK = threading.RLock()
_quiet_depth = 0
_saved_fds: dict[int, int] = {}


def _redirect() -> None:
    for stream in (sys.stdout, sys.stderr):  # what Python already wrote goes out first
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stream must not stop the call
            pass
    with open(os.devnull, "wb") as null:
        for fd in (1, 2):
            try:
                _saved_fds[fd] = os.dup(fd)
            except OSError:  # no such fd (embedded interpreters)
                continue
            os.dup2(null.fileno(), fd)


def _restore() -> None:
    for fd, saved in list(_saved_fds.items()):
        try:
            os.dup2(saved, fd)
        finally:
            os.close(saved)
            del _saved_fds[fd]


@contextlib.contextmanager
def quiet():
    """Hide what Paddle's C++ code prints to fds 1 and 2 during the block, unless verbose.

    File descriptors are process-wide, so keep the block to the one Paddle call that
    chatters: fds 1 and 2 are restored when the outermost block exits (also on error),
    and nested or concurrent blocks share one redirection.
    """
    global _quiet_depth
    if _VERBOSE:
        yield
        return
    with _QUIET_LOCK:
        if _quiet_depth == 0:
            _redirect()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                _restore()


def _import_paddle():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with quiet():
            import paddle
            import paddle.inference
    return paddle


paddle: Any = _import_paddle()  # untyped for mypy: see pyproject.toml


def pir_enabled() -> bool:
    """Whether this process runs Paddle's new IR (decided at import time)."""
    try:
        return bool(
            paddle.framework.in_pir_mode() or paddle.get_flags(["FLAGS_enable_pir_api"])["FLAGS_enable_pir_api"]
        )
    except Exception:  # noqa: BLE001  # pragma: no cover - older paddle
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


@contextlib.contextmanager
def on_place(place):
    """Scope Paddle's expected device (what ``paddle.set_device`` changes for good) to the block."""
    with paddle.base.framework._dygraph_place_guard(place):
        yield


def _openmp():
    """Paddle's own OpenMP runtime (where ``set_num_threads`` lands), or None."""
    import ctypes

    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    for name in ("libiomp5.so", "libgomp.so.1"):
        path = os.path.join(libs, name)
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError:  # pragma: no cover
                return None
    return None


_OMP = _openmp()
_threads_set: int | None = None  # what clsviz last set, where the runtime cannot be asked


def native_threads() -> int | None:
    """How many threads Paddle's native CPU kernels use now (None if it cannot be told)."""
    if _OMP is not None:
        return int(_OMP.omp_get_max_threads())
    return _threads_set  # pragma: no cover - no bundled OpenMP runtime


def _set_native_threads(n: int) -> None:
    global _threads_set
    paddle.base.core.set_num_threads(int(n))
    _threads_set = int(n)


@contextlib.contextmanager
def threads_scope(n: int | None):
    """Run the block with Paddle's process-wide CPU thread count at ``n``, then put it back.

    ``None`` leaves the count alone.  Nothing is written when the count already is ``n``,
    and the caller's count is restored afterwards (a predictor's run also resets it to its
    own, so the predictor engine wraps its runs in this too).
    """
    before = native_threads()
    if n is not None and before != n:
        _set_native_threads(n)
    try:
        yield
    finally:
        after = native_threads()
        if before is not None and after != before:
            _set_native_threads(before)


# What this Paddle build and machine can do (engines check before they build).
def gpu_available() -> tuple[bool, str]:
    if not paddle.is_compiled_with_cuda():
        return False, "this paddlepaddle build has no CUDA (install paddlepaddle-gpu; see README)"
    try:
        n = paddle.device.cuda.device_count()
    except Exception as e:  # noqa: BLE001  # pragma: no cover - needs a GPU build; any failure means no GPU
        return False, f"CUDA query failed: {e}"
    return (n > 0, "no CUDA device is visible" if n == 0 else "")


def tensorrt_available() -> tuple[bool, str]:
    try:
        ver = tuple(paddle.inference.get_trt_compile_version())
    except Exception:  # noqa: BLE001  # pragma: no cover - any failure means no TensorRT
        ver = (0, 0, 0)
    if ver == (0, 0, 0):
        return False, "this paddlepaddle build was compiled without TensorRT"
    return True, ""


def bf16_available() -> tuple[bool, str]:
    core = paddle.base.core
    if not core.supports_bfloat16():
        return False, "this CPU has no bf16 support (needs AVX-512 BF16 or AMX)"
    return True, ""
