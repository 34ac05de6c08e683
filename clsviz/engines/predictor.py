"""Mode ``predictor``: inference engine (``paddle.inference``) + inference model."""

from __future__ import annotations

import numpy as np

from .._paddle import bf16_available, gpu_available, paddle, quiet, tensorrt_available, threads_scope
from .._translate import load_error, run_error
from ..errors import BackendUnavailable, EngineError
from .base import Classifier, RawCall
from .probe import ensure_loadable


class PredictorClassifier(Classifier):
    mode = "predictor"

    def __init__(self, files, config, options, *, source=""):
        self.files = files
        super().__init__(config, options, source=source)

    def _config(self):
        o, f = self.options, self.files
        if f.params_file is not None:
            cfg = paddle.inference.Config(str(f.model_file), str(f.params_file))
        else:  # fluid: __model__ + loose parameter files in the same folder
            cfg = paddle.inference.Config(str(f.model_file.parent))
            if f.model_file.name != "__model__":
                cfg.set_model(str(f.model_file), "")
        if o.use_gpu:
            ok, why = gpu_available()
            if not ok:
                raise BackendUnavailable(f"use_gpu requested but {why}")
            cfg.enable_use_gpu(o.gpu_mem, o.gpu_id)
            if o.use_tensorrt:
                ok, why = tensorrt_available()
                if not ok:
                    raise BackendUnavailable(f"use_tensorrt requested but {why}")
                prec = {
                    "fp32": paddle.inference.PrecisionType.Float32,
                    "fp16": paddle.inference.PrecisionType.Half,
                    "int8": paddle.inference.PrecisionType.Int8,
                    "bf16": paddle.inference.PrecisionType.Bfloat16,
                }[o.precision]
                cfg.enable_tensorrt_engine(
                    workspace_size=1 << 30,
                    max_batch_size=o.batch_size,
                    min_subgraph_size=3,
                    precision_mode=prec,
                    use_static=False,
                    use_calib_mode=o.precision == "int8",
                )
            elif o.precision == "fp16":
                cfg.enable_use_gpu(o.gpu_mem, o.gpu_id, paddle.inference.PrecisionType.Half)
            elif o.precision in ("bf16", "int8"):
                raise BackendUnavailable(f"precision {o.precision} on GPU needs use_tensorrt=True")
        else:
            if o.use_tensorrt:
                raise BackendUnavailable("use_tensorrt requested without use_gpu: TensorRT runs on the GPU only")
            cfg.disable_gpu()
            cfg.set_cpu_math_library_num_threads(o.threads)
            if o.precision == "fp16":
                raise BackendUnavailable("fp16 is not available on CPU; use precision='bf16' or 'fp32'")
            if o.precision == "int8":
                raise BackendUnavailable("int8 on CPU needs a quantised model; this one is fp32")
            if o.precision == "bf16":
                ok, why = bf16_available()
                if not ok:
                    raise BackendUnavailable(f"bf16 requested but {why}")
                if not o.mkldnn:
                    raise BackendUnavailable("bf16 on CPU runs through oneDNN; do not disable enable_mkldnn")
            if o.mkldnn:
                cfg.enable_onednn()
                cfg.set_onednn_cache_capacity(10)  # cache kernels for up to 10 input shapes
                if o.precision == "bf16":
                    cfg.enable_onednn_bfloat16()
            else:
                cfg.disable_onednn()
        cfg.switch_ir_optim(o.ir_optim)
        cfg.disable_glog_info()
        # NB: enable_memory_optim() makes create_predictor fail under PIR (Paddle 3.3).
        return cfg

    def _build(self):
        cfg = self._config()

        ensure_loadable(
            self.files,
            mode="predictor",
            options=self.options,  # Paddle segfaults on
            image_shape=self.config.preprocess.item_shape,
            dtype=self.config.preprocess.dtype,
        )  # some malformed programs
        try:
            with quiet(), threads_scope(None):  # building sets the process-wide count: put it back
                self.predictor = paddle.inference.create_predictor(cfg)
        except Exception as e:
            raise load_error(e, self.files) from e
        names = self.predictor.get_input_names()
        if len(names) != 1:
            raise EngineError(
                f"the model has {len(names)} inputs ({', '.join(names)}); clsviz feeds an "
                "image classifier with exactly one image input",
                path=self.files.model_file,
            )
        self._in = self.predictor.get_input_handle(names[0])
        self._out = self.predictor.get_output_handle(
            _pick(self.predictor.get_output_names(), self.config, self.files.model_file)
        )

    def forward(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype)
        try:
            self._in.reshape(list(batch.shape))
            self._in.copy_from_cpu(batch)
            with self.threads_scope():  # the count the predictor was built with, then the caller's
                self.predictor.run()
            return self._out.copy_to_cpu()
        except Exception as e:
            raise run_error(
                e, "predictor run", batch.shape, path=self.files.model_file, image_shape=self.config.image_shape
            ) from e

    def raw_call(self) -> RawCall:
        inp, out, pred = self._in, self._out, self.predictor

        def raw(x):
            inp.reshape(list(x.shape))
            inp.copy_from_cpu(x)
            pred.run()
            return out.copy_to_cpu()

        return RawCall(raw)

    def describe(self) -> str:
        o = self.options
        dev = (
            "GPU" + (" + TensorRT" if o.use_tensorrt else "") if o.use_gpu else ("CPU + oneDNN" if o.mkldnn else "CPU")
        )
        return f"paddle.inference predictor · {dev} · {o.precision} · IR optim {'on' if o.ir_optim else 'off'}"

    def close(self):
        self.predictor = None


def _pick(names: list, config, where) -> str:
    """The output to score: the signature's choice (``config.output_index``), by position."""
    i = config.output_index
    if not 0 <= i < len(names):
        raise EngineError(f"the model has {len(names)} outputs; output #{i} was asked for", path=where)
    return names[i]
