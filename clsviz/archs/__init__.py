"""Network architectures: the registry plus the families clsviz ships."""
from .registry import ModelSpec, get_model, list_models, model_spec, register_model

__all__ = ["ModelSpec", "get_model", "list_models", "model_spec", "register_model"]
