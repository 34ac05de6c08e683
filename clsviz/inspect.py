"""What Paddle model format is this, and what is in it?  ``clsviz.inspect(path)``.

    >>> clsviz.inspect("ResNet50_vd_infer/")            # any file or folder
    >>> clsviz.inspect.compare("model.pdparams", "bundle/")   # two models side by side

:func:`inspect` names the layout (a–h in docs/formats.md, or a clsviz/PaddleClas
bundle), the Paddle era that wrote it, every file with its size and role (files
the model does not use are flagged), the tensors (count, parameters, bytes,
dtypes), the program's inputs, outputs and op histogram, and which clsviz modes
can run it, with what is missing for the others.  Something that is not a
Paddle model (a PyTorch zip named ``.pdparams``, an ONNX file, an empty or
mixed folder) gets a report that says so and says what it is instead.

This module is callable: ``clsviz.inspect(path)`` is :func:`inspect`, and
``clsviz.inspect.compare(a, b)`` is :func:`compare`.  Reading is cheap: tensor
headers are scanned without their data, except for ``.pdparams`` pickles
(unpickled safely) and for :func:`compare`, which reads the values.
"""

from __future__ import annotations

import hashlib
import html
import sys
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .archs import guess_architecture
from .bundle import BundleConfig, deploy_check, resolve_config
from .checkpoint import infer_class_num, load_state_dict
from .engines import ENGINES, RUNTIMES, capability
from .errors import ClsvizError, FormatError
from .formats import detect
from .formats.fluid_names import guess_arch, is_optimizer_state
from .formats.pirjson import PirProgram, read_pir
from .formats.programdesc import Program, read_program
from .formats.rebuild import (
    config_from_program,
    ends_with_softmax,
    is_training_program,
    read_program_weights,
    rebuild_gaps,
)
from .formats.signature import signature_of
from .formats.tensorfile import is_tensor_file, read_combined, scan_combined, shape_fits
from .results import human_size
from .safe_io import read_text
from .transforms import PathLike

__all__ = [
    "inspect",
    "compare",
    "InspectReport",
    "InspectComparison",
    "FileInfo",
    "TensorStats",
    "TensorSpec",
    "ModeSupport",
    "TensorMatch",
]

MODES = ("predictor", "dygraph", "executor", "export", "migrate")

# detect kind -> (layout letter, title, era)
_LAYOUT = {
    detect.FLUID_PERSISTABLES: (
        "a",
        "fluid persistables folder: one tensor file per variable",
        "fluid 1.x (save_persistables / save_vars)",
    ),
    "fluid_inference_loose": (
        "b",
        "fluid inference model: __model__ + one tensor file per parameter",
        "fluid 1.x (save_inference_model)",
    ),
    "fluid_inference_combined": (
        "c",
        "fluid inference model: program + combined params file",
        "fluid 1.x (save_inference_model, params_filename=)",
    ),
    "fluid_model_params": (
        "d",
        "fluid inference model: model + params",
        "fluid 1.x / early 2.0 (PaddleClas 1.x export_model.py)",
    ),
    detect.STATIC_SAVE: (
        "e",
        "paddle.static.save checkpoint: .pdparams + .pdopt + training .pdmodel",
        "Paddle 2.x (paddle.static.save)",
    ),
    detect.DYGRAPH_CHECKPOINT: (
        "f",
        "dygraph checkpoint: a state dict pickle (.pdparams)",
        "Paddle 2.x / 3 (paddle.save(layer.state_dict()))",
    ),
    detect.PADDLE2_INFERENCE: (
        "g",
        "Paddle 2 inference model: .pdmodel + .pdiparams",
        "Paddle 2.x (jit.save / save_inference_model)",
    ),
    detect.PADDLE3_INFERENCE: ("h", "Paddle 3 inference model: PIR .json + .pdiparams", "Paddle 3 (jit.save, PIR)"),
}


# ------------------------------------------------------------------ result types
def _esc(x) -> str:
    return html.escape(str(x))


@dataclass(frozen=True)
class FileInfo:
    """One file of a model (or of a folder that should hold one)."""

    name: str
    size: int
    role: str
    used: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "role": self.role, "used": self.used}


@dataclass(frozen=True)
class TensorStats:
    """The tensors a model stores (weights; optimizer state is counted apart)."""

    count: int
    params: int  # number of values
    nbytes: int
    dtypes: tuple = ()  # ((dtype, tensor count), …)
    optimizer_count: int = 0  # optimizer / LR state tensors (checkpoints only)
    names: tuple = ()  # the first few names, for orientation

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "params": self.params,
            "bytes": self.nbytes,
            "dtypes": dict(self.dtypes),
            "optimizer_count": self.optimizer_count,
            "names": list(self.names),
        }

    def summary(self) -> str:
        dt = ", ".join(f"{d} ×{n}" for d, n in self.dtypes)
        s = f"{self.count} tensors, {self.params:,} values, {human_size(self.nbytes)} ({dt})"
        if self.optimizer_count:
            s += f"; plus {self.optimizer_count} optimizer-state tensors"
        return s


@dataclass(frozen=True)
class TensorSpec:
    """A program input or output."""

    name: str
    shape: tuple | None
    dtype: str | None

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape), "dtype": self.dtype}

    def __str__(self) -> str:
        shape = "?" if self.shape is None else "[" + ", ".join("N" if d < 0 else str(d) for d in self.shape) + "]"
        return f"{self.name} {shape} {self.dtype or ''}".rstrip()


