"""Legacy model → Paddle 3 bundle: ``clsviz.migrate(src, dst)``.

Routes, by what ``src`` is (see docs/formats.md for the layouts a–h):

``rebuild``   a legacy inference program (b, c, d, g; a legacy bundle): the program is
              rebuilt op by op as a Layer (:mod:`clsviz.formats.rebuild`) and saved with
              ``paddle.jit.save`` as ``inference.json`` + ``inference.pdiparams``.
``fallback``  the same, when the program uses an op the rebuild does not cover: the
              program is copied as ``inference.pdmodel`` and the weights written as one
              ``inference.pdiparams`` (Paddle 2 layout, which the predictor still reads).
``copy``      a Paddle 3 program without a sidecar (h): copied, ``inference.yml`` added.
``export``    a checkpoint (a, e, f) and ``arch``: :func:`clsviz.export`.

Every route writes ``inference.yml`` and goes through
:func:`clsviz.export.atomic_write_dir`: the new bundle is built beside ``dst``,
checked, and only then moved into place.  The check runs the predictor on the
old files and on the new bundle, on random inputs and on the images in
``sample_images/`` (when there are any), and refuses a bundle whose outputs
differ by more than ``tolerance`` × the output scale.
"""

from __future__ import annotations

import html
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ._paddle import dygraph_mode, paddle, quiet
from ._translate import first_line
from .archs import guess_architecture
from .bundle import resolve_config
from .checkpoint import load_state_dict
from .engines.base import EngineOptions
from .engines.predictor import PredictorClassifier
from .errors import ClsvizError, ExportError, FormatError, OptionError
from .export import export, list_bundle
from .formats import detect
from .formats.fluid_names import (
    clsviz_state,
    guess_arch,
)
from .formats.pirjson import read_pir
from .formats.programdesc import read_program
from .formats.rebuild import infer_config, program_io, program_to_layer, read_program_weights, unsupported_ops
from .formats.tensorfile import write_combined
from .publish import Target, atomic_write_dir
from .results import human_size
from .transforms import Images, PathLike, Preprocess, expand_images

__all__ = ["migrate", "MigrateResult", "ROUTES"]

ROUTES = ("rebuild", "fallback", "copy", "export")
_PREFIX = "inference"
_REPO_SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


@dataclass(frozen=True)
class MigrateResult:
    """What :func:`migrate` wrote and how it checked it."""

    src: str
    dst: Path
    source_kind: str  # a clsviz.formats.detect kind
    route: str  # one of ROUTES
    program_format: str  # "Paddle 3 PIR (inference.json)" or "Paddle 2 ProgramDesc (…)"
    files: tuple  # clsviz.export.BundleFile
    max_abs_diff: float  # old vs new on random inputs
    images_checked: int = 0
    images_max_abs_diff: float | None = None
    tolerance: float = 1e-4
    unsupported_ops: tuple = ()
    notes: tuple = ()
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "src": self.src,
            "dst": str(self.dst),
            "source_kind": self.source_kind,
            "route": self.route,
            "program_format": self.program_format,
            "files": [f.to_dict() for f in self.files],
            "max_abs_diff": self.max_abs_diff,
            "images_checked": self.images_checked,
            "images_max_abs_diff": self.images_max_abs_diff,
            "tolerance": self.tolerance,
            "unsupported_ops": list(self.unsupported_ops),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }

    def _checks(self) -> str:
        s = f"random inputs max|Δ| {self.max_abs_diff:.2e}"
        if self.images_checked:
            s += f", {self.images_checked} sample images max|Δ| {self.images_max_abs_diff:.2e}"
        return s

    def __str__(self) -> str:
        lines = [
            f"migrated {self.src} ({self.source_kind.replace('_', ' ')}) → {self.dst}",
            f"  route {self.route}: {self.program_format}; checked old vs new: {self._checks()} "
            f"(tolerance {self.tolerance:g} × output scale) in {self.seconds:.1f}s",
        ]
        if self.unsupported_ops:
            lines.append(f"  ops not covered by the rebuild: {', '.join(self.unsupported_ops)}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  {f.name:<24} {human_size(f.size):>9}  {f.role}" for f in self.files]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(f.name)}</code></td><td style='text-align:right'>"
            f"{human_size(f.size)}</td><td>{html.escape(f.role)}</td></tr>"
            for f in self.files
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        ops = (
            f"<br>ops not covered: <code>{html.escape(', '.join(self.unsupported_ops))}</code>"
            if self.unsupported_ops
            else ""
        )
        return (
            f"<div><b>Migrated</b> <code>{html.escape(self.src)}</code> → "
            f"<code>{html.escape(str(self.dst))}</code><br>route <b>{html.escape(self.route)}</b>: "
            f"{html.escape(self.program_format)} · {html.escape(self._checks())}{ops}"
            f"<ul>{notes}</ul><table><tr><th>file</th><th>size</th><th>role</th></tr>{rows}</table></div>"
        )


