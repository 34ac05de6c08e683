"""Build a :class:`Classifier` for any engine: ``clsviz.load``.

:data:`ENGINES` is the one table of engines: Paddle's three modes and the deployment
runtimes (OpenVINO, ONNX Runtime) that run the program's ONNX form.  Every caller that lists,
checks or explains modes reads it; :func:`engine_available` answers "can this run here".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from ..archs import guess_architecture
from ..archs.registry import refuse_code_from_files
from ..bundle import BundleConfig, resolve_config, verify_checksums, with_default_labels
from ..checkpoint import infer_class_num, load_state_dict
from ..errors import BackendUnavailable, ClsvizError, FormatError, OptionError
from ..formats import detect
from ..formats.fluid_names import clsviz_state, guess_arch
from ..formats.rebuild import config_from_program, is_training_program, read_any_program, rebuild_gaps
from ..transforms import PathLike, Preprocess
from .base import Classifier, EngineOptions
from .dygraph import DygraphClassifier
from .executor import ExecutorClassifier
from .legacy import (
    LegacyExecutorClassifier,
    dygraph_from_program,  # rebuilds the program op by op as a Layer
)
from .onnxruntime import OnnxRuntimeClassifier
from .openvino import OpenVINOClassifier
from .predictor import PredictorClassifier


@dataclass(frozen=True)
class Engine:
    """One row of :data:`ENGINES`."""

    name: str
    help: str
    runs: str  # what it runs (which model files)
    precisions: tuple = ("fp32",)  # on CPU
    converts: bool = False  # runs a converted form (ONNX via paddle2onnx), cached
    needs: tuple = ()  # Python modules of the extra it needs
    extra: str | None = None  # the pip extra that installs them
    program: bool = True  # runs an inference program (else a checkpoint + code, or a rebuild)

    def missing(self) -> tuple[str, ...]:
        """The modules of its extra that are not installed."""
        return tuple(m for m in self.needs if not _importable(m))

    def available(self) -> tuple[bool, str]:
        """``(True, "")``, or ``(False, why)`` when its extra is not installed."""
        missing = self.missing()
        if missing:
            return False, f"needs {', '.join(missing)}: pip install 'clsviz[{self.extra}]'"
        return True, ""


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules, a broken package
        return False


@dataclass(frozen=True)
class Capability:
    """Whether one mode can run one model, and if not why: the answer of :func:`capability`."""

    mode: str
    status: str  # "ready", "needs" (an extra or an argument), "no"
    detail: str  # what runs it, or what is missing
    hint: str = ""  # what to do about it
    error: type[ClsvizError] | None = None  # what load() raises when it is not ready

    @property
    def available(self) -> bool:
        return self.status == "ready"

    def raise_for(self, path, *, hint: str | None = None) -> None:
        """Raise :attr:`error` when the mode cannot run the model (``load`` does, before building);
        ``hint`` replaces :attr:`hint` (e.g. with what the files suggest)."""
        if not self.available and self.error is not None:
            raise self.error(f"mode {self.mode!r} {self.detail}", path=path, hint=hint or self.hint or None)


_PROGRAM = "an inference program: PIR .json, .pdmodel, fluid __model__ or model/params"
ENGINES = {
    e.name: e
    for e in (
        Engine("predictor", "inference engine (paddle.inference) + inference model", _PROGRAM, ("fp32", "bf16")),
        Engine(
            "dygraph",
            "training engine + checkpoint (network rebuilt from code)",
            "a checkpoint (.pdparams, persistables) + arch, or a rebuilt program",
            program=False,
        ),
        Engine("executor", "training engine + inference model (load_inference_model + Executor)", _PROGRAM),
        Engine(
            "openvino",
            "OpenVINO Runtime + the model's ONNX form (paddle2onnx)",
            _PROGRAM,
            ("fp32", "bf16"),
            converts=True,
            needs=("openvino", "paddle2onnx"),
            extra="runtimes",
        ),
        Engine(
            "onnxruntime",
            "ONNX Runtime (CPU) + the model's ONNX form (paddle2onnx)",
            _PROGRAM,
            ("fp32",),
            converts=True,
            needs=("onnxruntime", "paddle2onnx"),
            extra="runtimes",
        ),
    )
}
#: Paddle's own three modes (what "all" means for compare/evaluate, the demo's set)
MODES = ("predictor", "dygraph", "executor")
#: every engine name ``load(mode=…)`` accepts
ALL_MODES = tuple(ENGINES)
#: the deployment runtimes (need the ``runtimes`` extra)
RUNTIMES = tuple(n for n, e in ENGINES.items() if e.converts)
MODE_HELP = {n: e.help for n, e in ENGINES.items()}

__all__ = [
    "load",
    "load_config",
    "Classifier",
    "EngineOptions",
    "MODES",
    "ALL_MODES",
    "RUNTIMES",
    "MODE_HELP",
    "ENGINES",
    "Engine",
    "engine_available",
    "check_modes",
    "Capability",
    "capability",
    "capabilities",
]


def engine_available(mode: str) -> tuple[bool, str]:
    """Can ``mode`` run here?  ``(True, "")`` or ``(False, why)``."""
    if mode not in ENGINES:
        return False, f"unknown mode {mode!r}"
    return ENGINES[mode].available()


_EXPORT_FIRST = "export it first: clsviz.export(arch, checkpoint, out_dir) or `python -m clsviz export`"


def capability(files: detect.ModelFiles, mode: str, *, arch: str | None = None, program=None) -> Capability:
    """Can ``mode`` run the model ``files`` describes (:func:`clsviz.formats.detect.resolve`)?

    The one answer to "which modes run this, and why not": a mode that runs programs needs an
    inference program, a runtime needs its extra; the dygraph mode needs the network code for a
    checkpoint (``arch``, or a model name in ``inference.yml``) or a program every op of which
    it can rebuild.  ``program``: the program already read (``inspect`` passes it; then a
    training program is refused too).  ``load`` raises what it says; ``inspect``, the widgets
    and the format-matrix test ask it too.  A new engine is a row of :data:`ENGINES`.
    """
    e = ENGINES[check_modes([mode])[0]]
    if program is not None and is_training_program(program):
        return Capability(
            mode,
            "no",
            "cannot run a training program (no feed/fetch ops)",
            "rebuild the network from code (--arch) with the .pdparams beside it",
        )
    if e.program and not files.has_program:
        return Capability(
            mode,
            "no",
            f"needs an inference model, but this is a {files.kind.replace('_', ' ')}",
            _EXPORT_FIRST + ("" if e.converts else "; or use mode='dygraph' with arch="),
            FormatError,
        )
    missing = e.missing()
    if missing:
        return Capability(
            mode, "needs", f"needs {', '.join(missing)}", f"pip install 'clsviz[{e.extra}]'", BackendUnavailable
        )
    if mode == "executor" and files.legacy_program:
        return Capability(
            mode, "ready", "load_inference_model + Executor in a worker process with FLAGS_enable_pir_api=0"
        )
    if mode == "executor":
        return Capability(mode, "ready", "load_inference_model + Executor (PIR)")
    if mode == "predictor":
        return Capability(mode, "ready", "paddle.inference predictor")
    if e.program:
        return Capability(mode, "ready", e.help + "; converted once, cached as inference.onnx")
    return _dygraph_capability(files, arch=arch, program=program)


def _dygraph_capability(files: detect.ModelFiles, *, arch: str | None, program) -> Capability:
    if files.checkpoint is not None and files.has_program:
        return Capability("dygraph", "ready", f"network code + {files.checkpoint.name} (model name from inference.yml)")
    if files.checkpoint is not None:
        if arch is None:
            return Capability(
                "dygraph",
                "needs",
                "rebuilds the network from code, and no architecture is known",
                "pass arch= (CLI: --arch / -m); see clsviz.list_models()",
                OptionError,
            )
        return Capability("dygraph", "ready", f"network code for {arch} + {files.checkpoint.name}")
    if program is None:
        try:
            program = read_any_program(files)
        except FormatError:  # damaged: the rebuild says what is wrong when it loads
            return Capability("dygraph", "ready", "the program rebuilt op by op as a paddle.nn.Layer")
    gaps = rebuild_gaps(program)
    if gaps:  # load raises the rebuild's own UnsupportedOps, which lists the counts
        return Capability(
            "dygraph",
            "no",
            "the program cannot be rebuilt: ops not covered: " + ", ".join(sorted(gaps)),
            "run it with mode='predictor' or mode='executor'",
        )
    return Capability("dygraph", "ready", "the program rebuilt op by op as a paddle.nn.Layer (no network code needed)")


def capabilities(files: detect.ModelFiles) -> tuple[Capability, ...]:
    """:func:`capability` of every engine, in :data:`ENGINES` order."""
    return tuple(capability(files, m) for m in ENGINES)


def check_modes(modes) -> tuple[str, ...]:
    """Validate mode names (raises :class:`OptionError` naming the known ones)."""
    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in ENGINES]
    if bad or not modes:
        raise OptionError(f"unknown mode(s) {bad or list(modes)}", hint=f"choose from {', '.join(ALL_MODES)}")
    return modes


def _config_for(
    files: detect.ModelFiles, *, arch, class_num, labels, preprocess, config, image_shape=None, output=None
) -> BundleConfig:
    return resolve_config(
        config if config is not None else files.config_file,
        arch=arch,
        class_num=class_num,
        labels=labels,
        preprocess=preprocess,
        image_shape=image_shape,
        output=output,
    )


def load(
    path: PathLike,
    *,
    mode: str = "predictor",
    arch: str | None = None,
    params: PathLike | None = None,
    class_num: int | None = None,
    labels: PathLike | Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    config: BundleConfig | PathLike | None = None,
    image_shape: Sequence[int] | None = None,
    output: str | int | None = None,
    trust: bool = False,
    **options,
) -> Classifier:
    """Build a classifier from ``path`` (a bundle folder, a model file or a checkpoint).

    ``mode`` is one of ``"predictor"``, ``"dygraph"``, ``"executor"``, ``"openvino"``,
    ``"onnxruntime"`` (see :data:`ENGINES`; the last two convert the program to ONNX once and
    cache it, see :mod:`clsviz.engines.convert`).  ``arch`` names the
    network for checkpoints (see :func:`clsviz.list_models`).  Engine ``options``:
    use_gpu, gpu_mem, use_tensorrt, precision, ir_optim, enable_mkldnn, cpu_threads, batch_size,
    spinning (ONNX Runtime only; see :class:`EngineOptions`).

    A model never runs code of its own: an architecture named by its files
    (``Global.model_name``) resolves only in clsviz's registry.  ``trust=True`` lets it name
    ``"package.module:callable"``, and reads a ``.pdparams`` with plain pickle.

    The program's input signature drives preprocessing (channels, layout, dtype; see
    :mod:`clsviz.formats.signature`).  ``image_shape=(C, H, W)`` says which image a flat
    ``[N, D]`` input flattens; ``output=`` (name or index) picks the scored output of a program
    with several (default: the one shaped ``[N, classes]``).
    """
    if mode not in ENGINES:
        raise OptionError(f"unknown mode {mode!r}", hint=f"choose one of {', '.join(ALL_MODES)}")
    opts = EngineOptions.from_kwargs(**options)
    files, cfg = _resolve(
        path,
        params=params,
        arch=arch,
        class_num=class_num,
        labels=labels,
        preprocess=preprocess,
        config=config,
        image_shape=image_shape,
        output=output,
    )
    # the architecture name came from a file unless the caller gave it (arch=, a BundleConfig)
    name_from_file = arch is None and not isinstance(config, BundleConfig)
    clf = _build(files, cfg, opts, mode=mode, source=str(path), trust=trust, trust_code=trust or not name_from_file)
    if config is None and files.config_file is not None and cfg.checksums:
        # after the build, so damaged files get the engines' more specific errors first
        used = [files.checkpoint] if mode == "dygraph" else [files.model_file, files.params_file]
        try:
            onnx = getattr(clf, "onnx", None)  # its lookup just hashed the program and weights
            verify_checksums(
                cfg,
                [p for p in used if p is not None and p.parent == files.config_file.parent],
                known=dict(onnx.sources) if onnx is not None else None,
            )
        except Exception:
            clf.close()
            raise
    return clf


def _resolve(path, *, params, arch, class_num, labels, preprocess, config, image_shape=None, output=None):
    files = detect.resolve(path, params=params)
    cfg = _config_for(
        files,
        arch=arch,
        class_num=class_num,
        labels=labels,
        preprocess=preprocess,
        config=config,
        image_shape=image_shape,
        output=output,
    )
    if files.has_program:
        # the input signature (channels, layout, dtype, fixed size) always comes from the
        # program; without an inference.yml also the class count and a softmax head
        cfg = config_from_program(files, cfg, from_file=config is not None or files.config_file is not None)
    return files, cfg


def load_config(
    path,
    *,
    arch: str | None = None,
    params=None,
    class_num: int | None = None,
    labels=None,
    preprocess=None,
    config=None,
    image_shape=None,
    output=None,
    trust: bool = False,
) -> BundleConfig:
    """The :class:`BundleConfig` (preprocessing, labels, class count) that :func:`load` would use
    for ``path``, without building an engine; the class count of a bare checkpoint is read from it."""
    files, cfg = _resolve(
        path,
        params=params,
        arch=arch,
        class_num=class_num,
        labels=labels,
        preprocess=preprocess,
        config=config,
        image_shape=image_shape,
        output=output,
    )
    if cfg.class_num is None and files.checkpoint is not None and not files.has_program:
        n = infer_class_num(load_state_dict(files.checkpoint, trust=trust))
        if n is not None:
            cfg = cfg.with_class_num(n)
    return with_default_labels(cfg)  # as the Classifier does


def _build(files, cfg, opts, *, mode, source, trust, trust_code=True) -> Classifier:
    path = source
    cap = capability(files, mode, arch=cfg.arch or cfg.model_name)
    if cap.error is not OptionError:  # a missing arch is raised below, with what the checkpoint suggests
        cap.raise_for(path)
    if mode in RUNTIMES:
        if mode == "openvino":
            return OpenVINOClassifier(files, cfg, opts, source=source)

        return OnnxRuntimeClassifier(files, cfg, opts, source=source)
    if mode in ("predictor", "executor"):
        if mode == "predictor":
            return PredictorClassifier(files, cfg, opts, source=source)
        if files.legacy_program:
            return LegacyExecutorClassifier(files, cfg, opts, source=source)

        return ExecutorClassifier(files, cfg, opts, source=source)

    # dygraph: network code + weights
    if files.checkpoint is None:
        return dygraph_from_program(files, cfg, opts, source=source)
    arch = cfg.arch or cfg.model_name  # the sidecar's architecture when the model name is PaddleX's
    if arch is not None and not trust_code:  # before reading anything a file names
        refuse_code_from_files(arch, where=files.config_file or files.checkpoint)
    state = load_state_dict(files.checkpoint, trust=trust)
    if arch is None:
        guess = guess_arch(state) or guess_architecture(state)
        cap.raise_for(
            None,
            hint="pass arch= (CLI: --arch / -m), "  # no path: the arch is missing, not a file
            + (
                f"e.g. {guess!r}: the checkpoint's names and shapes are its"
                if guess
                else "e.g. 'ResNet50_vd'; see clsviz.list_models()"
            ),
        )
    state, _ = clsviz_state(state, arch, kind=files.kind)
    if cfg.class_num is None:
        n = infer_class_num(state)
        if n is None:
            raise OptionError("cannot tell the number of classes from the checkpoint", hint="pass class_num=")
        cfg = cfg.with_class_num(n)
    return DygraphClassifier(arch, state, cfg, opts, checkpoint=files.checkpoint, source=source)
