"""The self-describing bundle: ``inference.yml`` (preprocessing + labels + model name).

The file is one PaddleX 3.x and PaddleClas deploy both accept unchanged: ``Global.model_name``,
an ``Hpi`` section as PaddleX writes it, ``PreProcess.transform_ops`` with only their op names
and values (``ResizeImage`` with PaddleX's interpolation names, ``CropImage``,
``NormalizeImage``, ``ToCHWImage``) and ``PostProcess.Topk`` (``topk`` + ``label_list``, no
other keys).  clsviz's own facts live in a top-level ``clsviz:`` section both tools ignore.
Bundles of older clsviz versions (``Global.clsviz``, ``main_indicator``) still load.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml

from .errors import FormatError, OptionError
from .safe_io import open_regular, read_text
from .schema import check_image_shape, validate_sidecar
from .transforms import PathLike, Preprocess

CONFIG_NAME = "inference.yml"
MODEL_PREFIX = "inference"
CHECKPOINT_NAME = "model.pdparams"
#: ILSVRC-2012 class names (WordNet lemmas) in the class-id order PaddleClas and PaddleX use,
#: in PaddleClas's ``class_id_map`` format ("0 tench, Tinca tinca")
IMAGENET1K_LABELS = Path(__file__).resolve().parent / "data" / "imagenet1k_label_list.txt"
IMAGENET1K_NOTE = (
    "labels: ImageNet-1k class names, assumed because the model has 1000 classes and "
    "no labels were given (pass labels= / --labels to use your own)"
)


@dataclass(frozen=True)
class BundleConfig:
    """What every engine needs besides the network: preprocessing, labels, output kind."""

    model_name: str | None = None
    class_num: int | None = None
    image_shape: tuple[int, int, int] = (3, 224, 224)
    preprocess: Preprocess = field(default_factory=Preprocess)
    labels: tuple[str, ...] | None = None
    topk: int = 5
    softmax: bool = False  # True: the network already outputs probabilities
    arch_kwargs: tuple = ()  # extra keyword arguments for get_model, as (key, value) pairs
    checksums: tuple = ()  # (file name, sha256) of the bundle's model files, written by export
    labels_note: str | None = None  # where the labels came from when clsviz chose them (not saved)
    output: str | int | None = None  # the output to score (name or index); None: the [N, classes] one
    output_index: int = 0  # which program output is scored (from the signature; not saved)
    input_name: str | None = None  # the program's input (from the signature; not saved)
    image_shape_given: bool = False  # image_shape came from the user or a sidecar, not a default
    arch: str | None = None  # the architecture the dygraph mode rebuilds, when not model_name

    def label(self, class_id: int) -> str:
        if self.labels is not None and 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return str(class_id)

    def with_class_num(self, n: int) -> BundleConfig:
        if self.labels is not None and len(self.labels) != n:
            raise OptionError(
                f"{len(self.labels)} labels given for a model with {n} classes", hint="give exactly one label per class"
            )
        return replace(self, class_num=n)

    # -- YAML ------------------------------------------------------------------------------
    def to_yaml_dict(self, *, input_name: str = "x") -> dict:
        topk: dict[str, Any] = {"topk": int(self.topk)}
        if self.labels is not None:
            topk["label_list"] = list(self.labels)
        c, h, w = (int(v) for v in self.image_shape)

        def shapes():  # a fresh copy each: no YAML anchors in the file
            return {input_name: [[1, c, h, w], [1, c, h, w], [8, c, h, w]]}

        return {
            "Global": {"model_name": self.model_name},
            # TensorRT dynamic shapes, as PaddleX writes them for a classifier's one input
            "Hpi": {
                "backend_configs": {
                    "paddle_infer": {"trt_dynamic_shapes": shapes()},
                    "tensorrt": {"dynamic_shapes": shapes()},
                }
            },
            "PreProcess": {"transform_ops": self.preprocess.to_transform_ops(paddlex=True)},
            "PostProcess": {"Topk": topk},
            "clsviz": {
                "class_num": self.class_num,
                "image_shape": list(self.image_shape),
                "softmax": bool(self.softmax),
                "arch_kwargs": dict(self.arch_kwargs),
                "sha256": dict(self.checksums),
                "interpolation": self.preprocess.interpolation,
                "backend": self.preprocess.backend,
                **({"output": self.output} if self.output is not None else {}),
                **({"arch": self.arch} if self.arch and self.arch != self.model_name else {}),
            },
        }

    @classmethod
    def from_yaml_dict(cls, d: dict, *, where: PathLike | None = None) -> BundleConfig:
        validate_sidecar(d, where=where)  # every value below is known to be well-formed
        g = d.get("Global") or {}
        # clsviz's section: top level since PaddleX compatibility, under Global before
        extra = {**(g.get("clsviz") or {}), **(d.get("clsviz") or {})}
        ops = (d.get("PreProcess") or {}).get("transform_ops") or []
        # a sidecar PaddleX or PaddleClas wrote (no clsviz section) is meant for their cv2
        # pipeline; an older clsviz export without a recorded backend was made with Pillow
        backend = extra.get("backend") or ("pil" if ("clsviz" in d or "clsviz" in g) else "cv2")
        pre = Preprocess.from_transform_ops(ops, where=where, backend=backend)
        post = d.get("PostProcess") or {}
        topk = post.get("Topk") or {}
        labels = topk.get("label_list")
        if labels is None and topk.get("class_id_map_file") and where is not None:
            cmap = _inside(Path(where).parent, topk["class_id_map_file"])
            if cmap is not None and os.path.lexists(cmap):
                labels = read_labels(cmap)
        shape = extra.get("image_shape") or [3, *pre.crop_hw]
        return cls(
            model_name=g.get("model_name"),
            class_num=extra.get("class_num") or (len(labels) if labels else None),
            image_shape=cast("tuple[int, int, int]", tuple(int(v) for v in shape)),  # validated by schema
            preprocess=pre,
            labels=tuple(str(x) for x in labels) if labels else None,
            topk=int(topk.get("topk", 5)),
            softmax=bool(extra.get("softmax", False)),
            arch_kwargs=tuple(sorted((extra.get("arch_kwargs") or {}).items())),
            checksums=tuple(sorted((extra.get("sha256") or {}).items())),
            output=extra.get("output"),
            arch=extra.get("arch"),
            image_shape_given=extra.get("image_shape") is not None,
        )

    def write(self, path: PathLike) -> Path:
        path = Path(path)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.to_yaml_dict(), f, sort_keys=False, allow_unicode=True)
        return path

    @classmethod
    def read(cls, path: PathLike) -> BundleConfig:
        text = read_text(path, what="inference.yml")
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise FormatError(f"inference.yml is not valid YAML: {e}", path=path) from e
        except RecursionError as e:
            raise FormatError("inference.yml nests too deeply to be a sidecar", path=path) from e
        return cls.from_yaml_dict(d, where=path)


def resolve_config(
    config=None, *, arch=None, class_num=None, labels=None, preprocess=None, image_shape=None, output=None
) -> BundleConfig:
    """A :class:`BundleConfig` (or an ``inference.yml`` path, or None) with the caller's overrides.

    Labels must match the class count; a label list alone sets it.
    """
    if config is None:
        config = BundleConfig()
    elif not isinstance(config, BundleConfig):
        config = BundleConfig.read(config)
    changes = {}
    if arch is not None:
        changes["model_name"] = changes["arch"] = arch
    if preprocess is not None:
        changes["preprocess"] = preprocess
    if output is not None:
        changes["output"] = output
    if labels is not None:
        changes["labels"], changes["labels_note"] = read_labels(labels), None
    if image_shape is not None:
        changes["image_shape"] = check_image_shape(image_shape)
        changes["image_shape_given"] = True
    config = replace(config, **changes)
    if class_num is not None:
        config = config.with_class_num(int(class_num))
    elif config.class_num is None and config.labels is not None:
        config = replace(config, class_num=len(config.labels))
    elif config.labels is not None:
        config = config.with_class_num(config.class_num)  # labels must match the classes
    return config


def _inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` if it stays inside ``folder`` (a sidecar names files of its own bundle
    only; PaddleClas's repository-relative paths such as ``ppcls/utils/…`` do not resolve)."""
    if os.path.isabs(name):
        return None
    p = folder / name
    try:
        real, base = p.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return None
    return p if real == base or base in real.parents else None