def _image_batch(images, config) -> tuple[np.ndarray | None, int]:
    if images is None:
        folder = _REPO_SAMPLES
        if not folder.is_dir() or not any(
            f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp") for f in folder.iterdir()
        ):
            return None, 0
        images = folder
    elif images is False:
        return None, 0
    items = expand_images(images)
    if not items:
        return None, 0
    pre = config.preprocess
    return np.stack([pre(x) for x in items]), len(items)


def _check(old_files, new_dir: Path, config, *, tolerance: float, images, where) -> dict:
    """Predictor on the old files vs predictor on the new bundle: random inputs + sample images."""
    opts = EngineOptions(ir_optim=False, enable_mkldnn=False)
    probe = config.preprocess.probe(2)  # the program's own input signature, never a 3-channel default
    batch, n_images = _image_batch(images, config)
    old = PredictorClassifier(old_files, config, opts, source=str(where))
    new = PredictorClassifier(detect.resolve(new_dir), config, opts, source=str(new_dir))
    try:
        out = {}
        for key, x in (("random", probe), ("images", batch)):
            if x is None:
                continue
            a, b = old.forward(x), new.forward(x)
            if a.shape != b.shape:
                raise ExportError(
                    f"the new bundle's output has shape {list(b.shape)}, the old model's {list(a.shape)}",
                    path=where,
                    hint="nothing was written",
                )
            diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
            scale = max(1.0, float(np.abs(a).max()) if a.size else 1.0)
            if not np.isfinite(diff) or diff > tolerance * scale:
                raise ExportError(
                    f"the new bundle disagrees with the old model on {key} inputs "
                    f"(max|Δ| {diff:.3g} > {tolerance:g} × {scale:.3g})",
                    path=where,
                    hint="nothing was written; please report this model",
                )
            out[key] = diff
        out["n_images"] = n_images
        return out
    finally:
        old.close()
        new.close()


def _input_spec(program, config):
    feeds, _ = program_io(program)
    name, shape, dtype = feeds[0]
    if shape and len(shape) >= 2:  # as the program declares it: NCHW, NHWC or flat
        dims = [None] + [int(d) if d > 0 else None for d in shape[1:]]
    else:
        dims = [None, *config.preprocess.item_shape]
    return [paddle.static.InputSpec(dims, dtype or "float32", name=name)]


