"""What is this file?  The one home for telling model files apart.

``resolve(path)`` accepts a bundle folder, an inference model file (``.json`` /
``.pdmodel`` / ``__model__`` / ``model``), or a checkpoint (``.pdparams`` or a
fluid persistables folder) and returns a :class:`ModelFiles`; :func:`fluid_layout` names
which fluid inference layout (b, c, d) one is, :func:`part_of` what a lone file is to the
model it belongs to.  :func:`what_is` / :func:`sniff` name what any
file holds from its first bytes (a pickle, a PyTorch or ONNX file, Paddle tensors, a program,
…); ``safe_pickle`` and ``inspect`` ask them.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import ClsvizError, FormatError
from ..safe_io import check_regular, open_regular, special_kind, translate_os_errors
from .programdesc import read_program
from .protowire import read_varint as _varint
from .tensorfile import is_tensor_file, read_tensor_file, scan_combined

# kinds
BUNDLE = "bundle"  # clsviz/PaddleClas export folder (has inference.yml)
PADDLE3_INFERENCE = "paddle3_inference"  # *.json + *.pdiparams
PADDLE2_INFERENCE = "paddle2_inference"  # *.pdmodel + *.pdiparams
FLUID_INFERENCE = "fluid_inference"  # __model__ / model (+ params / loose files)
DYGRAPH_CHECKPOINT = "dygraph_checkpoint"  # *.pdparams state dict
STATIC_SAVE = "static_save"  # *.pdparams + *.pdmodel (+ *.pdopt)
FLUID_PERSISTABLES = "fluid_persistables"  # folder of loose tensor files

_MODEL_NAMES = {
    "inference.json",
    "inference.pdmodel",
    "inference.pdiparams",
    "inference.yml",
    "model.pdparams",
    "__model__",
    "__params__",
    "model",
    "params",
}
#: what a model's files are called: the suffixes and the fixed (fluid) names
MODEL_SUFFIXES = (".json", ".pdmodel", ".pdiparams", ".pdparams", ".yml")
MODEL_NAMES = ("__model__", "model", "params", "__params__")
#: the files of an inference model (program or combined parameters), as opposed to a checkpoint
INFERENCE_SUFFIXES = (".json", ".pdmodel", ".pdiparams")
INFERENCE_KINDS = (PADDLE3_INFERENCE, PADDLE2_INFERENCE, FLUID_INFERENCE)
CHECKPOINT_KINDS = (DYGRAPH_CHECKPOINT, STATIC_SAVE, FLUID_PERSISTABLES)


@dataclass(frozen=True)
class ModelFiles:
    kind: str
    root: Path
    model_file: Path | None = None
    params_file: Path | None = None  # combined params; None with loose files in root
    checkpoint: Path | None = None  # .pdparams or persistables folder
    config_file: Path | None = None  # inference.yml

    @property
    def has_program(self) -> bool:
        return self.model_file is not None

    @property
    def legacy_program(self) -> bool:
        return self.model_file is not None and self.model_file.suffix != ".json"


def _inference_pair(model: Path, params: Path | None) -> ModelFiles:
    root = model.parent
    if model.suffix == ".json":
        kind = PADDLE3_INFERENCE
    elif model.suffix == ".pdmodel":
        kind = PADDLE2_INFERENCE
    else:
        kind = FLUID_INFERENCE
    if params is None:
        for cand in (
            model.with_suffix(".pdiparams"),
            root / "__params__",
            root / "params",
            root / (model.name + ".pdiparams"),
        ):
            if cand.is_file() and cand != model:
                params = cand
                break
    if params is None and os.path.lexists(model.with_suffix(".pdiparams")):
        check_regular(model.with_suffix(".pdiparams"), what="parameters file")  # a FIFO, a device…
    if params is None and kind != FLUID_INFERENCE:
        raise FormatError(
            f"no parameters file next to {model.name}: {model.with_suffix('.pdiparams').name} (the weights) is missing",
            path=model,
            hint=f"copy {model.with_suffix('.pdiparams').name} beside it, or pass -p PARAMS_FILE",
        )
    if params is not None and not params.is_file():
        if params.exists():
            check_regular(params, what="parameters file")
        raise FormatError("parameters file not found", path=params)
    cfg = root / "inference.yml"
    return ModelFiles(kind, root, model, params, None, cfg if cfg.is_file() else None)


def resolve(path, *, params=None) -> ModelFiles:
    """What is at ``path``, as far as the engines are concerned."""
    p = Path(path)
    with translate_os_errors(FormatError):
        if not p.exists():
            raise FormatError("model path not found", path=p, hint="check the path")
        kind = special_kind(p.stat().st_mode)
        if kind not in (None, "a folder"):
            raise FormatError(
                f"model path is {kind}, not a file or folder",
                path=p,
                hint="clsviz reads only regular files: a FIFO, device or socket could block or never end",
            )
        return _resolve(p, None if params is None else Path(params))


def _resolve(p: Path, params: Path | None) -> ModelFiles:
    if p.is_file():
        if p.suffix in (".json", ".pdmodel") or p.name in ("__model__", "model"):
            return _inference_pair(p, params)
        if p.suffix == ".pdparams":
            kind = checkpoint_kind(p)
            cfg = p.parent / "inference.yml"
            return ModelFiles(kind, p.parent, None, None, p, cfg if cfg.is_file() else None)
        if p.suffix == ".pdiparams":
            for m in (p.with_suffix(".json"), p.with_suffix(".pdmodel")):
                if m.is_file():
                    return _inference_pair(m, p)
            raise FormatError(
                "a .pdiparams file holds only weights",
                path=p,
                hint="pass the matching .json/.pdmodel file (or the folder)",
            )
        raise FormatError(
            f"unrecognised model file {p.name!r}",
            path=p,
            hint="expected .json/.pdmodel/.pdparams, __model__ or model, or a bundle folder",
        )
    # a folder
    entries = list(p.iterdir())
    odd = sorted(
        f.name for f in entries if f.name in _MODEL_NAMES and f.exists() and not f.is_file() and not f.is_dir()
    )
    if odd:  # a FIFO or device where a model file belongs: never handed to a reader
        check_regular(p / odd[0], what="model file" if "param" not in odd[0] else "parameters file")
    files = {f.name: f for f in entries if f.is_file()}
    if not files:
        raise FormatError("folder is empty", path=p, hint="point at a bundle or model folder")
    config_file = files.get("inference.yml")
    for stem in ("inference", "model"):
        for suffix in (".json", ".pdmodel"):
            if stem + suffix in files:
                mf = _inference_pair(files[stem + suffix], params)
                ckpt = files.get("model.pdparams")
                kind = BUNDLE if config_file is not None else mf.kind
                return ModelFiles(kind, p, mf.model_file, mf.params_file, ckpt, config_file)
    jsons = [f for n, f in files.items() if n.endswith(".json") and f.with_suffix(".pdiparams").is_file()]
    pdmodels = [f for n, f in files.items() if n.endswith(".pdmodel") and f.with_suffix(".pdiparams").is_file()]
    if len(jsons) + len(pdmodels) == 1:
        return _inference_pair((jsons + pdmodels)[0], params)
    if "__model__" in files:
        return _inference_pair(files["__model__"], params)
    if "model" in files and "params" in files:
        return _inference_pair(files["model"], params)
    ckpts = [f for n, f in files.items() if n.endswith(".pdparams")]
    if len(ckpts) == 1:
        return _resolve(ckpts[0], None)

    if looks_like_persistables(p):
        return ModelFiles(FLUID_PERSISTABLES, p, None, None, p, config_file)
    odd = sorted(f.name for f in p.iterdir() if f.exists() and not f.is_file() and not f.is_dir())
    if odd:
        raise FormatError(
            f"folder holds no Paddle model I recognise; {', '.join(odd[:3])} "
            f"{'is' if len(odd) == 1 else 'are'} not regular files",
            path=p,
            hint="clsviz reads only regular files: a FIFO, device or socket could block or never end",
        )
    raise FormatError(
        f"folder holds no Paddle model I recognise ({len(files)} files: "
        f"{', '.join(sorted(files)[:5])}{'…' if len(files) > 5 else ''})",
        path=p,
        hint="expected inference.json/.pdmodel + .pdiparams, __model__, model + params, "
        "a .pdparams checkpoint or a folder of fluid tensor files",
    )


def looks_like_persistables(folder) -> bool:
    """A folder of loose LoDTensor files (fluid 1.x ``save_persistables``)."""
    files = [f for f in Path(folder).iterdir() if f.is_file()]
    return bool(files) and all(is_tensor_file(f) for f in files)


def load_checkpoint_folder(folder) -> dict:
    """Read a fluid 1.x persistables folder into ``{name: ndarray}`` (fluid names)."""

    folder = Path(folder)
    programs = sorted(
        f.name
        for f in folder.iterdir()
        if f.is_file() and (f.name in ("__model__", "model") or f.suffix in (".pdmodel", ".json"))
    )
    if programs:
        raise FormatError(
            f"this folder holds an inference model ({', '.join(programs)}), not a checkpoint",
            path=folder,
            hint="run it as it is (mode='predictor', 'executor' or 'dygraph'), or turn it "
            "into a Paddle 3 bundle with clsviz.migrate(src, dst)",
        )
    return {f.name: read_tensor_file(f) for f in sorted(folder.iterdir()) if f.is_file()}


def checkpoint_kind(path) -> str:
    """The kind of a checkpoint: a folder of tensor files (fluid persistables), a
    ``paddle.static.save`` ``.pdparams`` (a ``.pdmodel`` beside it), or a dygraph state dict."""
    p = Path(path)
    if p.is_dir():
        return FLUID_PERSISTABLES
    return STATIC_SAVE if p.with_suffix(".pdmodel").is_file() else DYGRAPH_CHECKPOINT


def source_kind(path) -> str:
    """What a checkpoint source given to export is: one of :data:`CHECKPOINT_KINDS` (a
    ``.pdparams``, a static save, a persistables folder) or, when it is a file of an inference
    model (a program or its combined parameters), one of :data:`INFERENCE_KINDS`."""
    p = Path(path)
    if p.is_file() and (p.suffix in INFERENCE_SUFFIXES or p.name in MODEL_NAMES):
        if p.suffix == ".json" or (p.suffix == ".pdiparams" and p.with_suffix(".json").is_file()):
            return PADDLE3_INFERENCE
        return PADDLE2_INFERENCE if p.suffix in INFERENCE_SUFFIXES else FLUID_INFERENCE
    return checkpoint_kind(p)


def looks_like_model_folder(folder) -> bool:
    """A cheap look at the names in ``folder``: a bundle, a fluid inference model, or a program
    with its ``.pdiparams``.  (:func:`resolve` says for sure.)"""
    try:
        names = {f.name for f in Path(folder).iterdir()}
    except OSError:
        return False
    return (
        "inference.yml" in names
        or "__model__" in names
        or {"model", "params"} <= names
        or any(n.endswith((".json", ".pdmodel")) and n.rsplit(".", 1)[0] + ".pdiparams" in names for n in names)
    )


def fluid_layout(files: ModelFiles) -> str:
    """Which fluid inference layout a resolved ``fluid_inference`` model is: loose parameter files
    (b), a combined params file (c), or PaddleClas 1.x's ``model`` + ``params`` (d)."""
    if files.params_file is None:
        return "fluid_inference_loose"
    if files.model_file is not None and files.model_file.name == "model" and files.params_file.name == "params":
        return "fluid_model_params"
    return "fluid_inference_combined"


