"""What is on disk: detection of Paddle model formats, legacy codecs, program rebuild.

``detect`` resolves a path; ``tensorfile`` / ``programdesc`` / ``pirjson`` read the files
without Paddle; ``fluid_names`` maps fluid 1.x names; ``rebuild`` replays a program as a Layer.
"""
from __future__ import annotations

from pathlib import Path

from .detect import ModelFiles, resolve

__all__ = ["ModelFiles", "resolve", "looks_like_persistables", "load_checkpoint_folder"]


def looks_like_persistables(folder) -> bool:
    """A folder of loose LoDTensor files (fluid 1.x ``save_persistables``)."""
    try:
        from .tensorfile import is_tensor_file
    except ImportError:
        return False
    files = [f for f in Path(folder).iterdir() if f.is_file()]
    return bool(files) and all(is_tensor_file(f) for f in files)


def load_checkpoint_folder(folder) -> dict:
    """Read a fluid 1.x persistables folder into ``{name: ndarray}`` (fluid names)."""
    from ..errors import FormatError
    from .tensorfile import read_tensor_file

    folder = Path(folder)
    programs = sorted(f.name for f in folder.iterdir() if f.is_file() and (
        f.name in ("__model__", "model") or f.suffix in (".pdmodel", ".json")))
    if programs:
        raise FormatError(f"this folder holds an inference model ({', '.join(programs)}), not a "
                          "checkpoint", path=folder,
                          hint="run it as it is (mode='predictor', 'executor' or 'dygraph'), or turn it "
                               "into a Paddle 3 bundle with clsviz.migrate(src, dst)")
    return {f.name: read_tensor_file(f) for f in sorted(folder.iterdir()) if f.is_file()}