@dataclass(frozen=True)
class ModeSupport:
    """Whether a clsviz mode runs this model: ``status`` is "ready", "needs" (an argument) or "no"."""

    mode: str
    status: str
    detail: str

    @property
    def available(self) -> bool:
        return self.status == "ready"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class InspectReport:
    """What :func:`inspect` found at ``path``."""

    path: str
    kind: str  # a clsviz.formats.detect kind, or "not_a_model"
    layout: str  # "a".."h", "bundle", or "" when not a model
    title: str  # what it is, in words
    era: str
    is_model: bool
    verdict: str  # one line
    files: tuple = ()  # FileInfo
    tensors: TensorStats | None = None
    inputs: tuple = ()  # TensorSpec
    outputs: tuple = ()
    ops: tuple = ()  # ((op type, count), …), most frequent first
    program: str = ""  # "ProgramDesc version 2004002 (Paddle 2.4.2), 82 ops", …
    modes: tuple = ()  # ModeSupport, in MODES order
    notes: tuple = ()
    problems: tuple = ()
    preprocess: str = ""  # what an image goes through for this model (Preprocess repr)
    deploy_check: tuple | None = None  # why PaddleX would not run it as clsviz does; () = it would
    program_format: str = ""  # "ProgramDesc", "PIR JSON", or "" without a program
    program_role: str = ""  # "inference" (the model's own program), "training", or ""
    softmax: bool = False  # the program ends with a softmax: it outputs probabilities

    @property
    def unused(self) -> tuple:
        """Names of the files the model does not use."""
        return tuple(f.name for f in self.files if not f.used)

    def mode(self, name: str) -> ModeSupport:
        for m in self.modes:
            if m.mode == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "layout": self.layout,
            "title": self.title,
            "era": self.era,
            "is_model": self.is_model,
            "verdict": self.verdict,
            "files": [f.to_dict() for f in self.files],
            "unused": list(self.unused),
            "tensors": None if self.tensors is None else self.tensors.to_dict(),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "ops": dict(self.ops),
            "program": self.program,
            "program_format": self.program_format,
            "program_role": self.program_role,
            "softmax": self.softmax,
            "modes": {m.mode: {"status": m.status, "detail": m.detail} for m in self.modes},
            "notes": list(self.notes),
            "problems": list(self.problems),
            "preprocess": self.preprocess,
            "deploy_check": None
            if self.deploy_check is None
            else {"paddlex": not self.deploy_check, "problems": list(self.deploy_check)},
        }

    def to_text(self, max_files: int = 30) -> str:
        lines = [f"{self.path}", f"  {self.verdict}"]
        if self.is_model:
            lines.append(f"  format  ({self.layout}) {self.title}")
            lines.append(f"  era     {self.era}")
        if self.files:
            lines.append(f"  files   ({len(self.files)}, {human_size(sum(f.size for f in self.files))})")
            # every unused file, and the first used ones up to max_files
            room = max(0, max_files - len(self.unused))
            shown = [f for f in self.files if not f.used or (room := room - 1) >= 0]
            width = max(len(f.name) for f in shown)
            for f in shown:
                flag = "" if f.used else "  ← UNUSED"
                lines.append(f"    {f.name:<{width}}  {human_size(f.size):>9}  {f.role}{flag}")
            if len(shown) < len(self.files):
                lines.append(f"    … and {len(self.files) - len(shown)} more")
        if self.tensors is not None:
            lines.append(f"  tensors {self.tensors.summary()}")
        if self.program:
            lines.append(f"  program {self.program}")
        for title, specs in (("input ", self.inputs), ("output", self.outputs)):
            for s in specs:
                lines.append(f"  {title}  {s}")
        if self.ops:
            lines.append("  ops     " + ", ".join(f"{k} ×{v}" for k, v in self.ops))
        if self.preprocess:
            lines.append(f"  images  {self.preprocess}")
        if self.deploy_check is not None:
            lines.append(
                "  PaddleX "
                + (
                    "✓ runs this bundle unchanged (create_model)"
                    if not self.deploy_check
                    else "✗ " + "; ".join(self.deploy_check)
                )
            )
        if self.modes:
            lines.append("  modes")
            for m in self.modes:
                mark = {"ready": "✓", "needs": "…", "no": "✗"}[m.status]
                lines.append(f"    {mark} {m.mode:<11} {m.detail}")
        for n in self.notes:
            lines.append(f"  note    {n}")
        for p in self.problems:
            lines.append(f"  PROBLEM {p}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        color = "#2e7d32" if self.is_model and not self.problems else "#c62828"
        head = (
            f"<div style='border-left:4px solid {color};padding:4px 8px'>"
            f"<b>{_esc(self.verdict)}</b><br><code>{_esc(self.path)}</code>"
        )
        if self.is_model:
            head += f"<br>format <b>({_esc(self.layout)})</b> {_esc(self.title)} · era {_esc(self.era)}"
        parts = [head + "</div>"]
        if self.files:
            unused_style = " style='background:#fff3e0'"
            rows = "".join(
                f"<tr{'' if f.used else unused_style}><td><code>{_esc(f.name)}</code></td>"
                f"<td style='text-align:right'>{human_size(f.size)}</td><td>{_esc(f.role)}</td>"
                f"<td>{'' if f.used else '<b>unused</b>'}</td></tr>"
                for f in self.files
            )
            table = f"<table><tr><th>file</th><th>size</th><th>role</th><th></th></tr>{rows}</table>"
            if len(self.files) > 30:  # a fluid folder has hundreds; unused ones are in the notes too
                table = (
                    f"<details><summary>{len(self.files)} files, "
                    f"{human_size(sum(f.size for f in self.files))}</summary>{table}</details>"
                )
            parts.append(table)
        facts = []
        if self.tensors is not None:
            facts.append(f"<li>tensors: {_esc(self.tensors.summary())}</li>")
        if self.program:
            facts.append(f"<li>program: {_esc(self.program)}</li>")
        for title, specs in (("input", self.inputs), ("output", self.outputs)):
            for s in specs:
                facts.append(f"<li>{title}: <code>{_esc(s)}</code></li>")
        if self.ops:
            facts.append("<li>ops: " + ", ".join(f"{_esc(k)}&nbsp;×{v}" for k, v in self.ops) + "</li>")
        if facts:
            parts.append("<ul>" + "".join(facts) + "</ul>")
        if self.modes:
            icon = {"ready": "✅", "needs": "➕", "no": "❌"}
            rows = "".join(
                f"<tr><td>{icon[m.status]}</td><td><b>{_esc(m.mode)}</b></td><td>{_esc(m.detail)}</td></tr>"
                for m in self.modes
            )
            parts.append(f"<table><tr><th></th><th>mode</th><th>how / what is missing</th></tr>{rows}</table>")
        for n in self.notes:
            parts.append(f"<div>ℹ️ {_esc(n)}</div>")
        for p in self.problems:
            parts.append(f"<div style='color:#c62828'>⚠️ {_esc(p)}</div>")
        return "<div>" + "".join(parts) + "</div>"


# ------------------------------------------------------------------ helpers
def _paddle_version(v) -> str:
    if not v:
        return "fluid 1.x (no version stamp)"
    if v >= 1000000:
        return f"Paddle {v // 1000000}.{v // 1000 % 1000}.{v % 1000}"
    return f"version {v}"


def _stats(entries, *, optimizer_count=0) -> TensorStats:
    """``entries``: iterable of (name, dtype, shape)."""
    entries = list(entries)
    params, nbytes, dtypes = 0, 0, Counter[str]()
    for _, dtype, shape in entries:
        n = int(np.prod(shape)) if shape else 1
        params += n
        try:
            item = np.dtype("uint16" if dtype == "bfloat16" else dtype).itemsize
        except TypeError:
            item = 4
        nbytes += n * item
        dtypes[str(dtype)] += 1
    return TensorStats(
        len(entries), params, nbytes, tuple(dtypes.most_common()), optimizer_count, tuple(e[0] for e in entries[:5])
    )


def _array_stats(state: dict, *, optimizer_count=0) -> TensorStats:
    return _stats(((k, str(v.dtype), tuple(v.shape)) for k, v in state.items()), optimizer_count=optimizer_count)


def _info(f: Path, role: str, used: bool = True) -> FileInfo:
    return FileInfo(f.name, f.stat().st_size, role, used)


def _stray_role(f: Path) -> str:
    return f"not part of the model: {detect.sniff(f)}"


def _guess_arch(state) -> str | None:
    """The architecture whose (legacy or clsviz) weight names and shapes these are.

    ``state``: names → arrays or shapes.
    """
    return guess_arch(state) or guess_architecture(state)


def _modes(**kw) -> tuple:
    """Rows for a path that is no model (or an incomplete one): the same answer for every mode."""
    return tuple(ModeSupport(m, *kw[m]) for m in MODES) + tuple(ModeSupport(m, *kw["predictor"]) for m in RUNTIMES)


def _engine_modes(mf, *, program=None, hint: str = "", **tasks) -> tuple:
    """Every mode's row: the engines' from :func:`clsviz.engines.capability` (the one answer
    ``load`` gives too), ``export`` / ``migrate`` from ``tasks``.  ``hint`` replaces the
    capability's hint for a mode that needs an argument (what the files suggest)."""

    def row(m: str) -> ModeSupport:
        if m not in ENGINES:
            return ModeSupport(m, *tasks[m])
        cap = capability(mf, m, program=program)
        if cap.available:
            return ModeSupport(m, "ready", cap.detail)
        why = (hint if cap.status == "needs" and hint else "") or cap.hint
        return ModeSupport(m, cap.status, f"{cap.detail}: {why}" if why else cap.detail)

    return tuple(row(m) for m in MODES + RUNTIMES)


def _checkpoint_modes(mf, arch: str | None) -> tuple:
    hint = "pass --arch (arch=)" + (
        f", e.g. {arch} — the names and shapes are clsviz/PaddleClas {arch}'s" if arch else "; see clsviz.list_models()"
    )
    need = ("needs", f"needs the network code: {hint}")
    return _engine_modes(mf, hint=hint, export=need, migrate=("needs", need[1] + "; migrate then exports it"))


# ------------------------------------------------------------------ per layout
def _program_facts(mf) -> dict:
    """Program, weights and mode support of an inference model (b, c, d, g, h, bundle)."""
    out: dict = {"notes": [], "problems": []}
    legacy = mf.legacy_program
    prog: Program | PirProgram
    if legacy:
        prog = read_program(mf.model_file)
        names = prog.persistable_names()
        declared = {n: (prog.vars[n].dtype, prog.vars[n].shape) for n in names}
        feeds, fetches = prog.feed_targets(), prog.fetch_targets()
        out["inputs"] = tuple(
            TensorSpec(
                n, prog.vars[n].shape if n in prog.vars else None, prog.vars[n].dtype if n in prog.vars else None
            )
            for n in feeds
        )
        out["outputs"] = tuple(
            TensorSpec(
                n, prog.vars[n].shape if n in prog.vars else None, prog.vars[n].dtype if n in prog.vars else None
            )
            for n in fetches
        )
        hist = prog.op_histogram()
        out["program"] = (
            f"ProgramDesc, {_paddle_version(prog.version)} (version {prog.version or 0}), "
            f"{len(prog.blocks)} block(s), {sum(hist.values())} ops"
        )
        out["training"] = is_training_program(prog)
    else:
        prog = read_pir(mf.model_file)
        names = prog.persistable_names()
        declared = {n: (d, s) for n, d, s in prog.params}
        out["inputs"] = tuple(TensorSpec(n, s, d) for n, s, d in prog.inputs)
        out["outputs"] = tuple(TensorSpec(n, s, d) for n, s, d in prog.outputs)
        hist = prog.op_histogram()
        out["program"] = f"PIR JSON, version {prog.version}, {sum(hist.values())} ops"
        out["training"] = False
    out["prog"], out["names"] = prog, names
    out["ops"] = tuple(hist.items())
    # the weights, as stored
    entries = []
    if mf.params_file is not None:
        infos = scan_combined(mf.params_file)
        if len(infos) != len(names):
            out["problems"].append(
                f"{mf.params_file.name} holds {len(infos)} tensors but the program declares "
                f"{len(names)} parameters: they are not from the same export"
            )
        for n, i in zip(names, infos):
            want = declared.get(n, (None, None))[1]
            if want is not None and not shape_fits(want, i.shape):
                out["problems"].append(
                    f"{n} is {list(i.shape)} in {mf.params_file.name} but {list(want)} in the program"
                )
            entries.append((n, i.dtype, i.shape))
    else:
        missing = []
        for n in names:
            f = mf.root / n
            if not f.is_file():
                missing.append(n)
                continue
            i = scan_combined(f)[0]
            entries.append((n, i.dtype, i.shape))
        if missing:
            out["problems"].append(
                f"{len(missing)} parameter file(s) the program needs are missing: "
                f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}"
            )
    out["tensors"] = _stats(entries)
    return out


