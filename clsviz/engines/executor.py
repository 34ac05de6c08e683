"""Mode ``executor``: training engine + inference model.

``paddle.static.load_inference_model`` + ``Executor.run`` in a private scope.
Static mode is global state in Paddle, so every entry into it is scoped and
the caller's dygraph mode is restored afterwards.
"""

from __future__ import annotations

import numpy as np

from .._paddle import paddle, pir_enabled, quiet, static_mode
from .._translate import load_error, run_error
from ..errors import EngineError
from .base import Classifier, RawCall, require_fp32_engine_options
from .probe import ensure_loadable


class ExecutorClassifier(Classifier):
    mode = "executor"

    def __init__(self, files, config, options, *, source=""):
        self.files = files
        super().__init__(config, options, source=source)

    def _build(self):
        o = self.options
        require_fp32_engine_options(o, self.mode)
        place = paddle.CUDAPlace(o.gpu_id) if o.use_gpu else paddle.CPUPlace()
        f = self.files

        ensure_loadable(
            f,
            mode="executor",
            options=o,  # Paddle segfaults on some malformed programs
            image_shape=self.config.preprocess.item_shape,
            dtype=self.config.preprocess.dtype,
        )
        prefix = str(f.model_file.with_suffix(""))
        with static_mode():
            self.scope = paddle.static.Scope()
            self.exe = paddle.static.Executor(place)
            try:
                with paddle.static.scope_guard(self.scope), quiet():
                    self.program, self.feed_names, self.fetch_targets = paddle.static.load_inference_model(
                        prefix, self.exe
                    )
            except Exception as e:
                raise load_error(e, f) from e
        if len(self.feed_names) != 1:
            raise EngineError(
                f"the model has {len(self.feed_names)} inputs ({', '.join(self.feed_names)}); "
                "clsviz feeds an image classifier with exactly one image input",
                path=f.model_file,
            )
        if not 0 <= self.config.output_index < len(self.fetch_targets):
            raise EngineError(
                f"the model has {len(self.fetch_targets)} outputs; output #{self.config.output_index} was asked for",
                path=f.model_file,
            )

    def forward(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype)
        with self.threads_scope(), static_mode(), paddle.static.scope_guard(self.scope):
            try:
                # a PIR program returns every fetch whatever the fetch_list: pick the scored one
                outs = self.exe.run(self.program, feed={self.feed_names[0]: batch}, fetch_list=list(self.fetch_targets))
                out = outs[self.config.output_index]
            except Exception as e:
                raise run_error(
                    e, "executor run", batch.shape, path=self.files.model_file, image_shape=self.config.image_shape
                ) from e
        return np.asarray(out)

    def raw_call(self) -> RawCall:
        exe, prog, scope = self.exe, self.program, self.scope
        feed, fetch, i = self.feed_names[0], list(self.fetch_targets), self.config.output_index

        def raw(x):
            with paddle.static.scope_guard(scope):
                return exe.run(prog, feed={feed: x}, fetch_list=fetch)[i]

        return RawCall(raw, static_mode)

    def describe(self) -> str:
        return (
            f"paddle.static.load_inference_model + Executor · "
            f"{'PIR' if pir_enabled() else 'ProgramDesc'} · {'GPU' if self.options.use_gpu else 'CPU'}"
        )

    def close(self):
        scope = getattr(self, "scope", None)
        if scope is not None:
            # The Executor's cached interpreters hold the scope, and only the cycle collector
            # frees them: without this each load/close cycle kept the weights (+3.3 MB each
            # for ResNet18_vd_x0_25) until a gc pass.
            try:
                scope.erase(scope.local_var_names())
            except Exception:  # noqa: BLE001 - releasing memory must not raise
                pass
        exe = getattr(self, "exe", None)
        if exe is not None:
            # Paddle's Executor caches its interpreters (thread pools, ~2 MB) in an lru_cache that
            # refers back to the Executor, so only the cycle collector would free them: clear it.
            try:
                exe._executor_cache._get_cached_program_and_executor.cache_clear()
            except Exception:  # noqa: BLE001 - a private Paddle detail; releasing must not raise
                pass
        self.exe = None
        self.program = None
        self.scope = None
