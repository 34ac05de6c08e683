"""Build a :class:`Classifier` for any of the three prediction modes: ``clsviz.load``."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..bundle import BundleConfig, resolve_config, with_default_labels
from ..errors import FormatError, OptionError
from ..formats import detect
from .base import Classifier, EngineOptions

MODES = ("predictor", "dygraph", "executor")
MODE_HELP = {
    "predictor": "inference engine (paddle.inference) + inference model",
    "dygraph": "training engine + checkpoint (network rebuilt from code)",
    "executor": "training engine + inference model (load_inference_model + Executor)",
}

__all__ = ["load", "load_config", "Classifier", "EngineOptions", "MODES", "MODE_HELP"]


def _config_for(files: detect.ModelFiles, *, arch, class_num, labels, preprocess, config) -> BundleConfig:
    return resolve_config(config if config is not None else files.config_file, arch=arch,
                          class_num=class_num, labels=labels, preprocess=preprocess)


def load(path, *, mode: str = "predictor", arch: str | None = None, params=None,
         class_num: int | None = None, labels=None, preprocess=None, config=None,
         trust: bool = False, **options) -> Classifier:
    """Build a classifier from ``path`` (a bundle folder, a model file or a checkpoint).

    ``mode`` is one of ``"predictor"``, ``"dygraph"``, ``"executor"``.  ``arch`` names the
    network for checkpoints (see :func:`clsviz.list_models`).  Engine ``options``:
    use_gpu, gpu_mem, use_tensorrt, precision, ir_optim, enable_mkldnn, cpu_threads, batch_size.

    A model never runs code of its own: an architecture named by its files
    (``Global.model_name``) resolves only in clsviz's registry.  ``trust=True`` lets it name
    ``"package.module:callable"``, and reads a ``.pdparams`` with plain pickle.
    """
    if mode not in MODES:
        raise OptionError(f"unknown mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    opts = EngineOptions.from_kwargs(**options)
    files, cfg = _resolve(path, params=params, arch=arch, class_num=class_num, labels=labels,
                          preprocess=preprocess, config=config)
    # the architecture name came from a file unless the caller gave it (arch=, a BundleConfig)
    name_from_file = arch is None and not isinstance(config, BundleConfig)
    clf = _build(files, cfg, opts, mode=mode, source=str(path), trust=trust,
                 trust_code=trust or not name_from_file)
    if config is None and files.config_file is not None and cfg.checksums:
        # after the build, so damaged files get the engines' more specific errors first
        from ..bundle import verify_checksums

        used = [files.checkpoint] if mode == "dygraph" else [files.model_file, files.params_file]
        try:
            verify_checksums(cfg, [p for p in used if p is not None and p.parent == files.config_file.parent])
        except Exception:
            clf.close()
            raise
    return clf


def _resolve(path, *, params, arch, class_num, labels, preprocess, config):
    files = detect.resolve(path, params=params)
    cfg = _config_for(files, arch=arch, class_num=class_num, labels=labels,
                      preprocess=preprocess, config=config)
    if files.has_program and config is None:
        # no inference.yml: input size, class count and a softmax head come from the program
        from ..formats.rebuild import config_from_program

        cfg = config_from_program(files, cfg)
        if preprocess is not None:
            cfg = replace(cfg, preprocess=preprocess)
    return files, cfg


def load_config(path, *, arch: str | None = None, params=None, class_num: int | None = None, labels=None,
                preprocess=None, config=None, trust: bool = False) -> BundleConfig:
    """The :class:`BundleConfig` (preprocessing, labels, class count) that :func:`load` would use
    for ``path``, without building an engine; the class count of a bare checkpoint is read from it."""
    files, cfg = _resolve(path, params=params, arch=arch, class_num=class_num, labels=labels,
                          preprocess=preprocess, config=config)
    if cfg.class_num is None and files.checkpoint is not None and not files.has_program:
        from ..checkpoint import infer_class_num, load_state_dict

        n = infer_class_num(load_state_dict(files.checkpoint, trust=trust))
        if n is not None:
            cfg = cfg.with_class_num(n)
    return with_default_labels(cfg)  # as the Classifier does


def _build(files, cfg, opts, *, mode, source, trust, trust_code=True) -> Classifier:
    path = source
    if mode in ("predictor", "executor"):
        if not files.has_program:
            raise FormatError(
                f"mode {mode!r} needs an inference model, but this is a {files.kind.replace('_', ' ')}",
                path=path, hint="export it first: clsviz.export(arch, checkpoint, out_dir) "
                                "or `python -m clsviz export`; or use mode='dygraph' with arch=")
        if mode == "predictor":
            from .predictor import PredictorClassifier

            return PredictorClassifier(files, cfg, opts, source=source)
        if files.legacy_program:
            from .legacy import LegacyExecutorClassifier

            return LegacyExecutorClassifier(files, cfg, opts, source=source)
        from .executor import ExecutorClassifier

        return ExecutorClassifier(files, cfg, opts, source=source)

    # dygraph: network code + weights
    from ..checkpoint import infer_class_num, load_state_dict
    from .dygraph import DygraphClassifier

    if files.checkpoint is None:
        from .legacy import dygraph_from_program  # rebuilds the program op by op as a Layer

        return dygraph_from_program(files, cfg, opts, source=source)
    if cfg.model_name is not None and not trust_code:  # before reading anything a file names
        from ..archs.registry import refuse_code_from_files

        refuse_code_from_files(cfg.model_name, where=files.config_file or files.checkpoint)
    state = load_state_dict(files.checkpoint, trust=trust)
    if cfg.model_name is None:
        from ..archs import guess_architecture
        from ..formats.fluid_names import guess_arch

        guess = guess_arch(state) or guess_architecture(state)
        raise OptionError("mode 'dygraph' rebuilds the network from code, and no architecture is known",
                          hint="pass arch= (CLI: --arch / -m), "
                               + (f"e.g. {guess!r}: the checkpoint's names and shapes are its"
                                  if guess else "e.g. 'ResNet50_vd'; see clsviz.list_models()"))
    if files.kind == detect.FLUID_PERSISTABLES:
        from ..formats.fluid_names import fluid_to_dygraph_for_arch

        state = fluid_to_dygraph_for_arch(state, cfg.model_name)
    if cfg.class_num is None:
        n = infer_class_num(state)
        if n is None:
            raise OptionError("cannot tell the number of classes from the checkpoint",
                              hint="pass class_num=")
        cfg = cfg.with_class_num(n)
    return DygraphClassifier(cfg.model_name, state, cfg, opts, checkpoint=files.checkpoint, source=source)