def _program_modes(mf, facts) -> tuple:
    legacy = mf.legacy_program
    prog = facts["prog"]
    if facts["training"]:
        no = (
            "no",
            "a training program (no feed/fetch ops): rebuild the network from code (--arch) "
            "with the .pdparams beside it",
        )
        return _engine_modes(mf, program=prog, export=no, migrate=no)
    missing = rebuild_gaps(prog)
    if mf.kind == detect.BUNDLE and not legacy:
        migrate = ("no", "already a Paddle 3 bundle")
    elif not legacy:
        migrate = ("ready", "already a Paddle 3 program: copied into a bundle with inference.yml")
    elif missing:
        migrate = (
            "ready",
            "ops not covered (" + ", ".join(sorted(missing)) + "): falls back to a "
            "Paddle 2 bundle (.pdmodel + .pdiparams) the predictor reads",
        )
    else:
        migrate = ("ready", "rebuilt and saved as a Paddle 3 bundle (inference.json + .pdiparams + .yml)")
    export = (
        "no",
        "already an inference model (export turns a checkpoint into one); "
        "use migrate to convert it"
        + (", or re-export from model.pdparams with --arch" if mf.checkpoint is not None else ""),
    )
    return _engine_modes(mf, program=prog, export=export, migrate=migrate)