def read_labels(source: PathLike | Sequence[str] | None) -> tuple[str, ...] | None:
    """Labels from a PaddleClas ``class_id_map`` file (``0 tench`` per line) or a list.

    Lines may also be bare names (one per line, id = line number).  The file must be a
    regular UTF-8 (or UTF-16 with BOM) text file of at most 16 MiB; a byte-order mark is dropped.
    """
    if source is None:
        return None
    if not isinstance(source, (str, os.PathLike)):  # a list or tuple of names
        return tuple(str(s) for s in source)
    path = Path(source)
    text = read_text(path, what="label file")
    entries: dict[int, str] = {}
    bare: list[str] = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        head, _, rest = ln.partition(" ")
        if head.isdigit() and rest.strip():
            entries[int(head)] = rest.strip()
        else:
            bare.append(ln)
    if entries and bare:
        raise FormatError("label file mixes 'id name' lines with bare names", path=path)
    if bare:
        return tuple(bare)
    if not entries:
        raise FormatError("label file is empty", path=path)
    n = max(entries) + 1
    missing = [i for i in range(n) if i not in entries]
    if missing:
        raise FormatError(f"label file has no name for class ids {missing[:10]}", path=path)
    return tuple(entries[i] for i in range(n))


def clsviz_section(doc, *, create: bool = False) -> dict | None:
    """clsviz's own section of a parsed ``inference.yml``: top-level ``clsviz`` (current bundles)
    or ``Global.clsviz`` (older ones); ``create`` adds a top-level one when there is none."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("clsviz"), dict):
        return doc["clsviz"]
    g = doc.get("Global")
    if isinstance(g, dict) and isinstance(g.get("clsviz"), dict):
        return g["clsviz"]
    if create:
        doc["clsviz"] = {}
        return doc["clsviz"]
    return None


PADDLEX_MODELS = Path(__file__).resolve().parent / "data" / "paddlex_classification_models.txt"


@lru_cache(maxsize=1)
def paddlex_model_names() -> frozenset:
    """The image-classification names PaddleX 3.7 accepts as ``Global.model_name``
    (``clsviz/data/paddlex_classification_models.txt``; PaddleX refuses any other)."""
    text = read_text(PADDLEX_MODELS, what="PaddleX model list")
    return frozenset(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))


@lru_cache(maxsize=1)
def imagenet1k_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names shipped with clsviz (``clsviz/data``)."""
    labels = read_labels(IMAGENET1K_LABELS)
    assert labels is not None  # a path always gives labels
    return labels


