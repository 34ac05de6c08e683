"""Export: checkpoint → self-describing inference bundle, atomically.

The bundle holds ``inference.json`` + ``inference.pdiparams`` (Paddle 3 program and
weights), ``inference.yml`` (preprocessing, labels, model name) and, so that the
``dygraph`` mode also runs from the bundle alone, ``model.pdparams``.
It is written into a temporary folder beside the target, verified by running
the exported program against the network, and only then renamed into place.
"""
from __future__ import annotations

import errno
import html
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ._paddle import dygraph_mode, paddle, quiet
from .bundle import (CHECKPOINT_NAME, CONFIG_NAME, MODEL_PREFIX, BundleConfig, read_labels,
                     with_checksums, with_default_labels)
from .errors import ArchitectureError, ClsvizError, ExportError, FormatError, OptionError
from .transforms import Preprocess

ROLES = {
    ".json": "program (Paddle 3 PIR): the network's structure",
    ".pdmodel": "program (Paddle 2 ProgramDesc): the network's structure",
    ".pdiparams": "weights for the program, one combined file",
    ".yml": "sidecar: preprocessing, labels, model name",
    ".pdparams": "checkpoint (state dict) for the dygraph mode",
    ".info": "parameter names of the combined weights file",
}


@dataclass(frozen=True)
class BundleFile:
    name: str
    size: int
    role: str

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "role": self.role}


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    model_name: str          # Global.model_name in inference.yml: the PaddleX name when there is one
    class_num: int
    files: tuple[BundleFile, ...]
    max_abs_diff: float
    seconds: float
    arch: str = ""           # the architecture as the caller named it
    labels_note: str | None = None  # set when clsviz chose the labels (ImageNet-1k)

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "model_name": self.model_name, "arch": self.arch,
                "class_num": self.class_num, "labels_note": self.labels_note,
                "files": [f.to_dict() for f in self.files], "max_abs_diff": self.max_abs_diff,
                "seconds": round(self.seconds, 3)}

    def _title(self) -> str:
        also = f" (arch {self.arch})" if self.arch and self.arch != self.model_name else ""
        return f"{self.model_name}{also}"

    def __str__(self) -> str:
        lines = [f"exported {self._title()} ({self.class_num} classes) to {self.out_dir} "
                 f"in {self.seconds:.1f}s; verified max|Δ| {self.max_abs_diff:.2e}"]
        if self.labels_note:
            lines.append(f"  {self.labels_note}")
        lines += [f"  {f.name:<24} {_size(f.size):>9}  {f.role}" for f in self.files]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(f.name)}</code></td><td style='text-align:right'>"
                       f"{_size(f.size)}</td><td>{html.escape(f.role)}</td></tr>" for f in self.files)
        note = f"<br><small>{html.escape(self.labels_note)}</small>" if self.labels_note else ""
        return (f"<div><b>Exported {html.escape(self._title())}</b> ({self.class_num} classes) → "
                f"<code>{html.escape(str(self.out_dir))}</code> in {self.seconds:.1f}s · verified "
                f"max|Δ| {self.max_abs_diff:.1e}{note}<table><tr><th>file</th><th>size</th><th>role</th></tr>"
                f"{rows}</table></div>")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def list_bundle(folder) -> tuple[BundleFile, ...]:
    folder = Path(folder)
    out = []
    for f in sorted(folder.iterdir()):
        if f.is_file():
            role = ROLES.get(f.suffix, "other")
            out.append(BundleFile(f.name, f.stat().st_size, role))
    return tuple(out)


_REPLACEABLE = set(ROLES) | {".txt"}  # what force=True may replace: bundles, not user folders
_LEGACY_NAMES = {"__model__", "__params__", "model", "params"}


def _check_target(out_dir: Path, force: bool):
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError("output path exists and is not a folder", path=out_dir)
        entries = list(out_dir.iterdir())
        if entries and not force:
            raise ExportError("output folder is not empty", path=out_dir,
                              hint="pass force=True (CLI: --force) to replace it")
        foreign = sorted(f.name + ("/" if f.is_dir() else "") for f in entries
                         if f.is_dir() or not _replaceable(f))
        if foreign:
            raise ExportError(f"refusing to replace a folder that is not a model bundle (it holds "
                              f"{', '.join(foreign[:5])}{'…' if len(foreign) > 5 else ''})", path=out_dir,
                              hint="force=True replaces bundles only; choose a new or empty folder")


