"""Writing a bundle folder without losing anything: :class:`Target` (export and migrate use it).

**What clsviz may replace.**  Every folder clsviz writes carries a manifest,
``.clsviz-manifest.json``: each file clsviz put there, with its size and sha256.  A later
export or migration with ``force=True`` replaces only those files, and only while they are
unchanged; everything else in the folder (other checkpoints, notes, logs, hidden files,
sub-folders, a file edited since) stays.  A file the new bundle needs whose name is taken by
something clsviz did not write is a refusal, as is a source (the checkpoint being exported)
that lies inside what would be replaced.  A bundle written before manifests existed is
recognised by its ``inference.yml`` (``Global.clsviz``) and its files' fixed names.

**One writer at a time.**  ``.<name>.lock`` beside the target is held (``flock``) from the
first check to the end, so a second export to the same folder fails at once, before its work.

**Atomic publish.**  The bundle is written and verified in a hidden sibling folder, then:

* a new (or empty) target: one ``rename``;
* a target holding only clsviz's files: one ``renameat2(RENAME_EXCHANGE)`` swaps the folders
  (two renames where that call is missing);
* a target that also holds other files: each new file is renamed into place (each one
  atomic, the manifest last), then the old clsviz files are removed.

Nothing outside clsviz's own unpublished folders is removed with ``rmtree``: a displaced
folder is emptied of the files its manifest lists, anything else in it is moved back, and
then it is ``rmdir``-ed.  A kill at any point is repaired by the next export to the same
target (under its lock): unpublished folders are dropped, a half-done publish is finished.
A symlinked target stays a symlink: the folder it points to is what gets written.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
import sys
import warnings
from pathlib import Path
from typing import Literal

import yaml

from ._version import __version__
from .bundle import clsviz_section, sha256_file
from .errors import ClsvizError, ExportError
from .safe_io import check_output_dir, os_error, read_text

__all__ = ["Target", "atomic_write_dir", "add_own_files", "MANIFEST", "read_manifest", "owned_files"]

MANIFEST = ".clsviz-manifest.json"
_INCOMPLETE = ".clsviz-incomplete"  # in a folder still being written: all of it is clsviz's
_PLAN = ".clsviz-plan.json"  # in a folder being published file by file: what to remove
_LEGACY_NAMES = (
    "inference.json",
    "inference.pdiparams",
    "inference.pdmodel",
    "inference.pdiparams.info",
    "inference.yml",
    "model.pdparams",
)


# ------------------------------------------------------------------ manifest
def _sha256(path: Path) -> str:
    return sha256_file(path)


def _plain_name(name) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


def write_manifest(folder: Path) -> dict:
    """Record every regular file of ``folder`` (hidden bookkeeping files excepted)."""
    files = {}
    for f in sorted(folder.iterdir()):
        if f.name in (MANIFEST, _INCOMPLETE, _PLAN) or f.is_symlink() or not f.is_file():
            continue
        files[f.name] = {"size": f.stat().st_size, "sha256": _sha256(f)}
    doc = {"written_by": f"clsviz {__version__}", "files": files}
    with open(folder / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    return doc


def read_manifest(folder: Path) -> dict | None:
    """``{name: {"size", "sha256"}}`` from ``folder``'s manifest; None if absent or malformed
    (a malformed manifest owns nothing, so nothing is replaced on its word)."""
    p = folder / MANIFEST
    if not os.path.lexists(p):
        return None
    try:
        doc = json.loads(read_text(p, what="manifest", max_bytes=1 << 20))
        files = doc["files"]
        ok = isinstance(files, dict) and all(
            _plain_name(n)
            and isinstance(v, dict)
            and isinstance(v.get("size"), int)
            and isinstance(v.get("sha256"), str)
            for n, v in files.items()
        )
    except (ClsvizError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return files if ok else None


def _legacy_owned(folder: Path) -> dict | None:
    """A clsviz bundle written before manifests: ``{name: sha256 or None}`` of its fixed-name files."""
    yml = folder / "inference.yml"
    if yml.is_symlink() or not yml.is_file():
        return None
    try:
        doc = yaml.safe_load(read_text(yml, what="inference.yml"))

        marker = clsviz_section(doc)
        if marker is None:
            return None
        sums = marker.get("sha256") or {}
    except (ClsvizError, yaml.YAMLError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    if not isinstance(marker, dict) or not isinstance(sums, dict):
        return None
    return {n: (sums.get(n) if isinstance(sums.get(n), str) else None) for n in _LEGACY_NAMES}


def owned_files(folder: Path) -> tuple[set, set]:
    """``(unchanged, changed)``: the files of ``folder`` clsviz wrote and that are as it wrote
    them (these may be replaced), and those it wrote but that were changed since (kept)."""
    listed = read_manifest(folder)
    if listed is not None:
        expect = {n: (v["size"], v["sha256"]) for n, v in listed.items()}
        unchanged, changed = {MANIFEST}, set[str]()
    else:
        legacy = _legacy_owned(folder)
        if legacy is None:
            return set(), set()
        expect = {n: (None, h) for n, h in legacy.items()}
        unchanged, changed = set(), set()
    for name, (size, digest) in expect.items():
        p = folder / name
        if not os.path.lexists(p):
            continue
        st = os.lstat(p)
        same = (
            stat.S_ISREG(st.st_mode)
            and (size is None or st.st_size == size)
            and (digest is None or _sha256(p) == digest)
        )
        (unchanged if same else changed).add(name)
    return unchanged, changed


# ------------------------------------------------------------------ lock
def _lock(real: Path) -> tuple[int, Path]:
    lock = real.parent / f".{real.name}.lock"
    for _ in range(100):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if not _flock(fd):
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                raise ExportError(
                    f"another clsviz export{f' (pid {holder})' if holder.isdigit() else ''} is writing to this folder",
                    path=real,
                    hint="wait for it to finish, or choose another output folder",
                )
            # the previous holder may have removed the lock file between our open and flock
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                return fd, lock
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise ExportError("cannot lock the output folder", path=real)  # pragma: no cover


def _flock(fd: int) -> bool:
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - not POSIX: no lock, as before
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int, lock: Path) -> None:
    try:
        os.unlink(lock)  # while still holding it: see the samestat check in _lock
    except OSError:
        pass
    os.close(fd)


def add_own_files(folder, files: dict) -> bool:
    """Put ``{name: staged file}`` into the bundle ``folder`` as clsviz's own files.

    For a file clsviz derives from a bundle after export (``inference.onnx``, and the sidecar
    that records it).  Each staged file must sit in ``folder`` already (a hidden name), so every
    move is one atomic ``rename``; the manifest, when the folder has one, then lists the new
    files.  Runs under the folder's lock; returns False (nothing moved, the staged files
    removed) when another writer holds it, the lock cannot be taken, or a name is taken by a
    file clsviz did not write (or one changed since).
    """
    real = _real_path(Path(folder))
    try:
        fd, lock = _lock(real)
    except (ExportError, OSError):
        for tmp in files.values():
            Path(tmp).unlink(missing_ok=True)
        return False
    try:
        unchanged, _ = owned_files(real)
        if any(not _plain_name(n) or (os.path.lexists(real / n) and n not in unchanged) for n in files):
            for tmp in files.values():  # a file clsviz did not write, or one edited since: kept
                Path(tmp).unlink(missing_ok=True)
            return False
        listed = read_manifest(real)
        for name, tmp in files.items():
            os.replace(tmp, real / name)
        if listed is not None:
            for name in files:
                listed[name] = {"size": (real / name).stat().st_size, "sha256": _sha256(real / name)}
            staged = real / f".{MANIFEST}.{secrets.token_hex(4)}"
            with open(staged, "w", encoding="utf-8") as fh:
                json.dump({"written_by": f"clsviz {__version__}", "files": listed}, fh, indent=1, sort_keys=True)
            os.replace(staged, real / MANIFEST)
        return True
    finally:
        _unlock(fd, lock)


# ------------------------------------------------------------------ folder moves
def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # noqa: PLC0415 - Linux only, for renameat2

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBUSY):
        return False  # the file system or kernel cannot exchange (or the target is a mount point)
    raise OSError(err, os.strerror(err), str(b))


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _move_into(src: Path, dst: Path) -> None:
    """Move one file into the target: replace ``dst`` (an old clsviz file) or create it."""
    if os.path.lexists(dst):
        if os.path.samefile(src, dst):  # linked there by an interrupted earlier attempt
            os.unlink(src)
            return
        os.replace(src, dst)
        return
    try:  # link + unlink: never replaces a file that appeared at dst meanwhile
        os.link(src, dst)
    except FileExistsError as e:
        raise ExportError(
            f"{dst.name} appeared in the output folder while publishing; it was kept",
            path=dst.parent,
            hint="run the export again",
        ) from e
    except OSError:  # no hard links here (some file systems): plain rename
        os.rename(src, dst)
        return
    os.unlink(src)


def _retire(d: Path, real: Path) -> None:
    """Empty a displaced folder: drop clsviz's files, hand everything else back, ``rmdir`` it."""
    unchanged, _ = owned_files(d)
    for name in unchanged:
        try:
            os.unlink(d / name)
        except FileNotFoundError:
            pass
    kept = []
    for entry in sorted(os.listdir(d)):
        if entry in (_INCOMPLETE, _PLAN):
            os.unlink(d / entry)
            continue
        dst = real / entry
        if real.is_dir() and not os.path.lexists(dst):
            os.rename(d / entry, dst)  # it appeared in the old folder while we swapped
        else:
            kept.append(entry)
    if kept:
        warnings.warn(
            f"clsviz kept {d}: it holds {', '.join(kept[:5])}, which clsviz did not write "
            f"and whose names are taken in {real}; move them yourself",
            stacklevel=3,
        )
        return
    os.rmdir(d)