def _legacy_route(files, config, *, fallback: bool):
    """Decide rebuild vs fallback.  Returns (route, net or None, config, unsupported ops, notes)."""
    program = read_program(files.model_file)
    if not program.feed_targets():
        raise FormatError(
            "this is a training program (no feed/fetch ops), not an inference model",
            path=files.model_file,
            hint="migrate the .pdparams beside it with arch= instead",
        )
    missing = unsupported_ops(program)
    if missing:
        if not fallback:
            raise ExportError(
                "the program uses ops the rebuild does not cover: " + ", ".join(sorted(missing)),
                path=files.model_file,
                hint="pass fallback=True to write a Paddle 2 bundle (.pdmodel + .pdiparams)",
            )
        config = infer_config(program, config, from_file=files.config_file is not None)
        return (
            "fallback",
            None,
            config,
            program,
            tuple(sorted(missing)),
            (
                "ops not covered by the rebuild (" + ", ".join(sorted(missing)) + "): wrote a Paddle 2 "
                "bundle (the program copied, the weights combined) that the predictor reads",
            ),
        )
    net, config = program_to_layer(files, config)
    return "rebuild", net, config, program, (), ()


def _fill_rebuild(tmp: Path, net, program, config):
    with dygraph_mode():
        try:
            with quiet():
                paddle.jit.save(net, str(tmp / _PREFIX), input_spec=_input_spec(program, config))
        except ClsvizError:
            raise
        except Exception as e:
            raise ExportError(f"paddle.jit.save failed on the rebuilt program: {first_line(e)}", path=tmp) from e


def _fill_fallback(tmp: Path, files, program):
    shutil.copyfile(files.model_file, tmp / f"{_PREFIX}.pdmodel")
    if files.params_file is not None:
        shutil.copyfile(files.params_file, tmp / f"{_PREFIX}.pdiparams")
    else:  # loose files → one combined file, in the program's persistable order
        weights = read_program_weights(program, model_file=files.model_file)
        write_combined(tmp / f"{_PREFIX}.pdiparams", [weights[n] for n in program.persistable_names()])


def migrate(
    src: PathLike,
    dst: PathLike,
    *,
    arch: str | None = None,
    params: PathLike | None = None,
    class_num: int | None = None,
    force: bool = False,
    labels: PathLike | Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    image_shape: Sequence[int] | None = None,
    images: Images | bool | None = None,
    tolerance: float = 1e-4,
    fallback: bool = True,
    trust: bool = False,
) -> MigrateResult:
    """Turn any Paddle model into a Paddle 3 bundle at ``dst`` (``inference.json`` +
    ``inference.pdiparams`` + ``inference.yml``), checked against the original.

    ``src`` is anything :func:`clsviz.inspect` identifies.  A checkpoint (a
    persistables folder, a ``.pdparams``) needs ``arch`` and goes through
    :func:`clsviz.export`.  ``images`` (a folder, paths or arrays; ``False`` to
    skip) are checked besides random inputs; by default the repository's
    ``sample_images/``.  ``fallback=False`` raises instead of writing a Paddle 2
    bundle when the program has ops the rebuild does not cover.  Raises
    :class:`~clsviz.errors.ExportError` (nothing written) when the new bundle
    disagrees with the old model.
    """
    t0 = time.perf_counter()
    if tolerance <= 0:
        raise OptionError(f"tolerance must be > 0, got {tolerance}")
    files = detect.resolve(src, params=params)
    dst = Path(dst)
    if Path(src).resolve() == dst.resolve() or files.root.resolve() == dst.resolve():
        raise OptionError("dst is the source folder", hint="migrate into a new folder")

    if files.model_file is None:
        return _migrate_checkpoint(
            files,
            src,
            dst,
            arch=arch,
            class_num=class_num,
            force=force,
            labels=labels,
            preprocess=preprocess,
            image_shape=image_shape,
            trust=trust,
            t0=t0,
            tolerance=tolerance,
        )
    sources = [Path(src), files.model_file, files.params_file, files.config_file, files.root]
    with Target(dst, force=force, sources=sources, names=[f"{_PREFIX}.pdiparams", "inference.yml"]):
        pass  # the output folder is checked (and a concurrent writer found) before the work
    if files.kind == detect.BUNDLE and not files.legacy_program:
        raise ExportError(
            "this is already a Paddle 3 bundle (inference.json + inference.yml); there is nothing to migrate",
            path=files.root,
            hint="copy the folder as it is, or re-export from model.pdparams",
        )

    config = resolve_config(
        files.config_file, arch=arch, class_num=class_num, labels=labels, preprocess=preprocess, image_shape=image_shape
    )

    unsupported, notes = (), []
    if files.legacy_program:
        route, net, config, program, unsupported, extra = _legacy_route(files, config, fallback=fallback)
        notes += extra
    else:
        program = read_pir(files.model_file)
        config = infer_config(program, config, from_file=files.config_file is not None)
        route, net = "copy", None
        notes.append("already a Paddle 3 program: copied as it is, with an inference.yml beside it")
    if preprocess is not None:  # the caller's preprocessing wins over what the program suggests
        config = replace(config, preprocess=preprocess)
    if config.model_name is None:
        config = replace(config, model_name=f"migrated:{files.model_file.name}")

    def fill(tmp: Path):
        if route == "rebuild":
            _fill_rebuild(tmp, net, program, config)
        elif route == "fallback":
            _fill_fallback(tmp, files, program)
        else:
            assert files.model_file is not None and files.params_file is not None  # a Paddle 3 model
            shutil.copyfile(files.model_file, tmp / f"{_PREFIX}.json")
            shutil.copyfile(files.params_file, tmp / f"{_PREFIX}.pdiparams")
        config.write(tmp / "inference.yml")
        return None

    def verify(tmp: Path, _):
        return _check(files, tmp, config, tolerance=tolerance, images=images, where=dst)

    checks = atomic_write_dir(dst, force, fill, verify, sources=sources)
    fmt = (
        "Paddle 2 ProgramDesc (inference.pdmodel + inference.pdiparams)"
        if route == "fallback"
        else "Paddle 3 PIR (inference.json + inference.pdiparams)"
    )
    return MigrateResult(
        str(src),
        dst.absolute(),
        files.kind,
        route,
        fmt,
        list_bundle(dst),
        checks["random"],
        checks["n_images"],
        checks.get("images"),
        tolerance,
        unsupported,
        tuple(notes),
        time.perf_counter() - t0,
    )