# ------------------------------------------------------------------ what is this file?
class FileKind(NamedTuple):
    """What a file holds, from its first bytes (:func:`what_is`)."""

    kind: str  # pickle, safetensors, torch, onnx, tensors, program, empty, ...
    text: str  # "a pickle (protocol 4)"
    count: int = 0  # type: ignore[assignment]  # a field named like tuple.count, by intent


_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ONNX_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}  # ModelProto fields 2..8


def _sniff_onnx(head: bytes) -> FileKind | None:
    # ModelProto starts with ir_version (field 1, varint), then producer_name, graph, ...
    if not head.startswith(b"\x08"):
        return None
    try:
        version, pos = _varint(head, 1)
    except ValueError:
        return None
    if not 1 <= version <= 64 or pos >= len(head) or head[pos] not in _ONNX_NEXT_TAGS:
        return None
    producer = ""
    if head[pos] == 0x12:
        try:
            size, start = _varint(head, pos + 1)
            producer = head[start : start + min(size, 64)].decode("utf-8", "replace")
        except ValueError:
            pass
    return FileKind("onnx", f"an ONNX model (ir_version {version}" + (f", producer {producer!r})" if producer else ")"))


def _sniff_program(head: bytes) -> FileKind | None:
    # ProgramDesc: field 1 = blocks; block 0 starts with idx 0 (08 00), parent_idx (10 ..).
    if head.startswith(b"\x0a"):
        try:
            _, pos = _varint(head, 1)
        except ValueError:
            return None
        if head[pos : pos + 3] == b"\x08\x00\x10":
            return FileKind("program", "a Paddle program (.pdmodel protobuf)")
    if head.lstrip().startswith(b"{") and b'"base_code"' in head and b'"pir"' in head:
        return FileKind("program", "a Paddle 3 program (PIR .json)")
    return None


