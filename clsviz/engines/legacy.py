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
import json
import os
import subprocess
import sys
import threading

import numpy as np

from ..errors import EngineError, FormatError
from .base import Classifier, require_fp32_engine_options


class _Worker:
    def __init__(self):
        env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel=os.environ.get("GLOG_minloglevel", "2"))
        self.proc = subprocess.Popen([sys.executable, "-m", "clsviz.engines._legacy_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self._stderr = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        self.lock = threading.Lock()

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))
            del self._stderr[:-50]

    def request(self, header: dict, payload: bytes = b"", *, where=None):
        from ._legacy_worker import _recv, _send

        with self.lock:
            try:
                _send(self.proc.stdin, header, payload)
                reply, data = _recv(self.proc.stdout)
            except (BrokenPipeError, OSError, ValueError):
                reply, data = None, b""
            if reply is None:
                code = self.proc.wait(timeout=10)
                tail = "".join(self._stderr[-3:]).strip().splitlines()[-1:] or [""]
                raise EngineError(f"the legacy executor process died (exit {code}) during "
                                  f"{header.get('cmd')}: {tail[0][:200]}", path=where,
                                  hint="the model files are probably damaged; your session is unaffected")
            return reply, data

    def close(self):
        if self.proc.poll() is None:
            try:
                from ._legacy_worker import _send

                _send(self.proc.stdin, {"cmd": "exit"})
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()


def _worker_error(reply: dict, files, what: str) -> Exception:
    from .predictor import _first_line

    msg = _first_line(Exception(reply.get("error", "")))
    low = reply.get("error", "").lower()
    if what == "load":
        if any(s in low for s in ("parse", "protobuf", "deserial", "magic")):
            return FormatError(f"cannot read the legacy program: {msg}", path=files.model_file)
        return FormatError(f"cannot load the legacy model: {msg}", path=files.params_file or files.root,
                           hint="are the parameters truncated or from another model?")
    return EngineError(f"legacy executor run failed: {msg}", path=files.model_file)


class LegacyExecutorClassifier(Classifier):
    """``executor`` mode for ProgramDesc models, run in a ``FLAGS_enable_pir_api=0`` worker."""

    mode = "executor"
    isolation = "worker process"

    def __init__(self, files, config, options, *, source=""):
        self.files = files
        self.worker = None
        super().__init__(config, options, source=source)

    def _build(self):
        o, f = self.options, self.files
        require_fp32_engine_options(o, self.mode)
        if f.model_file.suffix == ".pdmodel" and f.params_file is not None \
                and f.params_file.name == f.model_file.with_suffix(".pdiparams").name:
            req = {"path": str(f.model_file.with_suffix(""))}
        else:  # fluid layout: a folder + file names (params None = loose files)
            req = {"path": str(f.model_file.parent), "model_filename": f.model_file.name,
                   "params_filename": None if f.params_file is None else os.path.relpath(
                       f.params_file, f.model_file.parent)}
        self.worker = _Worker()
        reply, _ = self.worker.request(dict(req, cmd="load", use_gpu=o.use_gpu, gpu_id=o.gpu_id),
                                       where=f.model_file)
        if not reply.get("ok"):
            self.close()
            raise _worker_error(reply, f, "load")
        self.feed_names = reply["feeds"]
        if len(self.feed_names) != 1:
            self.close()
            raise EngineError(f"the model has {len(self.feed_names)} inputs ({', '.join(self.feed_names)}); "
                              "clsviz feeds an image classifier with exactly one image input",
                              path=f.model_file)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype), allow_pickle=False)
        reply, data = self.worker.request({"cmd": "run", "fetch": self.config.output_index}, buf.getvalue(),
                                          where=self.files.model_file)
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
        except Exception:
            pass


def dygraph_from_program(files, config, options, *, source=""):
    """``dygraph`` mode for an inference model with no checkpoint: rebuild the program as a Layer."""
    try:
        from ..formats.rebuild import program_to_layer
    except ImportError:  # pragma: no cover - until the rebuild lands
        raise FormatError(f"mode 'dygraph' needs the network code and a checkpoint; this is a "
                          f"{files.kind.replace('_', ' ')} with no .pdparams", path=files.root,
                          hint="pass a checkpoint and arch=, or use mode='predictor'/'executor'")
    from .dygraph import DygraphClassifier

    net, cfg = program_to_layer(files, config)
    return DygraphClassifier(f"program:{files.model_file.name}", None, cfg, options, net=net, source=source)
