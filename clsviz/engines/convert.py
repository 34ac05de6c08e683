"""Paddle program → ONNX, once per set of weights: :func:`onnx_for`.

The OpenVINO and ONNX Runtime engines run ``inference.onnx``, made by the ``paddle2onnx``
executable (2.1 reads PIR ``inference.json``; there is no ``python -m paddle2onnx``).

**Where it goes.**  Into the bundle, beside the program, as ``inference.onnx`` (the name
PaddleX also looks for); the sidecar records it under ``clsviz.onnx``: its sha256 and
the sha256 of the files it was made from.  The file and the sidecar become clsviz's own files
(listed in ``.clsviz-manifest.json``) and are written under the bundle's lock, each by one
rename (:func:`clsviz.publish.add_own_files`).  A folder clsviz may not write (read-only, no
sidecar, locked, a user's own ``inference.onnx``) leaves the bundle alone: the ONNX goes to
``$CLSVIZ_CACHE_DIR`` (default ``~/.cache/clsviz``) under ``onnx/<digest of the sources>/``.

**When it is made again.**  When the program or weights no longer have the recorded sha256s,
or the ONNX file itself changed.

**Legacy programs** (fluid ``__model__``, ``model``/``params``, ``.pdmodel``) are first
migrated (:func:`clsviz.migrate`) into the cache, then converted like any bundle.

**A refusal is remembered.**  When paddle2onnx refuses the model itself (an op it lacks, an
attribute it cannot map), ``<cache>/onnx/<digest>/refused.json`` keeps what it said, and a later
load of the same files raises the same error at once instead of converting again.  Another
paddle2onnx version tries again; so does deleting that file.  A time-out or a crash is not
remembered.

**Several processes at once** (Ray actors, two notebooks) load the same model: the first
converts while holding ``<cache>/onnx/.<digest>.lock``; the others wait on it and then find
its ONNX.  (Without the lock two of three processes failed on the migration's folder lock.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from ..bundle import BundleConfig, clsviz_section, sha256_file, verify_checksums
from ..errors import BackendUnavailable, ClsvizError, EngineError
from ..formats import detect
from ..formats.pirjson import read_pir
from ..formats.rebuild import legacy_op_name
from ..publish import add_own_files
from ..safe_io import read_text

ONNX_NAME = "inference.onnx"
SIDECAR = "inference.yml"
RUNTIMES_HINT = "pip install 'clsviz[runtimes]'"
_TIMEOUT = 600
_REFUSAL = "paddle2onnx cannot convert this model"  # how a refusal of the model itself begins
_REFUSED = "refused.json"
_RECORD = "record.json"  # beside a cached inference.onnx: the sha256s it was made from

__all__ = ["onnx_for", "OnnxFile", "cache_dir", "ONNX_NAME", "converter"]


@dataclass(frozen=True)
class OnnxFile:
    """Where the ONNX for a model is, and what getting it cost."""

    path: Path
    reused: bool  # found (recorded sha256s matched) rather than converted now
    seconds: float  # conversion (+ migration) time; the check when reused
    location: str  # "bundle" or "cache"
    sources: tuple  # (file name, sha256) it was made from

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "reused": self.reused,
            "seconds": self.seconds,
            "location": self.location,
            "sources": dict(self.sources),
        }


def cache_dir() -> Path:
    """``$CLSVIZ_CACHE_DIR``, else ``~/.cache/clsviz``."""
    env = os.environ.get("CLSVIZ_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clsviz"


def converter() -> Path:
    """The ``paddle2onnx`` executable (beside this Python first, then on ``PATH``)."""
    here = Path(sys.executable).parent / "paddle2onnx"
    if here.is_file():
        return here
    found = shutil.which("paddle2onnx")
    if found is None:
        raise BackendUnavailable("the paddle2onnx executable is not installed", hint=RUNTIMES_HINT)
    return Path(found)


def _entry(key: str) -> Path:
    """The cache folder for the sources with digest ``key``: their ONNX, its record, a refusal."""
    return cache_dir() / "onnx" / key


def _sha256(path: Path) -> str:
    return sha256_file(path)


def _source_files(files: detect.ModelFiles) -> list[Path]:
    assert files.model_file is not None  # an inference program
    if files.params_file is not None:
        return [files.model_file, files.params_file]
    # fluid: loose parameter files beside __model__
    return [
        files.model_file,
        *sorted(
            p
            for p in files.model_file.parent.iterdir()
            if p.is_file()
            and not p.is_symlink()
            and p != files.model_file
            and not p.name.startswith(".")
            and p.suffix not in (".yml", ".onnx")
        ),
    ]


def _digest(sources) -> str:
    return hashlib.sha256("".join(f"{n}:{h};" for n, h in sources).encode()).hexdigest()[:24]


# ------------------------------------------------------------------ the sidecar record
def _read_record(sidecar: Path) -> dict | None:
    try:
        doc = yaml.safe_load(read_text(sidecar, what="inference.yml"))

        section = clsviz_section(doc)
        if section is None:
            return None
        rec = section["onnx"]
        return rec if isinstance(rec, dict) else None
    except Exception:  # noqa: BLE001 - no usable record means convert again
        return None


def _stat(p: Path) -> list:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def _matches(rec: dict | None, onnx: Path, sources) -> bool:
    if not rec or not onnx.is_file() or onnx.is_symlink() or rec.get("sources") != dict(sources):
        return False
    # the ONNX is clsviz's own output: unchanged size and mtime since it was recorded spare
    # hashing ~100 MB on every load (the sources, which users replace, are always hashed)
    return rec.get("stat") == _stat(onnx) or rec.get("sha256") == _sha256(onnx)


def _record(onnx: Path, sources) -> dict:
    return {
        "file": ONNX_NAME,
        "sha256": _sha256(onnx),
        "sources": dict(sources),
        "converter": f"paddle2onnx {_p2o_version()}",
        "stat": _stat(onnx),
    }


def _p2o_version() -> str:
    try:
        return version("paddle2onnx")
    except PackageNotFoundError:  # pragma: no cover
        return "?"


# ------------------------------------------------------------------ converting
def _unsupported_ops(model_file: Path) -> list[str]:
    """Ops of a PIR program that are not in paddle2onnx's list (asked in a child process,
    as importing paddle2onnx's module imports Paddle's extension machinery)."""
    try:
        ops = set(read_pir(model_file).op_histogram())
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import paddle2onnx.paddle2onnx_cpp2py_export as c\n"
                "print('\\n'.join(c.get_all_supported_operators_pir()))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        known = {ln.strip() for ln in out.stdout.splitlines() if ln.strip()}
    except Exception:  # noqa: BLE001 - best effort: the caller still reports the failure
        return []
    if not known:
        return []
    structural = {"data", "fetch", "parameter", "full_int_array", "full", "shadow_output"}

    def listed(op: str) -> bool:  # paddle2onnx lists some PIR ops by their fluid-era names
        names = {op, op.rstrip("_"), op.replace(".", "_"), legacy_op_name(op)}
        return bool(names & known)

    return sorted(op for op in ops - structural if not listed(op))


def _p2o_errors(text: str) -> list[str]:
    """What paddle2onnx says about a particular op (``[OP: pd_op.pool2d] Adaptive only support
    static input shape``), without its generic closing lines."""
    out = []
    for m in re.finditer(r"\[ERROR\]\[Paddle2ONNX\]\s*(\[OP:\s*[^\]]+\].*)", text):
        line = m.group(1).strip()
        if line not in out:
            out.append(line)
    return out


def _convert(model_file: Path | None, params_file: Path | None, out: Path) -> None:
    """Run paddle2onnx: ``model_file`` + ``params_file`` (same folder) → ``out``."""
    if model_file is None or params_file is None:
        raise EngineError("paddle2onnx needs a program and a combined parameters file", path=out.parent)
    cmd = [
        str(converter()),
        "--model_dir",
        str(model_file.parent),
        "--model_filename",
        model_file.name,
        "--params_filename",
        params_file.name,
        "--save_file",
        str(out),
        # its default optimiser (Polygraphy) tries to pip-install sympy at run time
        "--optimize_tool",
        "None",
        "--enable_verbose",
        "True",
    ]
    env = dict(os.environ, GLOG_minloglevel="2")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        raise EngineError(f"paddle2onnx did not finish within {_TIMEOUT} s", path=model_file) from e
    if p.returncode == 0 and out.is_file():
        return
    out.unlink(missing_ok=True)
    text = p.stdout + "\n" + p.stderr
    said = _p2o_errors(text)
    if said:  # paddle2onnx names the op and what it lacks (a dynamic size, an attribute value)
        raise EngineError(
            f"{_REFUSAL}: " + "; ".join(said)[:400],
            path=model_file,
            hint="run it with mode='predictor'"
            + (", or export it with a fixed input size" if any("static" in s_ for s_ in said) else ""),
        )
    ops = _unsupported_ops(model_file) if model_file.suffix == ".json" else []
    if ops or "unsupported operator" in text.lower():
        raise EngineError(
            f"{_REFUSAL}: unsupported op(s) " + (", ".join(ops) if ops else "(not named by paddle2onnx)"),
            path=model_file,
            hint="run it with mode='predictor', or replace the op in the network",
        )
    last = [ln for ln in text.splitlines() if ln.strip() and "warn" not in ln.lower()]
    raise EngineError(f"paddle2onnx failed (exit {p.returncode}): {(last[-1] if last else '')[:300]}", path=model_file)


def _migrated(files: detect.ModelFiles, sources, root: Path) -> detect.ModelFiles:
    """A legacy program migrated into ``root`` (the cache), migrated once."""
    from ..migrate import migrate  # noqa: PLC0415 - a task above the engines (see pyproject)

    dst = root / "migrated"
    assert files.model_file is not None  # a legacy program
    if not (dst / SIDECAR).is_file():
        shutil.rmtree(dst, ignore_errors=True)  # a half-written one from a killed run
        migrate(
            files.model_file
            if files.params_file is not None or files.model_file.name != "__model__"
            else files.model_file.parent,
            dst,
            params=files.params_file,
            images=False,
        )
    return detect.resolve(dst)


def onnx_for(files: detect.ModelFiles) -> OnnxFile:
    """The ``inference.onnx`` for a Paddle inference program: found, or converted now.

    Raises :class:`BackendUnavailable` without paddle2onnx, :class:`EngineError` when it cannot
    convert the model (naming the ops it does not support).
    """
    t0 = time.perf_counter()
    if files.model_file is None:
        raise EngineError(
            "an ONNX runtime needs an inference program, and this model has none",
            path=files.root,
            hint="export the checkpoint first (clsviz.export)",
        )
    srcs = _source_files(files)
    sources = tuple((p.name, _sha256(p)) for p in srcs)
    key = _digest(sources)
    found = _found(files, sources, key, t0)
    if found is not None:
        return found
    # another process (a Ray actor, a second notebook) may be converting the same model: wait
    # for it and take its result rather than convert again or trip over its migration
    _refused_before(key, files.model_file)
    with _converting(key):
        found = _found(files, sources, key, t0)
        if found is not None:
            return found
        _refused_before(key, files.model_file)
        try:
            return _make(files, sources, key, t0)
        except EngineError as e:
            if e.message.startswith(_REFUSAL):  # the model itself, not a time-out or a full disk
                _remember_refusal(key, e)
            raise


def _refused_before(key: str, model_file: Path) -> None:
    """Raise again the refusal the same paddle2onnx gave these same files before (wherever they
    were then: the error names ``model_file``), rather than spend a conversion (seconds, a minute
    on a large model) to hear it again."""
    record = _entry(key) / _REFUSED
    try:
        rec = json.loads(record.read_text())
        if rec.get("paddle2onnx") != _p2o_version():
            return  # another paddle2onnx may convert it
        message, hint = str(rec["message"]), rec.get("hint")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    raise EngineError(
        message,
        path=model_file,
        hint=(f"{hint}; " if hint else "")
        + f"paddle2onnx {rec['paddle2onnx']} refused these same files before ({record}; delete it to try again)",
    )


def _remember_refusal(key: str, e: EngineError) -> None:
    root = _entry(key)
    rec = {
        "paddle2onnx": _p2o_version(),
        "message": e.message,
        "hint": e.hint,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{_REFUSED}.{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(rec, indent=1))
        os.replace(tmp, root / _REFUSED)
    except OSError:
        pass  # no cache folder: the next load converts again, as it did before


def _found(files: detect.ModelFiles, sources, key: str, t0: float) -> OnnxFile | None:
    """The ONNX made earlier for these sources, in the bundle or the cache, or None."""
    assert files.model_file is not None
    bundle = files.model_file.parent
    if _in_bundle(files) and _matches(_read_record(bundle / SIDECAR), bundle / ONNX_NAME, sources):
        return OnnxFile(bundle / ONNX_NAME, True, time.perf_counter() - t0, "bundle", sources)
    root = _entry(key)
    onnx, rec_file = root / ONNX_NAME, root / _RECORD
    if onnx.is_file() and rec_file.is_file():
        try:
            rec = json.loads(rec_file.read_text())
        except ValueError:
            rec = None
        if _matches(rec, onnx, sources):
            return OnnxFile(onnx, True, time.perf_counter() - t0, "cache", sources)
    return None


def _in_bundle(files: detect.ModelFiles) -> bool:
    """A clsviz-style bundle (Paddle 3 program beside its inference.yml): the ONNX may live in it."""
    assert files.model_file is not None
    sidecar = files.model_file.parent / SIDECAR
    return not files.legacy_program and files.config_file is not None and files.config_file == sidecar


@contextlib.contextmanager
def _converting(key: str) -> Iterator[None]:
    """Hold ``<cache>/onnx/.<key>.lock`` (a blocking ``flock``) while converting ``key``.

    Without a writable cache folder (or ``fcntl``) there is no lock: each process converts on
    its own, as before, each result written atomically.
    """
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover
        yield
        return
    try:
        folder = cache_dir() / "onnx"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f".{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, also if this process dies
        yield
    finally:
        os.close(fd)


def _refuse_damaged(bundle: Path, sources) -> None:
    """Raise :class:`FormatError` (as ``load`` would, after the build) before converting files the
    bundle's own checksums say were replaced: no conversion time spent, no ONNX of them written."""
    try:
        config = BundleConfig.read(bundle / SIDECAR)
    except ClsvizError:
        return  # a sidecar load itself will judge
    verify_checksums(config, [bundle / name for name, _ in sources], known=dict(sources))