def _sniff_safetensors(head: bytes, size: int) -> FileKind | None:
    if size < 10 or head[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= size - 8:
        return None
    return FileKind("safetensors", "a safetensors file")


def _sniff_zip(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return FileKind("zip", "a damaged zip archive")
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return FileKind("torch", "a PyTorch checkpoint (zip archive with data.pkl)")
    if names and all(n.endswith(".npy") for n in names):
        return FileKind("numpy", f"a NumPy .npz archive ({len(names)} arrays)")
    return FileKind("zip", f"a zip archive ({len(names)} members)")


def _sniff_tensors(path: Path) -> FileKind | None:
    """Paddle's binary tensor records back to back (.pdiparams, use_binary_format=True)."""
    try:
        infos = scan_combined(path)
    except (FormatError, OSError, ValueError, struct.error):
        return None
    if not infos:
        return None
    if len(infos) == 1:
        i = infos[0]
        return FileKind("tensors", f"a Paddle binary tensor file (1 tensor, {i.dtype} {list(i.shape)}, no name)", 1)
    return FileKind("tensors", f"a Paddle inference params file ({len(infos)} tensors, no names)", len(infos))


def what_is(path) -> FileKind:
    """Name what a file holds, from its first bytes: its kind (``pickle``, ``torch``, ``onnx``,
    ``tensors``, ``program``, ``safetensors``, ``zip``, ``numpy``, ``empty``, ``special``, …) and a phrase.

    Cheap: reads a header (and the record headers of Paddle tensor files), never unpickles.
    """
    path = Path(path)
    try:
        st = os.stat(path)
        kind = special_kind(st.st_mode)
        if kind == "a folder":
            return FileKind("directory", "a directory")
        if kind is not None:
            return FileKind("special", f"{kind}, not a regular file")
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4096)
    except FileNotFoundError:
        return FileKind("missing", "no such file")
    except FormatError as e:  # an OSError opening it, or swapped for a FIFO/device since the stat
        if isinstance(e.__cause__, OSError):
            return FileKind("unreadable", f"unreadable ({e.__cause__.strerror or e.__cause__})")
        return FileKind("special", e.message)
    except OSError as e:
        return FileKind("unreadable", f"unreadable ({e.strerror or e})")
    if size == 0:
        return FileKind("empty", "an empty file (0 bytes)")
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return FileKind("torch", "a PyTorch checkpoint (legacy torch.save format)")
    if head[:1] == b"\x80" and len(head) >= 2 and 2 <= head[1] <= 5:
        return FileKind("pickle", f"a pickle (protocol {head[1]})")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path)
    if head.startswith(b"\x93NUMPY"):
        return FileKind("numpy", "a NumPy .npy array")
    if head.startswith(b"\x00\x00\x00\x00"):
        found = _sniff_tensors(path)
        if found:
            return found
    for probe in (_sniff_onnx(head), _sniff_program(head), _sniff_safetensors(head, size)):
        if probe:
            return probe
    if head[:1] in (b"(", b"}", b"]", b"c", b"\x80"):
        return FileKind(
            "pickle",
            "a pickle (protocol 0 or 1, Python 2 era)" if head[:1] != b"\x80" else "a pickle (truncated header)",
        )
    return FileKind("unknown", f"unrecognised content (starts {head[:8].hex(' ')})")


