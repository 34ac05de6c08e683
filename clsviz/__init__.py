"""clsviz — explore PaddlePaddle image classifiers: export, three prediction modes, side by side.

>>> import clsviz
>>> clsviz.export("ResNet50_vd", "ResNet50_vd_pretrained.pdparams", "bundle/")
>>> clf = clsviz.load("bundle/", mode="predictor")
>>> clf.predict("cat.jpg", top_k=5)
>>> clsviz.compare("images/", [clsviz.load("bundle/", mode=m) for m in clsviz.MODES])
>>> clsviz.evaluate("val/", "bundle/", modes="all", ray=True)   # accuracy; locally or on Ray
>>> clsviz.inspect("old_model/")                       # which Paddle format, what is in it
>>> clsviz.migrate("old_model/", "bundle3/")           # any legacy model -> Paddle 3 bundle
>>> clsviz.explain(clf, "cat.jpg", method="occlusion") # where the model looked (saliency maps)
"""

from __future__ import annotations

from . import (
    errors,
    evaluate,  # a callable module: clsviz.evaluate(folder, bundle, modes=..., ray=...)
    inspect,  # a callable module: clsviz.inspect(path), clsviz.inspect.compare(a, b)
)
from ._paddle import paddle as _paddle  # noqa: F401  (quiet import, before anything else)
from ._version import __version__ as __version__
from .archs import get_model, list_models
from .bundle import BundleConfig, read_labels
from .checkpoint import LoadDiagnostics, load_state_dict
from .compare import compare
from .engines import MODES, Classifier, EngineOptions, load
from .errors import (
    ArchitectureError,
    BackendUnavailable,
    CheckpointMismatch,
    ClsvizError,
    EngineError,
    ExportError,
    FormatError,
    ImageError,
    OptionError,
    OutputError,
    UnsafeCheckpoint,
    UnsupportedOps,
    UntrustedCode,
)
from .evaluate import Evaluation
from .explain import Explanation, explain
from .export import ExportResult, export
from .inspect import InspectComparison, InspectReport
from .migrate import MigrateResult, migrate
from .recommend import Recommendation, recommend
from .results import Agreement, Comparison, ModeReport, Prediction, StageStats, TopK
from .transforms import Images, PathLike, Preprocess, load_image


def predict(images: Images, model: PathLike, *, mode: str = "predictor", top_k: int = 5, **kwargs) -> list[Prediction]:
    """One-shot convenience: ``load(model, mode=mode, **kwargs).predict(images, top_k)``."""
    with load(model, mode=mode, **kwargs) as clf:
        return clf.predict(images, top_k=top_k)


__all__ = [
    "get_model",
    "list_models",
    "export",
    "load",
    "predict",
    "compare",
    "evaluate",
    "Evaluation",
    "MODES",
    "Classifier",
    "EngineOptions",
    "BundleConfig",
    "Preprocess",
    "load_image",
    "read_labels",
    "load_state_dict",
    "LoadDiagnostics",
    "ExportResult",
    "explain",
    "Explanation",
    "inspect",
    "InspectReport",
    "InspectComparison",
    "migrate",
    "MigrateResult",
    "recommend",
    "Recommendation",
    "Prediction",
    "TopK",
    "Comparison",
    "ModeReport",
    "Agreement",
    "StageStats",
    "errors",
    "ClsvizError",
    "ImageError",
    "FormatError",
    "UnsafeCheckpoint",
    "UnsupportedOps",
    "CheckpointMismatch",
    "ArchitectureError",
    "UntrustedCode",
    "EngineError",
    "BackendUnavailable",
    "ExportError",
    "OutputError",
    "OptionError",
]