def _migrate_checkpoint(
    files, src, dst, *, arch, class_num, force, labels, preprocess, image_shape, trust, t0, tolerance
) -> MigrateResult:
    with Target(dst, force=force, sources=[Path(src), files.checkpoint]):
        pass  # the output folder is checked before the checkpoint is read
    state = load_state_dict(files.checkpoint, trust=trust)
    if arch is None:
        guess = guess_arch(state) or guess_architecture(state)
        what = {
            detect.FLUID_PERSISTABLES: "a fluid persistables folder",
            detect.STATIC_SAVE: "a paddle.static.save checkpoint",
        }.get(files.kind, "a checkpoint")
        raise OptionError(
            f"{what} holds weights only; migrating it needs the network code",
            path=files.checkpoint,
            hint="pass arch= (CLI: --arch), "
            + (f"e.g. {guess}: the names are its" if guess else "see clsviz.list_models()"),
        )
    notes = []
    state, mapped = clsviz_state(state, arch, kind=files.kind)
    if mapped:
        notes.append("fluid parameter names mapped to clsviz's")
    if image_shape is None and preprocess is not None:
        h, w = preprocess.crop_hw
        image_shape = (3, h, w)
    r = export(
        arch,
        state,
        dst,
        class_num=class_num,
        image_shape=image_shape or (3, 224, 224),
        labels=labels,
        force=force,
        preprocess=preprocess,
        tolerance=tolerance,
    )
    notes.append("checked by export: the saved program against the network on random inputs")
    return MigrateResult(
        str(src),
        r.out_dir,
        files.kind,
        "export",
        "Paddle 3 PIR (inference.json + inference.pdiparams)",
        r.files,
        r.max_abs_diff,
        0,
        None,
        tolerance,
        (),
        tuple(notes),
        time.perf_counter() - t0,
    )
