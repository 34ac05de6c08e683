"""Mode ``onnxruntime``: ONNX Runtime (CPU execution provider) on the model's ONNX form.

ONNX Runtime's worker threads spin-wait for work by default.  That saves a wake-up per
operator (on a tiny model ONNX Runtime ran ~1.2× faster with it) but the spinning slowed the
other engines in the same process 1.2–2× here.  So spinning is an explicit engine option,
``spinning`` (``session.intra_op.allow_spinning``): off unless asked; on is what a deployment
running only ONNX Runtime should use.

Threads: clsviz sets the count (the same rule as every engine).  ONNX Runtime pins its pool
threads to cores only when it picks the count itself; with a count set, they float, and on a
busy machine (or beside other engines) a floating worker waits for a core: the demo model ran
1.13× slower that way in a mixed process.  So when the count covers every CPU this process
may use, clsviz pins the pool threads as ONNX Runtime's own default would (one per CPU; the
calling thread stays free, as in ONNX Runtime); a smaller count is left unpinned, so that
several processes each given a few threads do not pile onto the same cores.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import BackendUnavailable, EngineError
from ._onnx import OnnxClassifier, require
from .base import RawCall


def thread_affinities(threads: int) -> str | None:
    """ONNX Runtime's ``session.intra_op_thread_affinities`` for ``threads`` intra-op threads, or None.

    One CPU per pool thread (``threads - 1`` of them; ONNX Runtime never pins the calling thread),
    taken in order from the CPUs this process may use, skipping the first (the caller's), with
    ONNX Runtime's 1-based processor ids.  None unless ``threads`` covers every usable CPU.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux: leave it to ONNX Runtime
        return None
    if threads < 2 or threads != len(cpus):
        return None
    return ";".join(str(c + 1) for c in cpus[1:threads])


def session_options(threads: int, *, spinning: bool = False):
    """The ``SessionOptions`` clsviz uses: ``threads`` intra-op threads (pinned when they cover
    every usable CPU, see :func:`thread_affinities`), spinning only if asked, quiet."""
    ort = require("onnxruntime", "ONNX Runtime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    pins = thread_affinities(int(threads))
    if pins:
        so.add_session_config_entry("session.intra_op_thread_affinities", pins)
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
        pin = ", pinned" if thread_affinities(self.options.threads) else ""
        return f"ONNX Runtime · CPU · fp32 · {self.options.threads} threads{pin}, {spin} · ONNX via paddle2onnx"

    def close(self):
        self.session = None
