"""Export: checkpoint → self-describing inference bundle, atomically.

The bundle holds ``inference.json`` + ``inference.pdiparams`` (Paddle 3 program and
weights), ``inference.yml`` (preprocessing, labels, model name) and, so that the
``dygraph`` mode also runs from the bundle alone, ``model.pdparams``.
It is written into a temporary folder beside the target, verified by running
the exported program against the network, and only then moved into place
(:mod:`clsviz.publish`: only the files a previous clsviz export wrote are ever replaced).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ._paddle import dygraph_mode, paddle, quiet
from ._translate import first_line
from .archs import get_model, paddlex_name
from .archs.layers import SoftmaxHead
from .bundle import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    MODEL_PREFIX,
    BundleConfig,
    paddlex_model_names,
    read_labels,
    with_checksums,
    with_default_labels,
)
from .checkpoint import infer_class_num, load_into, load_state_dict
from .engines import load
from .errors import ArchitectureError, ClsvizError, ExportError, FormatError, OptionError
from .formats import detect
from .formats.fluid_names import clsviz_state
from .publish import Target, atomic_write_dir, read_manifest  # noqa: F401  (atomic_write_dir: for migrate)
from .results import human_size
from .schema import MAX_CLASSES, check_image_shape
from .transforms import PathLike, Preprocess

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
    model_name: str  # Global.model_name in inference.yml: the PaddleX name when there is one
    class_num: int
    files: tuple[BundleFile, ...]
    max_abs_diff: float
    seconds: float
    arch: str = ""  # the architecture as the caller named it
    labels_note: str | None = None  # set when clsviz chose the labels (ImageNet-1k)
    softmax: bool = True  # the program outputs probabilities (a softmax head, appended or its own)
    notes: tuple = ()  # warnings worth reading (a model name PaddleX will refuse, …)

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "model_name": self.model_name,
            "arch": self.arch,
            "class_num": self.class_num,
            "labels_note": self.labels_note,
            "softmax": self.softmax,
            "notes": list(self.notes),
            "files": [f.to_dict() for f in self.files],
            "max_abs_diff": self.max_abs_diff,
            "seconds": round(self.seconds, 3),
        }

    def _title(self) -> str:
        also = f" (arch {self.arch})" if self.arch and self.arch != self.model_name else ""
        return f"{self.model_name}{also}"

    def __str__(self) -> str:
        lines = [
            f"exported {self._title()} ({self.class_num} classes) to {self.out_dir} "
            f"in {self.seconds:.1f}s; verified max|Δ| {self.max_abs_diff:.2e}"
        ]
        if self.labels_note:
            lines.append(f"  {self.labels_note}")
        lines += [f"  warning: {n}" for n in self.notes]
        lines += [f"  {f.name:<24} {human_size(f.size):>9}  {f.role}" for f in self.files]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(f.name)}</code></td><td style='text-align:right'>"
            f"{human_size(f.size)}</td><td>{html.escape(f.role)}</td></tr>"
            for f in self.files
        )
        note = f"<br><small>{html.escape(self.labels_note)}</small>" if self.labels_note else ""
        note += "".join(f"<br><small>⚠ {html.escape(n)}</small>" for n in self.notes)
        return (
            f"<div><b>Exported {html.escape(self._title())}</b> ({self.class_num} classes) → "
            f"<code>{html.escape(str(self.out_dir))}</code> in {self.seconds:.1f}s · verified "
            f"max|Δ| {self.max_abs_diff:.1e}{note}<table><tr><th>file</th><th>size</th><th>role</th></tr>"
            f"{rows}</table></div>"
        )


def _is_probabilities(out: np.ndarray) -> bool:
    """Whether a network's outputs are already probabilities (it ends in a softmax):
    non-negative rows summing to 1."""
    out = np.asarray(out, np.float64)
    return out.ndim == 2 and bool((out >= 0).all()) and bool(np.allclose(out.sum(axis=1), 1.0, atol=1e-4))


def list_bundle(folder) -> tuple[BundleFile, ...]:
    """The files of a bundle folder with their roles: those its manifest lists (a folder
    clsviz wrote may hold the user's files too), else every visible file."""
    folder = Path(folder)
    listed = read_manifest(folder)
    out = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith(".") and (listed is None or f.name in listed):
            role = ROLES.get(f.suffix, "other")
            out.append(BundleFile(f.name, f.stat().st_size, role))
    return tuple(out)


def export(
    arch: str,
    checkpoint: PathLike | Mapping[str, np.ndarray],
    out_dir: PathLike,
    *,
    class_num: int | None = None,
    image_shape: Sequence[int] = (3, 224, 224),
    labels: PathLike | Sequence[str] | None = None,
    force: bool = False,
    softmax: bool = True,
    preprocess: Preprocess | None = None,
    trust: bool = False,
    arch_kwargs: dict | None = None,
    include_checkpoint: bool = True,
    tolerance: float = 1e-4,
    model_name: str | None = None,
) -> ExportResult:
    """Rebuild ``arch`` from code, load ``checkpoint`` strictly, save an inference bundle.

    ``checkpoint`` is a ``.pdparams`` path, a fluid persistables folder, or a state dict.
    The program gets a softmax head appended (it outputs probabilities, as PaddleClas's export
    does); ``softmax=False`` keeps the logits.  A network that already outputs probabilities
    gets no second softmax.  ``model_name`` sets ``Global.model_name`` (default: PaddleX's name
    for ``arch``); a name PaddleX does not know is exported with a warning, since PaddleX's
    ``create_model`` refuses it.  The ``inference.yml`` is one PaddleX 3.x and PaddleClas deploy
    accept unchanged (see :mod:`clsviz.bundle`); it records ``preprocess.backend``.
    With ``force=True`` an existing ``out_dir`` keeps every file a previous clsviz export
    did not write (see :mod:`clsviz.publish`); the options and the output folder are
    checked before the checkpoint is read.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    image_shape = check_image_shape(image_shape)  # before any work: a size never drives allocation
    if class_num is not None and (
        isinstance(class_num, bool) or not isinstance(class_num, (int, np.integer)) or not 1 <= class_num <= MAX_CLASSES
    ):
        raise OptionError(f"class_num is {class_num!r}; allowed: an integer from 1 to {MAX_CLASSES:,}")
    ckpt_path = None if isinstance(checkpoint, Mapping) else Path(checkpoint)
    names = [MODEL_PREFIX + ".json", MODEL_PREFIX + ".pdiparams", CONFIG_NAME] + (
        [CHECKPOINT_NAME] if include_checkpoint else []
    )
    with Target(out_dir, force=force, sources=[ckpt_path], names=names) as target:
        return _export_into(
            target,
            arch,
            checkpoint,
            ckpt_path,
            class_num=class_num,
            image_shape=image_shape,
            labels=labels,
            softmax=softmax,
            preprocess=preprocess,
            trust=trust,
            arch_kwargs=arch_kwargs,
            include_checkpoint=include_checkpoint,
            tolerance=tolerance,
            t0=t0,
            model_name=model_name,
        )


def _export_into(
    target: Target,
    arch,
    checkpoint,
    ckpt_path,
    *,
    class_num,
    image_shape,
    labels,
    softmax,
    preprocess,
    trust,
    arch_kwargs,
    include_checkpoint,
    tolerance,
    t0,
    model_name=None,
) -> ExportResult:
    out_dir = target.given
    if isinstance(checkpoint, Mapping):
        state = dict(checkpoint)
    else:
        kind = detect.source_kind(ckpt_path)
        if kind in detect.INFERENCE_KINDS:
            raise FormatError(
                "this is already an inference model, not a checkpoint",
                path=ckpt_path,
                hint="run it as it is (clsviz.load), or convert it with clsviz.migrate",
            )
        state, _ = clsviz_state(load_state_dict(ckpt_path, trust=trust), arch, kind=kind)
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
    model_name = model_name or paddlex_name(arch) or arch
    notes = []
    if model_name not in paddlex_model_names():
        note = (
            f"Global.model_name {model_name!r} is not a PaddleX image-classification model name: "
            "PaddleX's create_model will refuse this bundle (pass model_name= / --model_name with "
            "a name from clsviz/data/paddlex_classification_models.txt, e.g. the closest architecture)"
        )
        notes.append(note)
    config = BundleConfig(
        model_name=model_name,
        arch=arch,
        image_shape=image_shape,
        preprocess=preprocess,
        labels=labels,
        softmax=bool(softmax),
        arch_kwargs=tuple(sorted((arch_kwargs or {}).items())),
    ).with_class_num(class_num)
    config = with_default_labels(config)  # 1000 classes and no labels: ImageNet-1k, and say so

    with dygraph_mode():
        net = get_model(arch, class_num=class_num, **(arch_kwargs or {}))
        load_into(net, state, path=ckpt_path)
        net.eval()
        probe = np.random.default_rng(0).standard_normal((2, *image_shape), dtype=np.float32)
        try:
            with paddle.no_grad():
                expected = net(paddle.to_tensor(probe))
        except Exception as e:
            raise OptionError(
                f"{arch!r} does not accept inputs of image_shape {list(image_shape)}: {first_line(e)}",
                hint="C must be the network's input channels (3 for RGB models), H and W "
                "large enough for its downsampling",
            ) from e
        if not hasattr(expected, "numpy") or tuple(expected.shape) != (2, class_num):
            found = type(expected).__name__ if not hasattr(expected, "shape") else list(expected.shape)
            raise ArchitectureError(
                f"{arch!r} is not an image classifier: for a batch of 2 it "
                f"returns {found}, expected a class vector [2, {class_num}]",
                hint="export supports networks whose forward returns [N, classes]",
            )
        expected = expected.numpy()
        already = _is_probabilities(expected)  # the net ends in a softmax: never apply it twice
        head = SoftmaxHead(net) if softmax and not already else net
        head.eval()
        if head is not net:
            with paddle.no_grad():
                expected = head(paddle.to_tensor(probe)).numpy()
        config = replace(config, softmax=bool(softmax or already))

        def fill(tmp: Path):
            spec = [paddle.static.InputSpec([None, *image_shape], "float32", name="x")]
            try:
                with quiet():
                    paddle.jit.save(head, str(tmp / MODEL_PREFIX), input_spec=spec)
            except (ClsvizError, OSError):
                raise  # OSError (a full disk, permissions): clsviz.publish says so and cleans up
            except Exception as e:
                raise ExportError(
                    f"paddle.jit.save failed: {first_line(e)}",
                    path=out_dir,
                    hint="the network must be convertible by paddle.jit.to_static",
                ) from e
            if include_checkpoint:
                paddle.save(net.state_dict(), str(tmp / CHECKPOINT_NAME))
            names = [MODEL_PREFIX + ".json", MODEL_PREFIX + ".pdiparams", CHECKPOINT_NAME]
            with_checksums(config, tmp, names).write(tmp / CONFIG_NAME)
            return None

    def verify(tmp: Path, _):
        clf = load(tmp, mode="predictor", ir_optim=False, enable_mkldnn=False)
        got = clf.forward(probe)
        clf.close()
        diff = float(np.max(np.abs(got - expected)))
        if not np.isfinite(diff) or diff > tolerance * max(1.0, float(np.abs(expected).max())):
            raise ExportError(
                f"the exported program disagrees with the network (max|Δ| {diff:.3g})",
                path=out_dir,
                hint="nothing was written; please report this model",
            )
        return diff

    diff = target.publish(fill, verify)
    return ExportResult(
        out_dir=out_dir,
        model_name=model_name,
        class_num=class_num,
        files=list_bundle(out_dir),
        max_abs_diff=diff,
        seconds=time.perf_counter() - t0,
        arch=arch,
        labels_note=config.labels_note,
        softmax=config.softmax,
        notes=tuple(notes),
    )
