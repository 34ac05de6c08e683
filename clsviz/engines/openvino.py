"""Mode ``openvino``: OpenVINO Runtime on the model's ONNX form (see :mod:`.convert`).

Precision is explicit: on CPUs with bf16 (AVX-512 BF16, AMX) OpenVINO runs bf16 unless told
otherwise, so fp32 sets ``INFERENCE_PRECISION_HINT=f32``; bf16 runs only when asked.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendUnavailable, EngineError
from ._onnx import OnnxClassifier, require
from .base import RawCall

_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def bf16_available() -> tuple[bool, str]:
    ov = require("openvino", "OpenVINO")
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ("BF16" in caps, "" if "BF16" in caps else f"this CPU has no bf16 support (OpenVINO: {', '.join(caps)})")


class OpenVINOClassifier(OnnxClassifier):
    mode = "openvino"
    runtime = "OpenVINO"

    def _build(self):
        ov = require("openvino", "OpenVINO")
        self._check_common()
        o = self.options
        if o.precision not in _PRECISION:
            raise BackendUnavailable(f"OpenVINO on CPU runs fp32 or bf16 here (asked for {o.precision})")
        if o.precision == "bf16":
            ok, why = bf16_available()
            if not ok:
                raise BackendUnavailable(f"bf16 requested but {why}")
        path = self._onnx_path()
        core = ov.Core()
        try:
            model = core.read_model(path)
            self.compiled = core.compile_model(
                model,
                "CPU",
                {
                    "INFERENCE_PRECISION_HINT": _PRECISION[o.precision],
                    "INFERENCE_NUM_THREADS": int(o.threads),
                    "PERFORMANCE_HINT": "LATENCY",
                },
            )
        except Exception as e:
            raise EngineError(
                f"OpenVINO cannot compile the model: {str(e).strip().splitlines()[0][:300]}", path=path
            ) from e
        if len(self.compiled.inputs) != 1:
            raise EngineError(
                f"the model has {len(self.compiled.inputs)} inputs; an image classifier has one", path=path
            )
        self._req = self.compiled.create_infer_request()

    @property
    def precision(self) -> str:
        """What the compiled model runs (its ``INFERENCE_PRECISION_HINT``): ``f32`` or ``bf16``."""
        return self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype)
        try:
            self._req.infer({0: batch}, share_inputs=True)
            return self._req.get_output_tensor(self.config.output_index).data.copy()
        except Exception as e:
            raise EngineError(
                f"OpenVINO run failed on input {list(batch.shape)}: {str(e).strip()[:300]}",
                path=self.onnx.path if self.onnx else self.source,
                hint=f"the model expects {list(self.config.image_shape)} per image",
            ) from e

    def raw_call(self) -> RawCall:  # OpenVINO's own docs: an infer request on the compiled model
        req, port = self.compiled.create_infer_request(), self.compiled.output(self.config.output_index)
        return RawCall(lambda x: req.infer({0: x})[port])

    def describe(self) -> str:
        return f"OpenVINO · CPU · {self.options.precision} · ONNX via paddle2onnx"

    def close(self):
        self._req = self.compiled = None