def _finish(pub: Path, real: Path) -> None:
    """Publish file by file from ``pub`` (idempotent: an interrupted run is finished later)."""
    plan = {}
    if (pub / _PLAN).is_file():
        try:
            plan = json.loads((pub / _PLAN).read_text(encoding="utf-8")).get("remove", {})
        except (OSError, ValueError, AttributeError):
            plan = {}
    for name, digest in sorted(plan.items()):  # old clsviz files the new bundle does not have
        p = real / name
        if _plain_name(name) and p.is_file() and not p.is_symlink() and _sha256(p) == digest:
            os.unlink(p)
    names = sorted(n for n in os.listdir(pub) if n not in (MANIFEST, _PLAN, _INCOMPLETE))
    for name in names + ([MANIFEST] if (pub / MANIFEST).exists() else []):
        _move_into(pub / name, real / name)
    for name in (_PLAN, _INCOMPLETE):
        if os.path.lexists(pub / name):
            os.unlink(pub / name)
    os.rmdir(pub)


def _recover(real: Path) -> None:
    """Repair what a killed export left beside ``real`` (runs under the target's lock)."""
    pattern = re.compile(rf"^\.{re.escape(real.name)}\.(tmp|old|pub)-\d+-[0-9a-f]{{8}}$")
    for d in sorted(real.parent.iterdir()):
        m = pattern.match(d.name)
        if not m or d.is_symlink() or not d.is_dir():
            continue
        stage = m.group(1)
        if (d / _INCOMPLETE).exists():
            shutil.rmtree(d, ignore_errors=True)  # never published: all of it is clsviz's
        elif stage == "pub" and real.is_dir():
            _finish(d, real)  # half published file by file: finish it
        elif stage == "old" and not os.path.lexists(real):
            os.rename(d, real)  # killed between the fallback's two renames
        else:
            _retire(d, real)  # an old folder displaced by a swap