def _make(files: detect.ModelFiles, sources, key: str, t0: float) -> OnnxFile:
    """Convert now: into the bundle if it takes it, else into the cache."""
    assert files.model_file is not None
    program = files
    bundle = files.model_file.parent
    if _in_bundle(files):
        _refuse_damaged(bundle, sources)
        onnx = bundle / ONNX_NAME
        staged = _stage(bundle)
        if staged is not None:
            try:
                _convert(files.model_file, files.params_file, staged)
                if _publish(bundle, staged, sources):
                    return OnnxFile(onnx, False, time.perf_counter() - t0, "bundle", sources)
            finally:
                staged.unlink(missing_ok=True)
        # the bundle could not take it (locked, a user's inference.onnx): the cache does

    root = _entry(key)
    onnx = root / ONNX_NAME
    rec_file = root / _RECORD
    root.mkdir(parents=True, exist_ok=True)
    if files.legacy_program:
        program = _migrated(files, sources, root)
    staged = root / f".{ONNX_NAME}.{secrets.token_hex(4)}"
    try:
        _convert(program.model_file, program.params_file, staged)
        os.replace(staged, onnx)
    finally:
        staged.unlink(missing_ok=True)

    tmp = root / f".record.{secrets.token_hex(4)}"
    tmp.write_text(json.dumps(_record(onnx, sources), indent=1))
    os.replace(tmp, rec_file)
    return OnnxFile(onnx, False, time.perf_counter() - t0, "cache", sources)


def _stage(folder: Path) -> Path | None:
    """A new hidden file in ``folder`` to convert into, or None if the folder cannot be written."""
    staged = folder / f".{ONNX_NAME}.{secrets.token_hex(4)}"
    try:
        os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except OSError:
        return None
    return staged


def _publish(bundle: Path, staged: Path, sources) -> bool:
    """Move ``staged`` into the bundle as ``inference.onnx`` and record it in the sidecar."""
    sidecar = bundle / SIDECAR
    try:
        doc = yaml.safe_load(read_text(sidecar, what="inference.yml"))

        section = clsviz_section(doc, create=True)
        if section is None:  # not a mapping
            return False
        section["onnx"] = _record(staged, sources)
    except Exception:  # noqa: BLE001 - a sidecar clsviz cannot edit: use the cache
        return False
    new_sidecar = bundle / f".{SIDECAR}.{secrets.token_hex(4)}"
    with open(new_sidecar, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True)
    # the ONNX first: a sidecar never records a file that is not there yet
    return add_own_files(bundle, {ONNX_NAME: staged, SIDECAR: new_sidecar})