def sniff(path) -> str:
    """Name what a file holds, from its first bytes (:func:`what_is`): ``"a pickle (protocol 4)"``,
    ``"a PyTorch checkpoint (zip archive with data.pkl)"``, ``"an ONNX model (…)"``, …

    Cheap: reads a header (and the record headers of Paddle tensor files), never unpickles.
    """
    return what_is(path).text


# what a single file is to a model, when it is not one by itself
PARAMS_INFO = "params_info"  # <model>.pdiparams.info: the parameter names of a .pdiparams (pickle)
OPTIMIZER_STATE = "optimizer_state"  # <name>.pdopt beside the .pdparams of a paddle.static.save
LOOSE_TENSOR = "loose_tensor"  # one variable of a fluid folder (a single tensor, no name)
FLUID_MEMBER = "fluid_member"  # __model__ / model, or __params__ / params: the folder is the model
STATIC_PROGRAM = "static_program"  # the training .pdmodel of a paddle.static.save (its .pdparams beside it)


def part_of(path, found: FileKind | None = None) -> str | None:
    """What a single file is to a model that it is only part of (one of the constants above,
    naming the file that is the model), or ``None`` when the file may be a model by itself.
    ``found``: :func:`what_is` of it, if already known."""
    p = Path(path)
    found = what_is(p) if found is None else found
    if p.name.endswith(".pdiparams.info"):
        return PARAMS_INFO
    if p.suffix == ".pdopt":
        return OPTIMIZER_STATE
    if found.kind == "tensors" and found.count == 1 and p.suffix != ".pdiparams":
        return LOOSE_TENSOR
    if p.name in ("__model__", "model") or (found.kind == "tensors" and p.name in ("__params__", "params")):
        return FLUID_MEMBER
    if p.suffix == ".pdmodel" and p.with_suffix(".pdparams").is_file():
        try:
            if not read_program(p).feed_targets():
                return STATIC_PROGRAM
        except ClsvizError:  # a program no reader can decode: resolve() says what it is
            pass
    return None


