"""Network architectures: the registry plus the families clsviz ships."""

# the families clsviz ships register themselves on import
from . import mobilenet_v3, pphgnet_v2, pplcnet, pplcnet_v2, resnet, resnet_vd, vision  # noqa: F401
from .registry import (
    ModelInfo,
    ModelList,
    ModelSpec,
    get_model,
    guess_architecture,
    list_models,
    model_info,
    model_spec,
    paddlex_name,
    register_model,
)

__all__ = [
    "ModelInfo",
    "ModelList",
    "ModelSpec",
    "get_model",
    "guess_architecture",
    "list_models",
    "model_info",
    "model_spec",
    "paddlex_name",
    "register_model",
]
