"""Mode ``onnxruntime``: ONNX Runtime (CPU execution provider) on the model's ONNX form.

ONNX Runtime's worker threads spin-wait for work by default.  That saves a wake-up per
operator (on a tiny model ONNX Runtime ran ~1.2× faster with it) but the spinning slowed the
other engines in the same process 1.2–2× here.  So spinning is an explicit engine option,
``spinning`` (``session.intra_op.allow_spinning``): off unless asked; on is what a deployment
running only ONNX Runtime should use.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendUnavailable, EngineError
from ._onnx import OnnxClassifier, require
from .base import RawCall


def session_options(threads: int, *, spinning: bool = False):
    """The ``SessionOptions`` clsviz uses: ``threads`` intra-op threads, spinning only if asked, quiet."""
    ort = require("onnxruntime", "ONNX Runtime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


class OnnxRuntimeClassifier(OnnxClassifier):
    mode = "onnxruntime"
    runtime = "ONNX Runtime"

    def _build(self):
        ort = require("onnxruntime", "ONNX Runtime")
        self._check_common()
        if self.options.precision != "fp32":
            raise BackendUnavailable(
                f"ONNX Runtime runs this model fp32 only (asked for {self.options.precision})",
                hint="use mode='openvino' or 'predictor' for bf16",
            )
        path = self._onnx_path()
        try:
            self.session = ort.InferenceSession(
                path,
                session_options(self.options.threads, spinning=bool(self.options.spinning)),
                providers=["CPUExecutionProvider"],
            )
        except Exception as e:
            raise EngineError(
                f"ONNX Runtime cannot load the model: {str(e).strip().splitlines()[0][:300]}", path=path
            ) from e
        ins = self.session.get_inputs()
        if len(ins) != 1:
            raise EngineError(f"the model has {len(ins)} inputs; an image classifier has one", path=path)
        self._in = ins[0].name
        self._out = [self.session.get_outputs()[self.config.output_index].name]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype)
        try:
            return self.session.run(self._out, {self._in: batch})[0]
        except Exception as e:
            raise EngineError(
                f"ONNX Runtime run failed on input {list(batch.shape)}: {str(e).strip()[:300]}",
                path=self.onnx.path if self.onnx else self.source,
                hint=f"the model expects {list(self.config.image_shape)} per image",
            ) from e

    def raw_call(self) -> RawCall:  # ONNX Runtime's: session.run(None, {input name: array})
        sess, name, i = self.session, self._in, self.config.output_index
        return RawCall(lambda x: sess.run(None, {name: x})[i])

    def describe(self) -> str:
        spin = "spinning" if self.options.spinning else "no spinning"
        return f"ONNX Runtime · CPU · fp32 · {self.options.threads} threads, {spin} · ONNX via paddle2onnx"

    def close(self):
        self.session = None