def _deploy_check(mf):
    """:func:`clsviz.bundle.deploy_check` of a model folder with an ``inference.yml``."""

    try:
        doc = yaml.safe_load(read_text(mf.config_file, what="inference.yml"))
        cfg = config_from_program(mf, resolve_config(mf.config_file), from_file=True)
        return deploy_check(doc, signature=signature_of(mf), softmax=cfg.softmax)
    except (ClsvizError, yaml.YAMLError) as e:
        return (f"inference.yml cannot be read: {str(e)[:200]}",)


def _image_path(mf):
    """``(Preprocess, "")`` that turns a real image into this program's input, or ``(None, why)``:
    the input signature (several inputs, a flat input of unknown size, a non-image dtype) or
    the sidecar (an op clsviz cannot reproduce) says an image cannot be fed."""
    try:
        cfg = resolve_config(mf.config_file)
        cfg = config_from_program(mf, cfg, from_file=mf.config_file is not None)
        return cfg.preprocess, ""
    except ClsvizError as e:
        return None, f"a real image cannot be fed: {e}"


def _inspect_program(p: Path, mf, folder_files) -> InspectReport:
    try:
        facts = _program_facts(mf)
    except ClsvizError as e:  # a program no reader can decode: a report that says so, not a crash
        what = e.message
        return _not_a_model(
            p,
            f"{mf.model_file.name} cannot be read ({what})",
            tuple(_info(f, "program" if f == mf.model_file else "", used=False) for f in folder_files),
            hint="the file is damaged; export or download the model again",
        )
    used: dict[str, str] = {
        mf.model_file.name: "program (" + ("ProgramDesc" if mf.legacy_program else "PIR JSON") + ")"
    }
    if mf.params_file is not None:
        used[mf.params_file.name] = f"weights: {len(facts['names'])} tensors back to back, names from the program"
    else:
        for n in facts["names"]:
            used[n] = "weight tensor (loose file)"
    info = mf.model_file.with_suffix(".pdiparams.info")
    if mf.params_file is not None:
        info = Path(str(mf.params_file) + ".info")
    if info.is_file():
        used[info.name] = "parameter names of the weights file (pickle)"
    if mf.config_file is not None:
        used[mf.config_file.name] = "sidecar: preprocessing, labels, model name"
    if mf.checkpoint is not None:
        used[mf.checkpoint.name] = "checkpoint (state dict) for the dygraph mode"
    if mf.config_file is not None and (mf.config_file.parent / "inference.onnx").is_file():
        used["inference.onnx"] = "ONNX form of the program (paddle2onnx) for the openvino/onnxruntime modes"
    files = []
    for f in folder_files:
        if f.name in used:
            files.append(_info(f, used[f.name]))
        else:
            role = "stray tensor file: the program does not reference it" if is_tensor_file(f) else _stray_role(f)
            files.append(_info(f, role, used=False))
    if mf.kind == detect.BUNDLE:
        layout, title, era = (
            "bundle",
            "clsviz / PaddleClas inference bundle (program + weights + inference.yml)",
            _LAYOUT[detect.PADDLE3_INFERENCE if not mf.legacy_program else detect.PADDLE2_INFERENCE][2],
        )
    else:
        key = detect.fluid_layout(mf) if mf.kind == detect.FLUID_INFERENCE else mf.kind
        layout, title, era = _LAYOUT[key]
    notes = list(facts["notes"])
    if mf.legacy_program and facts["prog"].version is not None and facts["prog"].version >= 1000000:
        era += f"; written by {_paddle_version(facts['prog'].version)}"

    softmax = not facts["training"] and ends_with_softmax(facts["prog"])
    if softmax:
        notes.append("the program ends with a softmax: it outputs probabilities")
    if mf.config_file is not None:
        try:
            cfg = BundleConfig.read(mf.config_file)
            notes.append(
                f"inference.yml: model {cfg.model_name}, {cfg.class_num} classes, input "
                f"{list(cfg.image_shape)}, {'labels' if cfg.labels else 'no labels'}"
            )
        except ClsvizError as e:
            facts["problems"].append(f"inference.yml cannot be read: {e}")
    unused = [f.name for f in files if not f.used]
    if unused:
        notes.append(f"{len(unused)} file(s) not used by the model: {', '.join(unused[:6])}")
    modes = _program_modes(mf, facts)
    deploy = _deploy_check(mf) if mf.config_file is not None and not facts["training"] else None
    preprocess = ""
    if not facts["training"]:
        pre, why = _image_path(mf)
        if pre is not None:
            preprocess = repr(pre)
        else:  # a real image cannot be fed: no mode that predicts is ready, whatever the engine
            modes = tuple(
                ModeSupport(m.mode, "no", why)
                if m.mode in ("predictor", "executor", "dygraph") and m.status == "ready"
                else m
                for m in modes
            )
            facts["problems"].append(why)
    problems = tuple(facts["problems"])
    n_ops = sum(c for _, c in facts["ops"])
    verdict = f"({layout}) {title}" if layout != "bundle" else f"(bundle) {title}"
    verdict += f" · {n_ops} ops · {facts['tensors'].count} tensors"
    if problems:
        verdict += " · PROBLEMS"
    return InspectReport(
        str(p),
        mf.kind,
        layout,
        title,
        era,
        True,
        verdict,
        tuple(files),
        facts["tensors"],
        facts["inputs"],
        facts["outputs"],
        facts["ops"],
        facts["program"],
        modes,
        tuple(notes),
        problems,
        preprocess,
        deploy,
        program_format="ProgramDesc" if mf.legacy_program else "PIR JSON",
        program_role="inference",
        softmax=softmax,
    )