# ------------------------------------------------------------------ what is this folder?
# what a folder is, as a whole (:func:`what_folder`)
EMPTY_FOLDER = "empty_folder"  # no entries at all
ONLY_SUBFOLDERS = "only_subfolders"  # no files, only sub-folders
A_MODEL = "model"  # resolve() found a program or a .pdparams checkpoint
MISSING_WEIGHTS = "missing_weights"  # a program whose .pdiparams is missing
PERSISTABLES = "persistables"  # Paddle tensor files are at least half of the files
MANY_CHECKPOINTS = "many_checkpoints"  # several .pdparams pickles and no single model
MIXED = "mixed"  # several files that make no Paddle model
ONE_FOREIGN_FILE = "one_foreign_file"  # a single file that is no Paddle model


@dataclass(frozen=True)
class FolderContents:
    """What a folder holds as a whole (:func:`what_folder`)."""

    verdict: str  # one of the constants above
    files: tuple[Path, ...] = ()  # its regular, non-hidden files, sorted
    subfolders: tuple[str, ...] = ()  # ONLY_SUBFOLDERS: their names, with a trailing /
    model: ModelFiles | None = None  # A_MODEL: what resolve() found
    error: FormatError | None = None  # MISSING_WEIGHTS: resolve()'s error
    tensors: tuple[Path, ...] = ()  # PERSISTABLES: the tensor files (others: the rest)
    kinds: tuple[tuple[Path, FileKind], ...] = ()  # not a model: what each file holds
    checkpoints: tuple[str, ...] = ()  # MANY_CHECKPOINTS: the .pdparams names

    @property
    def others(self) -> tuple[Path, ...]:
        return tuple(f for f in self.files if f not in self.tensors)


def what_folder(folder, *, params=None) -> FolderContents:
    """What ``folder`` holds as a whole: a model (:func:`resolve`), a program missing its weights,
    a majority of fluid tensor files, several checkpoints, a mix that makes no model, or one
    foreign file (each file then named by :func:`what_is`)."""
    p = Path(folder)
    entries = sorted(p.iterdir())
    files = tuple(f for f in entries if f.is_file() and not f.name.startswith("."))
    if not files:
        subdirs = tuple(f.name + "/" for f in entries if f.is_dir())
        return FolderContents(ONLY_SUBFOLDERS if subdirs else EMPTY_FOLDER, subfolders=subdirs)
    try:
        mf: ModelFiles | None = resolve(p, params=params)
    except FormatError as e:
        mf = None
        if str(e).startswith("no parameters file next to"):  # a PaddleX/PaddleClas folder missing its weights
            return FolderContents(MISSING_WEIGHTS, files, error=e)
    if mf is not None and (mf.model_file is not None or mf.kind in (DYGRAPH_CHECKPOINT, STATIC_SAVE)):
        return FolderContents(A_MODEL, files, model=mf)
    tensors = tuple(f for f in files if is_tensor_file(f))
    if tensors and 2 * len(tensors) >= len(files):
        return FolderContents(PERSISTABLES, files, tensors=tensors)
    kinds = tuple((f, what_is(f)) for f in files)
    ckpts = tuple(f.name for f, k in kinds if f.suffix == ".pdparams" and k.kind == "pickle")
    if len(ckpts) > 1:
        return FolderContents(MANY_CHECKPOINTS, files, kinds=kinds, checkpoints=ckpts)
    if len(files) > 1:
        return FolderContents(MIXED, files, kinds=kinds)
    return FolderContents(ONE_FOREIGN_FILE, files, kinds=kinds)
