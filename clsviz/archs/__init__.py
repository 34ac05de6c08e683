"""Network architectures: the registry plus the families clsviz ships."""
from .registry import (ModelInfo, ModelList, ModelSpec, get_model, guess_architecture, list_models, model_info,
                       model_spec, paddlex_name, register_model)

__all__ = ["ModelInfo", "ModelList", "ModelSpec", "get_model", "guess_architecture", "list_models",
           "model_info", "model_spec", "paddlex_name", "register_model"]
