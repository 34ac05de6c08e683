"""Shared by the engines that run the ONNX form of a program (OpenVINO, ONNX Runtime)."""

from __future__ import annotations

import importlib

from ..errors import BackendUnavailable, FormatError
from .base import Classifier
from .convert import RUNTIMES_HINT, onnx_for


def require(module: str, what: str):
    """Import a runtime's module, or say which extra installs it (one line, no trace)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"{what} is not installed ({e.name or module})", hint=RUNTIMES_HINT) from None


class OnnxClassifier(Classifier):
    """A classifier whose engine runs ``inference.onnx`` converted from the Paddle program."""

    runtime = "?"

    def __init__(self, files, config, options, *, source=""):
        if not files.has_program:
            raise FormatError(
                f"mode {self.mode!r} needs an inference model",
                path=source,
                hint="export it first: clsviz.export(arch, checkpoint, out_dir)",
            )
        self.files = files
        self.onnx = None  # convert.OnnxFile, set by _build
        super().__init__(config, options, source=source)

    def _check_common(self):
        o = self.options
        if o.use_gpu or o.use_tensorrt:
            raise BackendUnavailable(
                f"mode {self.mode!r} runs on the CPU here (use_gpu/use_tensorrt apply to the predictor)"
            )

    @property
    def conversion_seconds(self) -> float:
        return self.onnx.seconds if self.onnx is not None else 0.0

    def _onnx_path(self) -> str:
        self.onnx = onnx_for(self.files)
        return str(self.onnx.path)