def _inspect_pdparams(p: Path, mf, folder_files, trust: bool) -> InspectReport:
    notes, problems = [], []
    tensors, arch = None, None
    try:
        state = load_state_dict(mf.checkpoint, trust=trust)
        weights = {k: v for k, v in state.items() if not is_optimizer_state(k)}
        tensors = _array_stats(weights, optimizer_count=len(state) - len(weights))
        arch = _guess_arch(weights)
        n = infer_class_num(weights)
        if n:
            notes.append(f"the last 2-D weight suggests {n} classes")
    except ClsvizError as e:
        problems.append(f"cannot read the tensors: {e}")
    used = {mf.checkpoint.name: "parameters (state dict pickle)"}
    prog_facts = None
    if mf.kind == detect.STATIC_SAVE:
        pdmodel, pdopt = mf.checkpoint.with_suffix(".pdmodel"), mf.checkpoint.with_suffix(".pdopt")
        used[pdmodel.name] = "training program (forward + backward + optimizer ops, no feed/fetch)"
        if pdopt.is_file():
            used[pdopt.name] = "optimizer state (velocities, learning rate): not needed for inference"
        try:
            prog_facts = read_program(pdmodel)
        except ClsvizError as e:
            problems.append(f"cannot read the training program: {e}")
    if mf.config_file is not None:
        used[mf.config_file.name] = "sidecar: preprocessing, labels, model name"
    files = [_info(f, used[f.name]) if f.name in used else _info(f, _stray_role(f), used=False) for f in folder_files]
    layout, title, era = _LAYOUT[mf.kind]
    hist: tuple[tuple[str, int], ...] = ()
    program = ""
    inputs: tuple[TensorSpec, ...] = ()
    if prog_facts is not None:
        h = prog_facts.op_histogram()
        hist = tuple(h.items())
        program = (
            f"training ProgramDesc, {_paddle_version(prog_facts.version)}, {sum(h.values())} ops "
            f"({sum(v for k, v in h.items() if k.endswith('_grad'))} backward)"
        )
        inputs = tuple(TensorSpec(v.name, v.shape, v.dtype) for v in prog_facts.blocks[0].vars if v.need_check_feed)
    if arch:
        notes.append(f"the parameter names are those of {arch}")
    verdict = f"({layout}) {title}" + (f" · {tensors.count} tensors" if tensors else "")
    return InspectReport(
        str(p),
        mf.kind,
        layout,
        title,
        era,
        True,
        verdict,
        tuple(files),
        tensors,
        inputs,
        (),
        hist,
        program,
        _checkpoint_modes(mf, arch),
        tuple(notes),
        tuple(problems),
        program_format="ProgramDesc" if program else "",
        program_role="training" if program else "",
    )


def _inspect_persistables(p: Path, tensor_files, other_files) -> InspectReport:
    weights: list[tuple] = []
    optim: list[tuple] = []
    for f in tensor_files:
        i = scan_combined(f)[0]
        (optim if is_optimizer_state(f.name) else weights).append((f.name, i.dtype, i.shape))
    tensors = _stats(weights, optimizer_count=len(optim))
    arch = _guess_arch({n: shape for n, _, shape in weights})
    files = [
        _info(
            f,
            "optimizer state tensor: not needed for inference"
            if is_optimizer_state(f.name)
            else "weight tensor (loose file)",
        )
        for f in tensor_files
    ]
    files += [_info(f, _stray_role(f), used=False) for f in other_files]
    files.sort(key=lambda fi: fi.name)
    layout, title, era = _LAYOUT[detect.FLUID_PERSISTABLES]
    notes, problems = [], []
    if optim:
        notes.append(
            f"a training checkpoint: {len(optim)} optimizer-state tensors "
            "(velocities, learning rate) are skipped when loading"
        )
    if arch:
        notes.append(f"the names are PaddleClas 1.x {arch}'s (clsviz maps them to its own)")
    modes = _checkpoint_modes(detect.ModelFiles(detect.FLUID_PERSISTABLES, p, checkpoint=p), arch)
    if other_files:
        problems.append(
            f"{len(other_files)} file(s) here are not tensor files "
            f"({', '.join(f.name for f in other_files[:4])}): clsviz.load reads this "
            "folder only once they are moved out"
        )
    verdict = f"({layout}) {title} · {tensors.count} weights"
    return InspectReport(
        str(p),
        detect.FLUID_PERSISTABLES,
        layout,
        title,
        era,
        True,
        verdict,
        tuple(files),
        tensors,
        (),
        (),
        (),
        "",
        modes,
        tuple(notes),
        tuple(problems),
    )


def _missing_weights(p: Path, files, error: FormatError) -> InspectReport:
    """An inference model whose weights file is missing: say which file, not "not a model"."""
    model = Path(error.path) if error.path else None
    want = model.with_suffix(".pdiparams").name if model is not None else ".pdiparams"
    what = f"{want} is missing: the weights of {model.name if model else 'the program'}"
    no = ("no", what)
    infos = tuple(
        _info(
            f,
            "program"
            if model is not None and f.name == model.name
            else ("sidecar: preprocessing, labels, model name" if f.name == "inference.yml" else ""),
            used=model is not None and f.name in (model.name, "inference.yml"),
        )
        for f in files
    )
    return InspectReport(
        str(p),
        "missing_weights",
        "",
        "an inference model without its weights",
        "",
        False,
        f"incomplete model: {what}",
        infos,
        None,
        (),
        (),
        (),
        "",
        _modes(**dict.fromkeys(MODES, no)),
        (),
        (f"{what}; copy it beside {model.name if model else 'the program'}, or pass params= / -p",),
    )