def with_default_labels(config: BundleConfig) -> BundleConfig:
    """``config`` with ImageNet-1k labels when it has none and exactly 1000 classes.

    A 1000-class PaddleClas/PaddleX model is an ImageNet-1k classifier unless told
    otherwise; ``labels_note`` records the assumption so every output can say so.
    """
    if config.labels is None and config.class_num == 1000:
        return replace(config, labels=imagenet1k_labels(), labels_note=IMAGENET1K_NOTE)
    return config


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open_regular(path, what="bundle file") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def with_checksums(config: BundleConfig, folder, names) -> BundleConfig:
    """``config`` recording the sha256 of each existing file ``names`` in ``folder``."""
    folder = Path(folder)
    sums = tuple(sorted((n, sha256_file(folder / n)) for n in names if (folder / n).is_file()))
    return replace(config, checksums=sums)


def verify_checksums(config: BundleConfig, paths, *, known: Mapping[str, str] | None = None) -> None:
    """Raise :class:`FormatError` if a file differs from the sha256 its bundle recorded.

    Catches weights swapped for another model's with the same names and shapes, which
    no engine can notice.  ``known``: ``{file name: sha256}`` the caller has just computed
    for these very files (the ONNX lookup hashes the program and weights too), so that a
    100 MB weights file is not read twice in one load.
    """
    recorded = dict(config.checksums)
    known = dict(known or {})
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        want = recorded.get(p.name)
        if want is not None and p.is_file() and (known.get(p.name) or sha256_file(p)) != want:
            raise FormatError(
                f"{p.name} does not match the sha256 recorded in inference.yml: "
                f"the file was replaced or damaged after export",
                path=p,
                hint="re-export the bundle; if you replaced it on purpose, delete clsviz.sha256 from inference.yml",
            )


