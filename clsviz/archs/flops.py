"""Multiply-accumulates (and FLOPs) of a network, counted by running it once.

Lives beside the architectures so ``list_models`` statistics, ``docs/architectures.md``
and the latency lab (``clsviz.bench``) share one counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._paddle import dygraph_mode, paddle
from .registry import get_model, state_signature

__all__ = ["FlopCount", "count_flops", "count_params", "measure"]


@dataclass(frozen=True)
class FlopCount:
    """Multiply-accumulates of a network's conv and linear layers for one input shape."""

    macs: int
    layers: tuple[tuple[str, str, int], ...]  # (name, kind, macs)
    input_shape: tuple[int, ...]

    @property
    def flops(self) -> int:
        """FLOPs = 2 × MACs (a multiply and an add each); BN/ReLU/pool/bias are not counted."""
        return 2 * self.macs

    def to_dict(self) -> dict:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "gmacs": round(self.macs / 1e9, 4),
            "gflops": round(self.flops / 1e9, 4),
            "layers": len(self.layers),
            "input_shape": list(self.input_shape),
            "counted": "Conv2D, Conv2DTranspose, Linear (multiply-accumulates); "
            "BatchNorm, activations, pooling and bias adds are not counted",
        }


def count_flops(net, input_shape=(1, 3, 224, 224)) -> FlopCount:
    """Count MACs by running ``net`` once with forward hooks on its conv and linear layers.

    Conv: MACs = output elements × (C_in / groups) × k_h × k_w  (= prod(out) × prod(weight[1:])).
    Conv-transpose: MACs = input elements × C_out/groups × k_h × k_w.
    Linear: MACs = output elements × in_features.
    """
    nn = paddle.nn
    conv = (nn.Conv1D, nn.Conv2D, nn.Conv3D)
    convt = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
    rows: list = []
    hooks = []

    def hook(name):
        def fn(layer, inputs, output):
            out = output[0] if isinstance(output, (list, tuple)) else output
            w = list(layer.weight.shape)
            if isinstance(layer, convt):
                x = inputs[0]
                macs = int(np.prod(x.shape)) * int(np.prod(w[1:]))
                kind = "convT"
            elif isinstance(layer, conv):
                macs = int(np.prod(out.shape)) * int(np.prod(w[1:]))
                kind = "conv"
            else:  # Linear: weight [in, out]
                macs = int(np.prod(out.shape)) * int(w[0])
                kind = "linear"
            rows.append((name, kind, macs))

        return fn

    with dygraph_mode():
        for name, layer in net.named_sublayers(include_self=True):
            if isinstance(layer, conv + convt + (nn.Linear,)):
                hooks.append(layer.register_forward_post_hook(hook(name)))
        was_training = net.training
        net.eval()
        try:
            with paddle.no_grad():
                net(paddle.zeros(list(input_shape), dtype="float32"))
        finally:
            for h in hooks:
                h.remove()
            if was_training:
                net.train()
    return FlopCount(sum(r[2] for r in rows), tuple(rows), tuple(int(v) for v in input_shape))


def count_params(net, *, trainable_only: bool = True) -> int:
    """Parameters of ``net``; by default the trainable ones, as model zoos report them.

    Paddle keeps BatchNorm running statistics among ``parameters()`` (not trainable);
    ``trainable_only=False`` counts them too.
    """
    return int(sum(int(np.prod(p.shape)) for p in net.parameters() if p.trainable or not trainable_only))


def measure(name: str, *, size: int = 224) -> dict:
    """Parameters, MACs (1000 classes, one ``size``² RGB image) and state signature of an architecture.

    What ``clsviz/data/architectures.json`` stores for :func:`clsviz.list_models`.
    """
    net = get_model(name, class_num=1000)
    return {
        "params": count_params(net),
        "macs": count_flops(net, (1, 3, size, size)).macs,
        "signature": state_signature({k: tuple(v.shape) for k, v in net.state_dict().items()}),
    }
