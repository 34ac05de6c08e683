"""Reading the files users and models name, and checking outputs before the work starts.

Every file clsviz reads because a user or a model's files named it should come through here:

* Only **regular files** are read.  A FIFO, a device or a socket could block (opening a FIFO
  waits for a writer) or never end (``/dev/zero``), so files are opened with ``O_NONBLOCK``
  and refused after ``fstat`` unless they are regular.
* **Sizes are capped** for text and metadata (labels, ``inference.yml``, programs), and a read
  never goes past the length the file had when it was opened.
* **OS errors stay in the tree**: a missing, unreadable or special file becomes the caller's
  :class:`~clsviz.errors.ClsvizError` subclass, naming the file and what to do.

:func:`check_output_dir` answers "can results be written there?" before a long run, so a
mistyped ``--out`` fails in milliseconds, not after the evaluation.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from pathlib import Path

from .errors import ClsvizError, FormatError, OutputError

__all__ = [
    "TEXT_LIMIT",
    "PROGRAM_LIMIT",
    "special_kind",
    "open_regular",
    "read_bytes",
    "read_text",
    "check_regular",
    "check_output_dir",
    "os_error",
    "translate_os_errors",
    "size_text",
]

MiB = 1 << 20
#: labels files, ``inference.yml``, ``labels.txt``: 16 MiB is ~100x ImageNet-21k's label list
TEXT_LIMIT = 16 * MiB
#: model programs (``.json``, ``.pdmodel``, ``__model__``): protobuf itself stops at 2 GiB
PROGRAM_LIMIT = 1024 * MiB

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def special_kind(mode: int) -> str | None:
    """``None`` for a regular file, else what it is: ``"a FIFO (named pipe)"``, ``"a folder"``, …"""
    if stat.S_ISREG(mode):
        return None
    for test, text in _KINDS:
        if test(mode):
            return text
    return "not a regular file"


def os_error(e: OSError, error=FormatError, *, action: str = "read", path=None) -> ClsvizError:
    """An ``OSError`` as a clsviz error of class ``error`` that names the file and what to do."""
    path = path if path is not None else (e.filename or None)
    code = e.errno
    if code in (errno.EACCES, errno.EPERM):
        hint = "check the file's permissions (and those of the folders above it)"
    elif code == errno.ENOSPC:
        hint = "the disk is full: free some space, or write somewhere else"
    elif code == errno.EROFS:
        hint = "the file system is read-only: write somewhere else"
    elif code == errno.ENOENT:
        hint = "check the path"
    elif code == errno.ELOOP:
        hint = "a symbolic link points to itself (or loops)"
    else:
        hint = None
    return error(f"cannot {action}: {e.strerror or e}", path=path, hint=hint)


@contextlib.contextmanager
def translate_os_errors(error=FormatError, *, action: str = "read"):
    """Turn any ``OSError`` raised inside into ``error`` (a context manager and a decorator)."""
    try:
        yield
    except ClsvizError:
        raise
    except OSError as e:
        raise os_error(e, error, action=action) from e


def _refuse(what: str, path, kind: str, error) -> ClsvizError:
    return error(
        f"cannot read {what}: it is {kind}, not a regular file",
        path=path,
        hint="clsviz reads only regular files: a FIFO, device or socket could block or never end",
    )


def check_regular(path, *, what: str = "file", error=FormatError) -> os.stat_result:
    """``stat`` ``path`` and raise ``error`` unless it is a regular file (for paths handed to
    libraries that open them themselves, such as Paddle)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise error(f"cannot read {what}: not found", path=path, hint="check the path") from e
    except OSError as e:
        raise os_error(e, error, path=path) from e
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise _refuse(what, path, kind, error)
    return st


def open_regular(path, *, what: str = "file", error=FormatError, max_bytes: int | None = None) -> io.BufferedReader:
    """Open ``path`` for binary reading if it is a regular file of at most ``max_bytes``.

    Opening never blocks (``O_NONBLOCK``, so a FIFO cannot hang us), and the type is
    checked on the open descriptor (``fstat``), so a path swapped after a check cannot
    slip through.  Raises ``error`` (a :class:`ClsvizError` subclass) otherwise.
    """
    extra = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        f = open(path, "rb", opener=lambda p, flags: os.open(p, flags | extra))  # noqa: SIM115 - returned to the caller
    except FileNotFoundError as e:
        raise error(f"cannot read {what}: not found", path=path, hint="check the path") from e
    except IsADirectoryError as e:
        raise _refuse(what, path, "a folder", error) from e
    except OSError as e:
        try:  # a socket cannot be opened at all (ENXIO): say what it is
            kind = special_kind(os.stat(path).st_mode)
        except OSError:
            kind = None
        if kind is not None:
            raise _refuse(what, path, kind, error) from e
        raise os_error(e, error, path=path) from e
    try:
        st = os.fstat(f.fileno())
        kind = special_kind(st.st_mode)
        if kind is not None:
            raise _refuse(what, path, kind, error)
        if max_bytes is not None and st.st_size > max_bytes:
            raise error(
                f"{what} is {size_text(st.st_size)}, over the {size_text(max_bytes)} clsviz reads for one",
                path=path,
                hint="is this the right file?",
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(f.fileno(), True)
        return f
    except BaseException:
        f.close()
        raise


def read_bytes(path, *, what: str = "file", error=FormatError, max_bytes: int | None = TEXT_LIMIT) -> bytes:
    """The whole file, read up to the length it had when opened (never past it)."""
    with open_regular(path, what=what, error=error, max_bytes=max_bytes) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            data = f.read(size)
        except OSError as e:
            raise os_error(e, error, path=path) from e
    return data


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def read_text(path, *, what: str = "text file", error=FormatError, max_bytes: int | None = TEXT_LIMIT) -> str:
    """A capped text file as ``str``: UTF-8, or UTF-8/UTF-16 with a byte-order mark (which is
    dropped, so the first line reads like the others)."""
    data = read_bytes(path, what=what, error=error, max_bytes=max_bytes)
    encoding = "utf-8"
    for bom, enc in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], enc
            break
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise error(
            f"{what} is not {encoding.upper()} text (undecodable byte at offset {e.start})",
            path=path,
            hint="save it as UTF-8",
        ) from e


def check_output_dir(path, *, what: str = "output folder", error=OutputError) -> Path:
    """Raise ``error`` unless ``path`` is (or can be created as) a writable folder.

    Checks, without creating anything: ``path`` is not a file; no folder above it is a
    file; the nearest existing folder is writable.  Call it before long work.
    """
    p = Path(os.path.abspath(path))
    try:
        if p.exists():
            kind = special_kind(p.stat().st_mode)
            if kind != "a folder":
                raise error(
                    f"{what} names {kind or 'a file'}, not a folder",
                    path=p,
                    hint="choose a folder (new or existing) for the results",
                )
            existing = p
        else:
            if os.path.lexists(p):
                raise error(
                    f"{what} is a symbolic link to nowhere",
                    path=p,
                    hint="fix or remove the link, or choose another folder",
                )
            existing = p.parent
            while not existing.exists():
                if os.path.lexists(existing):
                    raise error(f"{existing} is a symbolic link to nowhere", path=p)
                existing = existing.parent
            if not existing.is_dir():
                raise error(
                    f"{what} lies under {existing}, which is a file",
                    path=p,
                    hint="choose a folder that is not inside a file's path",
                )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise error(
                f"cannot write into {existing}: permission denied", path=p, hint="choose a folder you can write to"
            )
    except OSError as e:
        raise os_error(e, error, action="check the output folder", path=p) from e
    return p
