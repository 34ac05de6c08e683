"""What is on disk: detection of Paddle model formats, legacy codecs, migration."""
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
    from .tensorfile import read_tensor_file

    return {f.name: read_tensor_file(f) for f in sorted(Path(folder).iterdir()) if f.is_file()}