def _not_a_model(p: Path, what: str, files=(), notes=(), hint: str = "") -> InspectReport:
    verdict = f"not a Paddle model: {what}"
    no = ("no", "not a Paddle model" + (f" — {hint}" if hint else ""))
    modes = _modes(**dict.fromkeys(MODES, no))
    return InspectReport(
        str(p),
        "not_a_model",
        "",
        what,
        "",
        False,
        verdict,
        tuple(files),
        None,
        (),
        (),
        (),
        "",
        modes,
        tuple(notes) + ((hint,) if hint else ()),
        (),
    )


_FOREIGN = {
    "torch": "convert it first (e.g. with X2Paddle), then inspect the .pdparams it writes",
    "onnx": "convert it with X2Paddle, or run it with onnxruntime",
}


def _inspect_file(p: Path, params, trust: bool) -> InspectReport:
    found = detect.what_is(p)
    if found.kind in ("torch", "onnx"):
        return _not_a_model(p, found.text, (_info(p, found.text, used=False),), hint=_FOREIGN[found.kind])
    if found.kind == "empty":
        return _not_a_model(
            p,
            "an empty file (0 bytes)",
            (_info(p, "empty", used=False),),
            hint="the file was cut short or never written; fetch it again",
        )
    if found.kind in ("special", "unreadable"):  # a FIFO or device would block or never end
        return _not_a_model(
            p,
            found.text,
            hint="clsviz reads only regular files it may open"
            if found.kind == "special"
            else "check the file's permissions",
        )
    part = detect.part_of(p, found)
    if part == detect.PARAMS_INFO:
        return _not_a_model(
            p,
            "the parameter-name table of a .pdiparams file (.pdiparams.info)",
            (_info(p, "parameter names (pickle)", used=False),),
            hint=f"inspect {p.name[: -len('.pdiparams.info')]}.pdmodel beside it",
        )
    if part == detect.OPTIMIZER_STATE:
        pdparams = p.with_suffix(".pdparams")
        return _not_a_model(
            p,
            "optimizer state of a paddle.static.save checkpoint (.pdopt)",
            (_info(p, "optimizer state", used=False),),
            hint=f"inspect {pdparams.name} beside it (the parameters)",
        )
    if part == detect.LOOSE_TENSOR:
        return _not_a_model(
            p,
            "one Paddle tensor (a loose persistable file)",
            (_info(p, found.text, used=False),),
            hint="it is one variable of a fluid model folder: inspect the folder",
        )
    if part == detect.FLUID_MEMBER:
        return inspect(p.parent, params=params, trust=trust)
    if part == detect.STATIC_PROGRAM:  # the training program of a static save (e)
        return inspect(p.with_suffix(".pdparams"), trust=trust)
    try:
        mf = detect.resolve(p, params=params)
    except FormatError as e:
        return _not_a_model(
            p,
            found.text,
            (_info(p, found.text, used=False),),
            hint=str(e).split(" — ", 1)[-1] if " — " in str(e) else "",
        )
    if mf.checkpoint is not None and mf.model_file is None:
        siblings = [mf.checkpoint]
        if mf.kind == detect.STATIC_SAVE:
            siblings += [f for f in (p.with_suffix(".pdmodel"), p.with_suffix(".pdopt")) if f.is_file()]
        return _inspect_pdparams(p, mf, siblings, trust)
    siblings = [f for f in (mf.model_file, mf.params_file, mf.config_file) if f is not None]
    info = Path(str(mf.params_file) + ".info") if mf.params_file is not None else None
    if info is not None and info.is_file():
        siblings.append(info)
    return _inspect_program(p, mf, sorted(siblings))


def _inspect_dir(p: Path, params, trust: bool) -> InspectReport:
    found = detect.what_folder(p, params=params)  # formats decides what the folder is; this renders it
    files = list(found.files)
    if found.verdict == detect.EMPTY_FOLDER:
        return _not_a_model(p, "an empty folder", hint="point at the folder that holds the model files")
    if found.verdict == detect.ONLY_SUBFOLDERS:
        return _not_a_model(
            p,
            f"a folder with no files, only sub-folders ({', '.join(found.subfolders[:4])})",
            hint="point at the folder that holds the model files",
        )
    if found.verdict == detect.MISSING_WEIGHTS:
        assert found.error is not None
        return _missing_weights(p, files, found.error)
    if found.verdict == detect.A_MODEL:
        assert found.model is not None
        if found.model.model_file is not None:
            return _inspect_program(p, found.model, files)
        return _inspect_pdparams(p, found.model, files, trust)
    if found.verdict == detect.PERSISTABLES:
        return _inspect_persistables(p, list(found.tensors), list(found.others))
    # not a model: say what is here instead
    infos = tuple(_info(f, k.text, used=False) for f, k in found.kinds)
    if found.verdict == detect.MANY_CHECKPOINTS:
        ckpts = found.checkpoints
        return _not_a_model(
            p,
            f"a mixed folder: {len(ckpts)} checkpoints ({', '.join(ckpts[:4])}) and no single model",
            infos,
            hint="point at one of the .pdparams files",
        )
    if found.verdict == detect.MIXED:
        listing = "; ".join(f"{f.name}: {k.text}" for f, k in found.kinds[:4])
        return _not_a_model(
            p,
            f"a mixed folder of {len(files)} files that make no Paddle model "
            f"({listing}{' …' if len(files) > 4 else ''})",
            infos,
            hint="expected inference.json/.pdmodel + .pdiparams, __model__ (+ params), "
            "a .pdparams checkpoint, or a folder of fluid tensor files",
        )
    ((f, k),) = found.kinds
    return _not_a_model(p, f"a folder holding only {f.name}: {k.text}", infos, hint=_FOREIGN.get(k.kind, ""))


