"""Legacy (ProgramDesc) programs: the ``executor`` mode in an isolated worker process.

Paddle 3 runs PIR in-process; ``load_inference_model`` for ``.pdmodel`` /
``__model__`` / ``model`` programs needs ``FLAGS_enable_pir_api=0`` before
``import paddle``.  :class:`LegacyExecutorClassifier` therefore runs the
Executor in a child process started with that flag, so a notebook can still
hold all three modes side by side.  The round trip costs one pipe copy of the
batch and of the output per call.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np

from .._translate import LEGACY_LOAD_RULES, first_line, load_error, timeout_error
from ..errors import EngineError
from ..formats.rebuild import program_to_layer
from ._legacy_worker import _recv, _send
from .base import Classifier, require_fp32_engine_options
from .dygraph import DygraphClassifier


class _Worker:
    def __init__(self):
        env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel=os.environ.get("GLOG_minloglevel", "2"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clsviz.engines._legacy_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._stderr = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        self.lock = threading.Lock()

    def _drain(self):
        assert self.proc.stderr is not None  # stderr=PIPE
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))
            del self._stderr[:-50]

    def request(self, header: dict, payload: bytes = b"", *, where=None):
        with self.lock:
            try:
                _send(self.proc.stdin, header, payload)
                reply, data = _recv(self.proc.stdout)
            except (BrokenPipeError, OSError, ValueError):
                reply, data = None, b""
            if reply is None:
                try:
                    code = self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired as e:  # it closed its pipe but hangs: end it
                    self.proc.kill()
                    raise timeout_error(
                        e,
                        "the legacy executor process (after closing its pipe)",
                        path=where,
                        hint="your session is unaffected",
                    ) from e
                tail = "".join(self._stderr[-3:]).strip().splitlines()[-1:] or [""]
                raise EngineError(
                    f"the legacy executor process died (exit {code}) during {header.get('cmd')}: {tail[0][:200]}",
                    path=where,
                    hint="the model files are probably damaged; your session is unaffected",
                )
            return reply, data

    def close(self):
        if self.proc.poll() is None:
            try:
                stdin = self.proc.stdin
                if stdin is not None:
                    _send(stdin, {"cmd": "exit"})
                    stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):  # gone, or hangs: end it
                self.proc.kill()


def _worker_error(reply: dict, files, what: str) -> Exception:
    e = RuntimeError(reply.get("error", ""))
    if what == "load":
        return load_error(e, files, LEGACY_LOAD_RULES)
    return EngineError(f"legacy executor run failed: {first_line(e)}", path=files.model_file)


class LegacyExecutorClassifier(Classifier):
    """``executor`` mode for ProgramDesc models, run in a ``FLAGS_enable_pir_api=0`` worker."""

    mode = "executor"
    isolation = "worker process"

    def __init__(self, files, config, options, *, source=""):
        self.files = files
        self.worker: _Worker | None = None
        super().__init__(config, options, source=source)

    def _build(self):
        o, f = self.options, self.files
        require_fp32_engine_options(o, self.mode)
        if (
            f.model_file.suffix == ".pdmodel"
            and f.params_file is not None
            and f.params_file.name == f.model_file.with_suffix(".pdiparams").name
        ):
            req: dict[str, str | None] = {"path": str(f.model_file.with_suffix(""))}
        else:  # fluid layout: a folder + file names (params None = loose files)
            req = {
                "path": str(f.model_file.parent),
                "model_filename": f.model_file.name,
                "params_filename": None
                if f.params_file is None
                else os.path.relpath(f.params_file, f.model_file.parent),
            }
        self.worker = worker = _Worker()
        reply, _ = worker.request(dict(req, cmd="load", use_gpu=o.use_gpu, gpu_id=o.gpu_id), where=f.model_file)
        if not reply.get("ok"):
            self.close()
            raise _worker_error(reply, f, "load")
        self.feed_names = reply["feeds"]
        if len(self.feed_names) != 1:
            self.close()
            raise EngineError(
                f"the model has {len(self.feed_names)} inputs ({', '.join(self.feed_names)}); "
                "clsviz feeds an image classifier with exactly one image input",
                path=f.model_file,
            )

    def forward(self, batch: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype), allow_pickle=False)
        if self.worker is None:
            raise EngineError("this classifier is closed", path=self.files.model_file)
        reply, data = self.worker.request(
            {"cmd": "run", "fetch": self.config.output_index}, buf.getvalue(), where=self.files.model_file
        )
        if not reply.get("ok"):
            raise _worker_error(reply, self.files, "run")
        return np.load(io.BytesIO(data), allow_pickle=False)

    def describe(self) -> str:
        return "paddle.static.load_inference_model + Executor · ProgramDesc (worker process, FLAGS_enable_pir_api=0)"

    def close(self):
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit anything may be gone already
            pass


def dygraph_from_program(files, config, options, *, source=""):
    """``dygraph`` mode for an inference model with no checkpoint: rebuild the program as a Layer."""
    net, cfg = program_to_layer(files, config)
    return DygraphClassifier(f"program:{files.model_file.name}", None, cfg, options, net=net, source=source)