def _replaceable(f: Path) -> bool:
    """A file a bundle or a legacy model folder holds (``__model__``, ``params``, tensor files)."""
    if f.suffix in _REPLACEABLE or f.name.startswith(".") or f.name in _LEGACY_NAMES:
        return True
    from .formats.tensorfile import is_tensor_file  # fluid 1.x loose parameter files

    return is_tensor_file(f)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _recover(out_dir: Path) -> None:
    """Tidy what a killed export left beside ``out_dir``; put a displaced old bundle back."""
    for kind in ("old", "tmp"):
        for stale in sorted(out_dir.parent.glob(f".{out_dir.name}.{kind}-*")):
            pid = stale.name.rsplit(f".{kind}-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue  # another export to the same target is running
            if kind == "old" and not out_dir.exists():
                os.rename(stale, out_dir)  # killed between the two renames of the fallback swap
            else:
                shutil.rmtree(stale, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # the file system or kernel cannot exchange
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_dir(out_dir: Path, force: bool, fill, verify=None):
    """Build a folder with ``fill(tmp)`` beside ``out_dir``, ``verify(tmp)``, then swap it into place.

    At every instant ``out_dir`` is absent, the complete old folder or the complete new
    one: a new folder is renamed into place, and an old one is exchanged with the new one
    in a single ``renameat2(RENAME_EXCHANGE)``.  Where that call is missing (not Linux,
    old libc, some file systems) two renames are used, and an export killed between them
    leaves the old folder as ``.<name>.old-<pid>-*``, which the next export puts back.
    Leftover hidden ``.<name>.tmp-*`` folders are removed by the next export too.
    """
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _recover(out_dir)
    _check_target(out_dir, force)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{tag}"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would make the bundle private
    try:
        result = fill(tmp)
        if verify is not None:
            result = verify(tmp, result)
        for f in tmp.iterdir():  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        try:
            if not out_dir.exists():
                os.rename(tmp, out_dir)
            elif _exchange(tmp, out_dir):
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
            else:
                old = out_dir.parent / f".{out_dir.name}.old-{tag}"
                os.rename(out_dir, old)
                try:
                    os.rename(tmp, out_dir)
                except OSError:
                    os.rename(old, out_dir)
                    raise
                shutil.rmtree(old, ignore_errors=True)
        except OSError as e:
            raise ExportError(f"cannot move the new bundle into place: {e.strerror}", path=out_dir,
                              hint="is another export writing to the same folder?") from e
        _fsync_dir(out_dir.parent)
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export(arch: str, checkpoint, out_dir, *, class_num: int | None = None,
           image_shape=(3, 224, 224), labels=None, force: bool = False, softmax: bool = False,
           preprocess: Preprocess | None = None, trust: bool = False, arch_kwargs: dict | None = None,
           include_checkpoint: bool = True, tolerance: float = 1e-4) -> ExportResult:
    """Rebuild ``arch`` from code, load ``checkpoint`` strictly, save an inference bundle.

    ``checkpoint`` is a ``.pdparams`` path, a fluid persistables folder, or a state dict.
    ``softmax=True`` appends a softmax head (the program outputs probabilities).
    """
    from .archs import get_model, paddlex_name
    from .checkpoint import infer_class_num, load_into, load_state_dict
    from .engines.dygraph import SoftmaxHead

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    _check_target(out_dir.absolute(), force)
    image_shape = tuple(int(v) for v in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise OptionError(f"image_shape must be (C, H, W), got {image_shape}")
    if isinstance(checkpoint, dict):
        state, ckpt_path = checkpoint, None
    else:
        ckpt_path = Path(checkpoint)
        if ckpt_path.is_file() and (ckpt_path.suffix in (".json", ".pdmodel", ".pdiparams")
                                    or ckpt_path.name in ("__model__", "model", "params", "__params__")):
            raise FormatError("this is already an inference model, not a checkpoint", path=ckpt_path,
                              hint="run it as it is (clsviz.load), or convert it with clsviz.migrate")
        state = load_state_dict(ckpt_path, trust=trust)
        if ckpt_path.is_dir():
            from .formats.fluid_names import fluid_to_dygraph_for_arch

            state = fluid_to_dygraph_for_arch(state, arch)
    if class_num is None:
        class_num = infer_class_num(state)
        if class_num is None:
            raise OptionError("cannot tell the number of classes from the checkpoint", hint="pass class_num=")
    labels = read_labels(labels) if labels is not None else None
    if preprocess is None:
        crop = image_shape[1] if image_shape[1] == image_shape[2] else (image_shape[1], image_shape[2])
        preprocess = Preprocess(resize_short=round(min(image_shape[1:]) * 256 / 224), crop_size=crop)
    # PaddleX's create_model wants a name from its own list in Global.model_name; clsviz's
    # dygraph mode resolves that name back to the architecture (both spellings are registered)
    model_name = paddlex_name(arch) or arch
    config = BundleConfig(model_name=model_name, image_shape=image_shape, preprocess=preprocess,
                          labels=labels, softmax=softmax,
                          arch_kwargs=tuple(sorted((arch_kwargs or {}).items()))).with_class_num(class_num)
    config = with_default_labels(config)  # 1000 classes and no labels: ImageNet-1k, and say so

    with dygraph_mode():
        net = get_model(arch, class_num=class_num, **(arch_kwargs or {}))
        load_into(net, state, path=ckpt_path)
        net.eval()
        head = SoftmaxHead(net) if softmax else net
        head.eval()
        probe = np.random.default_rng(0).standard_normal((2, *image_shape)).astype(np.float32)
        with paddle.no_grad():
            expected = head(paddle.to_tensor(probe))
        if not hasattr(expected, "numpy") or tuple(expected.shape) != (2, class_num):
            found = (type(expected).__name__ if not hasattr(expected, "shape")
                     else list(expected.shape))
            raise ArchitectureError(f"{arch!r} is not an image classifier: for a batch of 2 it "
                                    f"returns {found}, expected a class vector [2, {class_num}]",
                                    hint="export supports networks whose forward returns [N, classes]")
        expected = expected.numpy()

        def fill(tmp: Path):
            spec = [paddle.static.InputSpec([None, *image_shape], "float32", name="x")]
            try:
                with quiet():
                    paddle.jit.save(head, str(tmp / MODEL_PREFIX), input_spec=spec)
            except ClsvizError:
                raise
            except Exception as e:
                from .engines.predictor import _first_line

                raise ExportError(f"paddle.jit.save failed: {_first_line(e)}", path=out_dir,
                                  hint="the network must be convertible by paddle.jit.to_static") from e
            if include_checkpoint:
                paddle.save(net.state_dict(), str(tmp / CHECKPOINT_NAME))
            names = [MODEL_PREFIX + ".json", MODEL_PREFIX + ".pdiparams", CHECKPOINT_NAME]
            with_checksums(config, tmp, names).write(tmp / CONFIG_NAME)
            return None

    def verify(tmp: Path, _):
        from .engines import load

        clf = load(tmp, mode="predictor", ir_optim=False, enable_mkldnn=False)
        got = clf.forward(probe)
        clf.close()
        diff = float(np.max(np.abs(got - expected)))
        if not np.isfinite(diff) or diff > tolerance * max(1.0, float(np.abs(expected).max())):
            raise ExportError(f"the exported program disagrees with the network (max|Δ| {diff:.3g})",
                              path=out_dir, hint="nothing was written; please report this model")
        return diff

    diff = atomic_write_dir(out_dir, force, fill, verify)
    return ExportResult(out_dir=out_dir.absolute(), model_name=model_name, class_num=class_num,
                        files=list_bundle(out_dir), max_abs_diff=diff, seconds=time.perf_counter() - t0,
                        arch=arch, labels_note=config.labels_note)
