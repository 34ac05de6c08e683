"""Mode ``dygraph``: training engine + checkpoint (network rebuilt from code)."""

from __future__ import annotations

import numpy as np

from .._paddle import dygraph_mode, on_place, paddle
from .._translate import run_error
from ..archs import get_model
from ..archs.layers import SoftmaxHead
from ..checkpoint import load_into, load_state_dict
from ..errors import EngineError
from .base import Classifier, RawCall, require_fp32_engine_options


class DygraphClassifier(Classifier):
    mode = "dygraph"

    def __init__(
        self, arch: str, state: dict | None, config, options, *, checkpoint=None, net=None, trust=False, source=""
    ):
        self.arch = arch
        self._state = state
        self._checkpoint = checkpoint
        self._net = net
        self._trust = trust
        super().__init__(config, options, source=source or str(checkpoint or arch))

    def _build(self):
        o = self.options
        require_fp32_engine_options(o, self.mode)
        self.place = paddle.CUDAPlace(o.gpu_id) if o.use_gpu else paddle.CPUPlace()
        with dygraph_mode(), on_place(self.place):  # not paddle.set_device: that would outlive the build
            if self._net is None:
                state = self._state if self._state is not None else load_state_dict(self._checkpoint, trust=self._trust)
                net = get_model(
                    self.arch,
                    class_num=self.config.class_num,  # type: ignore[arg-type]  # None: ArchitectureError
                    **dict(self.config.arch_kwargs),
                )
                load_into(net, state, path=self._checkpoint)
                self._state = None  # the network owns the weights now
            else:
                net = self._net
            if self.config.softmax and not isinstance(net, SoftmaxHead):
                net = SoftmaxHead(net)
            net.eval()
            self.net = net

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self.threads_scope(), dygraph_mode(), paddle.no_grad():
            try:
                x = paddle.to_tensor(np.ascontiguousarray(batch, dtype=self.config.preprocess.dtype), place=self.place)
                out = self.net(x)
            except Exception as e:
                raise run_error(
                    e, "dygraph forward", batch.shape, path=self.source, image_shape=self.config.image_shape
                ) from e
            if isinstance(out, (list, tuple)):
                out = out[0]
            if isinstance(out, dict):
                raise EngineError(
                    "the network returns a dict, not a class vector",
                    path=self.source,
                    hint="is this an image classifier?",
                )
            return out.numpy()

    def raw_call(self) -> RawCall:
        net, place = self.net, self.place

        def raw(x):
            with paddle.no_grad():
                out = net(paddle.to_tensor(x, place=place))
            return (out[0] if isinstance(out, (list, tuple)) else out).numpy()

        return RawCall(raw)

    def describe(self) -> str:
        return f"dygraph {self.arch} · {'GPU' if self.options.use_gpu else 'CPU'} · eval, no_grad"
