"""What is on disk: detection of Paddle model formats, legacy codecs, program rebuild.

``detect`` resolves a path; ``tensorfile`` / ``programdesc`` / ``pirjson`` read the files
without Paddle; ``fluid_names`` maps fluid 1.x names; ``rebuild`` replays a program as a Layer.
"""

from __future__ import annotations

from .detect import ModelFiles, load_checkpoint_folder, looks_like_persistables, resolve

__all__ = ["ModelFiles", "resolve", "looks_like_persistables", "load_checkpoint_folder"]