# ------------------------------------------------------------------ public: inspect
def inspect(path: PathLike, *, params: PathLike | None = None, trust: bool = False) -> InspectReport:
    """Identify the Paddle model format at ``path`` (file or folder) and describe what is in it.

    Returns an :class:`InspectReport`; something that is not a Paddle model gets
    a report with ``is_model=False`` saying what it is.  ``params`` names a
    combined params file, as for :func:`clsviz.load`.  ``trust=True`` reads a
    ``.pdparams`` with plain pickle.  Raises :class:`FormatError` only when
    ``path`` does not exist.
    """
    p = Path(path)
    try:
        if not p.exists():
            raise FormatError("path not found", path=p, hint="check the path")
        return _inspect_dir(p, params, trust) if p.is_dir() else _inspect_file(p, params, trust)
    except OSError as e:  # an unreadable folder or file: say so in the report
        return _not_a_model(
            p,
            f"unreadable ({e.strerror or e})",
            hint=f"check the permissions of {e.filename or p} (and of the folders above it)",
        )


# ------------------------------------------------------------------ public: compare
@dataclass(frozen=True)
class TensorMatch:
    """One row of a comparison: a tensor in ``a``, in ``b``, or in both."""

    status: str  # "equal", "different", "only in a", "only in b"
    name_a: str | None
    name_b: str | None
    shape: tuple
    dtype: str
    matched_by: str = ""  # "name", "value", "shape" (in order), ""
    max_abs_diff: float | None = None

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "a": self.name_a,
            "b": self.name_b,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "matched_by": self.matched_by,
            "max_abs_diff": self.max_abs_diff,
        }