#: the ops PaddleX 3.7's image-classification predictor builds from ``PreProcess`` (it needs all
#: but CropImage) and the one it builds from ``PostProcess``
_PADDLEX_PRE = ("ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage")
_PADDLEX_INTERP = ("NEAREST", "LINEAR", "BICUBIC", "AREA", "LANCZOS4")


def deploy_check(doc: dict, *, signature=None, softmax: bool | None = None) -> tuple[str, ...]:
    """Why PaddleX 3.x's ``create_model(model_name, model_dir)`` would refuse or misread a bundle
    with this parsed ``inference.yml`` (and, when given, this program ``signature`` and whether it
    outputs probabilities); empty when it runs it as clsviz does.  Facts checked: the name is in
    PaddleX's list, ``PreProcess`` holds only its ops (Resize and ToCHW required) with its
    interpolation names, ``NormalizeImage`` is 3-channel with ``order: ''``, ``PostProcess`` holds
    only ``Topk`` (``topk``, ``label_list``), and PaddleX feeds a 3-channel NCHW float image and
    scores the first output."""
    problems = []
    g_raw = doc.get("Global")
    g: dict = g_raw if isinstance(g_raw, dict) else {}
    name = g.get("model_name")
    if name not in paddlex_model_names():
        problems.append(
            f"Global.model_name {name!r} is not a PaddleX image-classification model "
            "(create_model refuses it): export with --model_name NAME"
        )
    ops = ((doc.get("PreProcess") or {}).get("transform_ops") or []) if isinstance(doc.get("PreProcess"), dict) else []
    names = [next(iter(op)) for op in ops if isinstance(op, dict) and len(op) == 1]
    for n in names:
        if n not in _PADDLEX_PRE:
            problems.append(f"PreProcess op {n} is not one PaddleX builds")
    for need in ("ResizeImage", "NormalizeImage", "ToCHWImage"):
        if need not in names:
            problems.append(f"PreProcess has no {need}, which PaddleX's classifier needs")
    for op in ops:
        if not isinstance(op, dict) or len(op) != 1:
            continue
        ((n, args),) = op.items()
        args = args or {}
        if n == "ResizeImage" and args.get("interpolation", "LINEAR") not in _PADDLEX_INTERP:
            problems.append(
                f"ResizeImage.interpolation {args.get('interpolation')!r}: PaddleX takes " + ", ".join(_PADDLEX_INTERP)
            )
        if n == "NormalizeImage" and (args.get("channel_num", 3) != 3 or args.get("order", "") != ""):
            problems.append("NormalizeImage must have channel_num 3 and order '' for PaddleX")
    post_raw = doc.get("PostProcess")
    post: dict = post_raw if isinstance(post_raw, dict) else {}
    for k in post:
        if k != "Topk":
            problems.append(f"PostProcess.{k} is not an op: PaddleX fails on it")
    topk = post.get("Topk") if isinstance(post.get("Topk"), dict) else None
    if topk is None:
        problems.append("PostProcess.Topk is missing")
    else:
        for k in topk:
            if k not in ("topk", "label_list"):
                problems.append(f"PostProcess.Topk.{k} is not an argument PaddleX's Topk takes")
    if signature is not None:
        inp = signature.inputs[0] if len(signature.inputs) == 1 else None
        if inp is None or inp.layout != "NCHW" or inp.channels != 3 or inp.integer:
            problems.append(
                f"PaddleX feeds a 3-channel NCHW float image; this program takes "
                f"{inp if inp is not None else str(len(signature.inputs)) + ' inputs'}"
            )
        if signature.output_index != 0:
            problems.append(f"PaddleX scores the first output; clsviz scores output #{signature.output_index}")
    if softmax is False:
        problems.append(
            "the program outputs logits: PaddleX would show them as scores (export with softmax, the default)"
        )
    return tuple(problems)
