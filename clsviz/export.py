"""Export: checkpoint → self-describing inference bundle, atomically.

The bundle holds ``inference.json`` + ``inference.pdiparams`` (Paddle 3 program and
weights), ``inference.yml`` (preprocessing, labels, model name) and, so that the
``dygraph`` mode also runs from the bundle alone, ``model.pdparams``.
It is written into a temporary folder beside the target, verified by running
the exported program against the network, and only then renamed into place.
"""
from __future__ import annotations

import html
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ._paddle import dygraph_mode, paddle, quiet
from .bundle import CHECKPOINT_NAME, CONFIG_NAME, MODEL_PREFIX, BundleConfig, read_labels
from .errors import ClsvizError, ExportError, OptionError
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
    model_name: str
    class_num: int
    files: tuple[BundleFile, ...]
    max_abs_diff: float
    seconds: float

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "model_name": self.model_name, "class_num": self.class_num,
                "files": [f.to_dict() for f in self.files], "max_abs_diff": self.max_abs_diff,
                "seconds": round(self.seconds, 3)}

    def __str__(self) -> str:
        lines = [f"exported {self.model_name} ({self.class_num} classes) to {self.out_dir} "
                 f"in {self.seconds:.1f}s; verified max|Δ| {self.max_abs_diff:.2e}"]
        lines += [f"  {f.name:<24} {_size(f.size):>9}  {f.role}" for f in self.files]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(f.name)}</code></td><td style='text-align:right'>"
                       f"{_size(f.size)}</td><td>{html.escape(f.role)}</td></tr>" for f in self.files)
        return (f"<div><b>Exported {html.escape(self.model_name)}</b> ({self.class_num} classes) → "
                f"<code>{html.escape(str(self.out_dir))}</code> in {self.seconds:.1f}s · verified "
                f"max|Δ| {self.max_abs_diff:.1e}<table><tr><th>file</th><th>size</th><th>role</th></tr>"
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


def _check_target(out_dir: Path, force: bool):
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError("output path exists and is not a folder", path=out_dir)
        if any(out_dir.iterdir()) and not force:
            raise ExportError("output folder is not empty", path=out_dir,
                              hint="pass force=True (CLI: --force) to replace it")


def atomic_write_dir(out_dir: Path, force: bool, fill, verify=None):
    """Build a folder with ``fill(tmp)`` beside ``out_dir``, ``verify(tmp)``, then rename into place.

    A crash at any point leaves the old ``out_dir`` intact (or nothing) plus, at worst,
    a hidden ``.<name>.tmp-*`` folder that the next run removes.
    """
    out_dir = Path(out_dir).absolute()
    _check_target(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        result = fill(tmp)
        if verify is not None:
            result = verify(tmp, result)
        for f in tmp.iterdir():  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
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
    from .archs import get_model
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
    config = BundleConfig(model_name=arch, image_shape=image_shape, preprocess=preprocess,
                          labels=labels, softmax=softmax,
                          arch_kwargs=tuple(sorted((arch_kwargs or {}).items()))).with_class_num(class_num)

    with dygraph_mode():
        net = get_model(arch, class_num=class_num, **(arch_kwargs or {}))
        load_into(net, state, path=ckpt_path)
        net.eval()
        head = SoftmaxHead(net) if softmax else net
        head.eval()
        probe = np.random.default_rng(0).standard_normal((2, *image_shape)).astype(np.float32)
        with paddle.no_grad():
            expected = head(paddle.to_tensor(probe)).numpy()

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
            config.write(tmp / CONFIG_NAME)
            if include_checkpoint:
                paddle.save(net.state_dict(), str(tmp / CHECKPOINT_NAME))
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
    return ExportResult(out_dir=out_dir.absolute(), model_name=arch, class_num=class_num,
                        files=list_bundle(out_dir), max_abs_diff=diff, seconds=time.perf_counter() - t0)