@dataclass(frozen=True)
class InspectComparison:
    """Two models side by side: their reports, the tensors matched, what ``b`` adds or changes."""

    a: InspectReport
    b: InspectReport
    matches: tuple = ()  # TensorMatch
    adds: tuple = ()  # what b has that a lacks (program, feed/fetch, sidecar)
    changes: tuple = ()  # what differs (folded BN, softmax head, class count, …)

    def count(self, status: str) -> int:
        return sum(1 for m in self.matches if m.status == status)

    @property
    def same_weights(self) -> bool:
        """Every tensor of each side has an equal partner in the other."""
        return bool(self.matches) and all(m.status == "equal" for m in self.matches)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("equal", "different", "only in a", "only in b") if self.count(s)]
        return "tensors: " + (", ".join(parts) if parts else "none to compare")

    def to_dict(self) -> dict:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "summary": self.summary(),
            "same_weights": self.same_weights,
            "counts": {s: self.count(s) for s in ("equal", "different", "only in a", "only in b")},
            "matches": [m.to_dict() for m in self.matches],
            "adds": list(self.adds),
            "changes": list(self.changes),
        }

    def to_text(self, limit: int = 12) -> str:
        lines = [
            f"a: {self.a.path}",
            f"   {self.a.verdict}",
            f"b: {self.b.path}",
            f"   {self.b.verdict}",
            self.summary(),
        ]
        for title, items in (("b adds", self.adds), ("changed", self.changes)):
            for x in items:
                lines.append(f"  {title:<8} {x}")
        shown = [m for m in self.matches if m.status != "equal"][:limit]
        for m in shown:
            diff = f" max|Δ| {m.max_abs_diff:.3g}" if m.max_abs_diff is not None else ""
            lines.append(
                f"  {m.status:<10} {m.name_a or '-'} ↔ {m.name_b or '-'} {list(m.shape)}"
                f"{(' by ' + m.matched_by) if m.matched_by else ''}{diff}"
            )
        rest = sum(1 for m in self.matches if m.status != "equal") - len(shown)
        if rest > 0:
            lines.append(f"  … and {rest} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        def col(r: InspectReport):
            return (
                f"<td style='vertical-align:top'><b>{_esc(r.verdict)}</b><br><code>{_esc(r.path)}</code>"
                f"<br>{_esc(r.tensors.summary()) if r.tensors else ''}"
                f"<br>{_esc(r.program)}</td>"
            )

        color = {"equal": "#2e7d32", "different": "#c62828", "only in a": "#ef6c00", "only in b": "#ef6c00"}
        rows = "".join(
            f"<tr><td style='color:{color[m.status]}'>{_esc(m.status)}</td><td><code>{_esc(m.name_a or '')}"
            f"</code></td><td><code>{_esc(m.name_b or '')}</code></td><td>{_esc(list(m.shape))}</td>"
            f"<td>{_esc(m.matched_by)}</td><td>{'' if m.max_abs_diff is None else f'{m.max_abs_diff:.2e}'}"
            f"</td></tr>"
            for m in self.matches[:200]
        )
        more = f"<div>… {len(self.matches) - 200} more rows</div>" if len(self.matches) > 200 else ""
        lists = "".join(
            f"<li><b>{t}</b>: {_esc(x)}</li>"
            for t, items in (("b adds", self.adds), ("changed", self.changes))
            for x in items
        )
        return (
            f"<div><table><tr><th>a</th><th>b</th></tr><tr>{col(self.a)}{col(self.b)}</tr></table>"
            f"<b>{_esc(self.summary())}</b><ul>{lists}</ul>"
            f"<details><summary>tensors</summary><table><tr><th>status</th><th>a</th><th>b</th>"
            f"<th>shape</th><th>matched by</th><th>max|Δ|</th></tr>{rows}</table>{more}</details></div>"
        )


def load_tensors(path, *, params=None, trust: bool = False) -> dict:
    """``{name: ndarray}`` of the weights a model stores (optimizer state left out).

    For an inference model these are the program's parameters, named as in the
    program; for a bundle, those of its program (not of its ``model.pdparams``).
    """
    mf = detect.resolve(path, params=params)
    if mf.model_file is None:
        assert mf.checkpoint is not None  # resolve gives a program or a checkpoint
        state = load_state_dict(mf.checkpoint, trust=trust)
        return {k: v for k, v in state.items() if not is_optimizer_state(k)}
    if mf.legacy_program:
        return read_program_weights(read_program(mf.model_file), model_file=mf.model_file, params_file=mf.params_file)

    return read_combined(mf.params_file, read_pir(mf.model_file).persistable_names())


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha1(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def _diff(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.shape != y.shape:
        return None
    try:
        return float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
    except (TypeError, ValueError):
        return None


def match_tensors(ta: dict, tb: dict) -> tuple:
    """Pair the tensors of two models: by name, then by value, then by shape in order (where unambiguous)."""
    rows, left_a, left_b = [], dict(ta), dict(tb)
    for name in [n for n in ta if n in tb]:
        x, y = left_a.pop(name), left_b.pop(name)
        d = _diff(x, y)
        same = x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)
        rows.append(TensorMatch("equal" if same else "different", name, name, tuple(x.shape), str(x.dtype), "name", d))
    by_hash: dict[str, list] = {}
    for n, y in left_b.items():
        by_hash.setdefault(_digest(y), []).append(n)
    for n in list(left_a):
        bucket = by_hash.get(_digest(left_a[n]))
        if bucket:
            m = bucket.pop(0)
            x = left_a.pop(n)
            left_b.pop(m)
            rows.append(TensorMatch("equal", n, m, tuple(x.shape), str(x.dtype), "value", 0.0))

    # Same shape, different values: pair in order, but only where both sides hold the same
    # number of tensors of that shape (otherwise the pairing would be a guess).
    def by_shape(left):
        groups: dict[tuple, list] = {}
        for n, v in left.items():
            groups.setdefault((v.shape, str(v.dtype)), []).append(n)
        return groups

    ga, gb = by_shape(left_a), by_shape(left_b)
    for key, names_a in ga.items():
        names_b = gb.get(key, [])
        if len(names_a) != len(names_b):
            continue
        for n, m in zip(names_a, names_b):
            x, y = left_a.pop(n), left_b.pop(m)
            rows.append(TensorMatch("different", n, m, tuple(x.shape), str(x.dtype), "shape", _diff(x, y)))
    rows += [TensorMatch("only in a", n, None, tuple(x.shape), str(x.dtype)) for n, x in left_a.items()]
    rows += [TensorMatch("only in b", None, n, tuple(y.shape), str(y.dtype)) for n, y in left_b.items()]
    return tuple(rows)


def _has_program(r: InspectReport) -> bool:
    return r.program_role == "inference"


def compare(a: PathLike, b: PathLike, *, trust: bool = False) -> InspectComparison:
    """Two models side by side, e.g. a checkpoint and its export.

    Tensors are matched by name, then by value (a hash), then by shape in
    order; each pair is equal or different, the rest is only in one side.
    ``adds`` says what ``b`` has that ``a`` lacks (a program, its inputs and
    outputs, a sidecar); ``changes`` what differs (folded BatchNorm, a softmax
    head, the class count, …).
    """
    ra, rb = inspect(a, trust=trust), inspect(b, trust=trust)
    for r in (ra, rb):
        if not r.is_model:
            raise FormatError(f"cannot compare: {r.verdict}", path=r.path)
    ta = load_tensors(a, trust=trust)
    tb = load_tensors(b, trust=trust)
    matches = match_tensors(ta, tb)
    adds, changes = [], []
    for x, y, side in ((ra, rb, "b"), (rb, ra, "a")):
        if _has_program(y) and not _has_program(x):
            what = [f"a program ({y.program})"]
            what += [f"input {s}" for s in y.inputs] + [f"output {s}" for s in y.outputs]
            text = "; ".join(what)
            if side == "b":
                adds.append(text)
            else:
                changes.append(f"a has a program that b lacks: {text}")
        xfiles, yfiles = {f.name for f in x.files}, {f.name for f in y.files}
        if side == "b" and "inference.yml" in yfiles and "inference.yml" not in xfiles:
            adds.append("a sidecar (inference.yml): preprocessing, labels, model name")
    ops_a, ops_b = dict(ra.ops), dict(rb.ops)

    def bn_like(names):
        return sum(1 for n in names if n.endswith(("_mean", "_variance", ".w_1", ".w_2", "._mean", "._variance")))

    bn_a, bn_b = bn_like(ta), bn_like(tb)
    has_bn_a = ops_a.get("batch_norm", 0) + ops_a.get("batch_norm_", 0) > 0 or bn_a > 0
    has_bn_b = ops_b.get("batch_norm", 0) + ops_b.get("batch_norm_", 0) > 0 if _has_program(rb) else bn_b > 0
    if has_bn_a and not has_bn_b and _has_program(rb):
        changes.append(
            "BatchNorm folded into the convolutions: b's program has no batch_norm ops "
            f"and {len(ta) - len(tb)} fewer tensors"
        )
    elif has_bn_b and not has_bn_a and _has_program(ra):
        changes.append("BatchNorm folded in a: a's program has no batch_norm ops")
    soft_a, soft_b = ra.softmax, rb.softmax
    if soft_b and not soft_a:
        changes.append("b ends with a softmax head: it outputs probabilities, a outputs logits")
    elif soft_a and not soft_b:
        changes.append("a ends with a softmax head: it outputs probabilities, b outputs logits")
    ca, cb = _class_num(ra, ta), _class_num(rb, tb)
    if ca and cb and ca != cb:
        changes.append(f"class count differs: {ca} in a, {cb} in b")
    if _has_program(ra) and _has_program(rb):
        ia = [s.shape for s in ra.inputs]
        ib = [s.shape for s in rb.inputs]
        if ia != ib:
            changes.append(f"inputs differ: {[str(s) for s in ra.inputs]} vs {[str(s) for s in rb.inputs]}")
        if ra.program_format != rb.program_format:
            changes.append(f"program format: {ra.program_format} → {rb.program_format}")
    dtypes_a = {m.dtype for m in matches if m.name_a}
    dtypes_b = {m.dtype for m in matches if m.name_b}
    if dtypes_a != dtypes_b:
        changes.append(f"dtypes: {sorted(dtypes_a)} in a, {sorted(dtypes_b)} in b")
    if rb.kind == detect.BUNDLE and "model.pdparams" in {f.name for f in rb.files}:
        adds.append("a copy of the checkpoint (model.pdparams) for the dygraph mode")
    return InspectComparison(ra, rb, matches, tuple(adds), tuple(changes))


def _class_num(r: InspectReport, tensors: dict) -> int | None:
    if r.outputs and r.outputs[0].shape and len(r.outputs[0].shape) == 2 and r.outputs[0].shape[-1] > 0:
        return int(r.outputs[0].shape[-1])

    return infer_class_num(tensors) if tensors else None


# ------------------------------------------------------------------ callable module
class _CallableModule(types.ModuleType):
    """``clsviz.inspect`` is this module, and calling it calls :func:`inspect`."""

    def __call__(self, path, **kwargs) -> InspectReport:
        return inspect(path, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