# ------------------------------------------------------------------ the target
def _real_path(given: Path) -> Path:
    """The folder to write: ``given`` with symlinks resolved (a symlink stays a symlink)."""
    given = Path(os.path.abspath(given))
    try:
        return given.resolve()
    except (OSError, RuntimeError) as e:
        raise ExportError(f"cannot resolve the output path: {e}", path=given) from e


class Target:
    """An output folder claimed for one export or migration.

    ``with Target(out, force=…, sources=[…], names=[…]) as t: … t.publish(fill, verify)``

    Entering checks the target and takes its lock (so errors come before any work);
    ``sources`` are input paths that must not lie inside what would be replaced;
    ``names`` are the files the bundle will certainly hold (checked for clashes early).
    """

    def __init__(self, out_dir, *, force: bool = False, sources=(), names=()):
        self.given = Path(os.path.abspath(out_dir))
        self.force = force
        self.sources = [Path(s) for s in sources if s is not None]
        self.names = set(names)
        self._lock: tuple[int, Path] | None = None
        self._tmp: Path | None = None

    # -- claim and release ----------------------------------------------------------------
    def __enter__(self) -> Target:
        try:
            self.real = _real_path(self.given)
            self._check_parents()
            self.real.parent.mkdir(parents=True, exist_ok=True)
            self._lock = _lock(self.real)
            _recover(self.real)
            self._existed = os.path.lexists(self.real)
            self._plan(self.names)
        except ClsvizError:
            self.__exit__(None, None, None)
            raise
        except OSError as e:
            self.__exit__(None, None, None)
            raise os_error(e, ExportError, action="prepare the output folder", path=self.given) from e
        return self

    def __exit__(self, *exc) -> Literal[False]:
        if self._tmp is not None and self._tmp.exists() and (self._tmp / _INCOMPLETE).exists():
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        if self._lock is not None:
            _unlock(*self._lock)
            self._lock = None
        return False

    def _check_parents(self) -> None:
        if os.path.lexists(self.real) and not self.real.is_dir():
            raise ExportError(
                "output path exists and is not a folder",
                path=self.given,
                hint="choose a folder (new or existing) for the bundle",
            )
        if self.real.is_dir() and not os.access(self.real, os.W_OK | os.X_OK):
            raise ExportError(
                "cannot write into the output folder: permission denied",
                path=self.given,
                hint="choose a folder you can write to",
            )
        check_output_dir(self.real.parent, what="the folder that will hold the output", error=ExportError)

    # -- what may be replaced -----------------------------------------------------------------
    def _plan(self, names: set) -> str:
        """Decide how to publish ``names`` into the target as it is now: "rename" (absent or
        empty), "exchange" (only clsviz's files there) or "merge" (other files too)."""
        real = self.real
        if not os.path.lexists(real):
            self._check_sources(set(), names)
            return "rename"
        if not real.is_dir():
            raise ExportError("output path exists and is not a folder", path=self.given)
        entries = set(os.listdir(real))
        if not entries:
            return "rename"
        if not self.force and not getattr(self, "_existed", True):
            shown = ", ".join(sorted(entries)[:4]) + (" …" if len(entries) > 4 else "")
            raise ExportError(
                f"a folder appeared at the output path while exporting (it holds {shown}); nothing was written into it",
                path=self.given,
                hint="choose another output folder, or pass force=True (CLI: --force) to "
                "add the bundle beside its files",
            )
        if not self.force:
            raise ExportError(
                "output folder is not empty",
                path=self.given,
                hint="pass force=True (CLI: --force) to replace the files a previous "
                "clsviz export wrote there; other files are kept",
            )
        unchanged, changed = owned_files(real)
        self._check_sources(unchanged, names)
        clash = sorted(n for n in names if n in entries and n not in unchanged)
        if clash:
            why = [
                f"{n} (changed since clsviz wrote it)" if n in changed else (f"{n}/" if (real / n).is_dir() else n)
                for n in clash
            ]
            raise ExportError(
                f"refusing to overwrite {', '.join(why)}: clsviz did not write {'it' if len(clash) == 1 else 'them'}",
                path=self.given,
                hint="move them away or choose another output folder; clsviz replaces "
                "only the unchanged files its manifest lists",
            )
        self._unchanged = unchanged
        return "exchange" if entries <= unchanged else "merge"

    def _check_sources(self, unchanged: set, names: set) -> None:
        replaced = unchanged | names
        for src in self.sources:
            try:
                s = src.resolve()
            except (OSError, RuntimeError):
                continue
            if s == self.real:
                raise ExportError(
                    f"the source {src} is the output folder",
                    path=self.given,
                    hint="write the bundle into another folder",
                )
            if self.real in s.parents and s.relative_to(self.real).parts[0] in replaced:
                raise ExportError(
                    f"the source {src} lies inside what this export would replace",
                    path=self.given,
                    hint="write the bundle into another folder, or move the source out first",
                )

    # -- write, verify, publish -----------------------------------------------------------------
    def publish(self, fill, verify=None):
        """``fill(tmp)`` → result; ``verify(tmp, result)`` → result; then publish atomically."""
        real = self.real
        self._moved = False
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        tmp = real.parent / f".{real.name}.tmp-{tag}"
        try:
            tmp.mkdir()  # not mkdtemp: its 0700 mode would make the bundle private
            self._tmp = tmp
            (tmp / _INCOMPLETE).touch()
            result = fill(tmp)
            if verify is not None:
                result = verify(tmp, result)
            write_manifest(tmp)
            for f in tmp.iterdir():  # data on disk before a rename makes it visible
                if f.name != _INCOMPLETE:
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            os.unlink(tmp / _INCOMPLETE)
            _fsync(tmp)  # from here on self._moved says whether tmp's name still holds the bundle
            self._publish(tmp, tag)
            self._tmp = None
            _fsync(real.parent)
            return result
        except BaseException as e:
            if not getattr(self, "_moved", False):
                self._drop(tmp)
            else:  # half-way through publishing: the next export to this folder finishes it
                self._tmp = None
            if isinstance(e, OSError):
                raise os_error(e, ExportError, action="write the bundle", path=self.given) from e
            raise

    def _drop(self, tmp: Path) -> None:
        if tmp.exists():
            if not (tmp / _INCOMPLETE).exists():
                (tmp / _INCOMPLETE).touch()  # verified but unpublished: still all clsviz's
            shutil.rmtree(tmp, ignore_errors=True)
        self._tmp = None

    def _publish(self, tmp: Path, tag: str) -> None:
        real = self.real
        names = set(os.listdir(tmp))
        for _ in range(3):  # the target may change under us (a folder appearing): re-plan
            how = self._plan(names - {MANIFEST})
            if how == "rename":
                try:
                    os.rename(tmp, real)  # onto nothing, or onto an empty folder
                    self._moved = True
                    return
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    continue  # someone put something there just now
            if how == "exchange":
                mode = stat.S_IMODE(real.stat().st_mode)
                os.chmod(tmp, mode)  # the folder keeps its permissions
                if _exchange(tmp, real):
                    self._moved = True
                    _retire(tmp, real)  # tmp now holds the old folder
                    return
                old = real.parent / f".{real.name}.old-{tag}"
                os.rename(real, old)
                try:
                    os.rename(tmp, real)
                except OSError:
                    os.rename(old, real)
                    raise
                self._moved = True
                _retire(old, real)
                return
            # merge: file by file, the manifest last; old clsviz files not in the new bundle go
            pub = real.parent / f".{real.name}.pub-{tag}"
            os.rename(tmp, pub)
            self._moved = True
            remove = {n: _sha256(real / n) for n in self._unchanged if n not in names}
            with open(pub / _PLAN, "w", encoding="utf-8") as fh:
                json.dump({"remove": remove}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            _finish(pub, real)
            _fsync(real)
            return
        raise ExportError(
            "the output folder kept changing while publishing",
            path=self.given,
            hint="is another program writing there?",
        )


def atomic_write_dir(out_dir, force: bool, fill, verify=None, *, sources=(), names=()):
    """Claim ``out_dir``, build it with ``fill(tmp)``, ``verify(tmp, result)``, publish it
    (see :class:`Target`).  Returns the result."""
    with Target(out_dir, force=force, sources=sources, names=names) as target:
        return target.publish(fill, verify)
