"""MobileNetV3 small and large, x0_35 … x1_25 (PaddleClas and PaddleX ``MobileNetV3_{small,large}_x…``).

Written for clsviz from the published architecture (Howard et al., 2019); the
state-dict names and shapes are PaddleClas 2.x ``legendary_models`` ones:

    conv.{conv,bn}.*                                  3x3/2 stem, hard-swish
    blocks.{i}.expand_conv / bottleneck_conv / linear_conv.{conv,bn}.*
    blocks.{i}.mid_se.conv{1,2}.{weight,bias}
    last_second_conv.{conv,bn}.*, last_conv.weight, fc.weight, fc.bias

Facts that change the numbers: every block has a 1x1 expand conv (also when
the expansion is 1); the SE gate is ``hardsigmoid(slope=0.2, offset=0.5)`` —
not Paddle's default slope of 1/6 that PP-LCNet uses; the head is
``last_second_conv`` → pool → 1x1 ``last_conv`` (1280) → hard-swish →
``Dropout(p=0.2, downscale_in_infer)`` (× 0.8 at inference) → ``fc``.
"""

from __future__ import annotations

from typing import Any

from .._paddle import paddle
from .layers import ConvBN, SqueezeExcite, add_expand_head, expand_head_forward, make_divisible
from .registry import register_model
from .specs import MOBILENET_V3, MOBILENET_V3_SCALES, MOBILENET_V3_SQUEEZE

nn: Any = paddle.nn

CONFIG = MOBILENET_V3
SQUEEZE = MOBILENET_V3_SQUEEZE
SCALES = MOBILENET_V3_SCALES
SE_SLOPE = 0.2


class ResidualUnit(nn.Layer):
    def __init__(self, cin, mid, cout, k, stride, se, act):
        super().__init__()
        self.shortcut = stride == 1 and cin == cout
        self.use_se = se
        self.expand_conv = ConvBN(cin, mid, 1, act=act)
        self.bottleneck_conv = ConvBN(mid, mid, k, stride, groups=mid, act=act)
        if se:
            self.mid_se = SqueezeExcite(mid, slope=SE_SLOPE, offset=0.5)
        self.linear_conv = ConvBN(mid, cout, 1)

    def forward(self, x):
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.use_se:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.shortcut else y


class MobileNetV3(nn.Layer):
    """MobileNetV3 ``size`` ("small" or "large") at width ``scale``.

    ``dropout_prob=None`` removes the dropout (PaddleClas allows it); ``inplanes``,
    ``class_squeeze`` and ``class_expand`` are PaddleClas's head/stem widths.
    """

    def __init__(
        self,
        size: str = "large",
        scale: float = 1.0,
        class_num: int = 1000,
        *,
        inplanes: int = 16,
        class_squeeze: int | None = None,
        class_expand: int = 1280,
        dropout_prob: float | None = 0.2,
    ):
        super().__init__()
        cfg = CONFIG[size]
        squeeze = SQUEEZE[size] if class_squeeze is None else class_squeeze
        md = make_divisible
        self.conv = ConvBN(3, md(inplanes * scale), 3, 2, act="hardswish")
        self.blocks = nn.Sequential(
            *[
                ResidualUnit(
                    md(inplanes * scale if i == 0 else cfg[i - 1][2] * scale),
                    md(scale * exp),
                    md(scale * c),
                    k,
                    s,
                    se,
                    act,
                )
                for i, (k, exp, c, se, act, s) in enumerate(cfg)
            ]
        )
        self.last_second_conv = ConvBN(md(cfg[-1][2] * scale), md(scale * squeeze), 1, act="hardswish")
        add_expand_head(
            self, md(scale * squeeze), class_num, class_expand=class_expand, act="hardswish", dropout_prob=dropout_prob
        )

    def forward(self, x):
        x = self.last_second_conv(self.blocks(self.conv(x)))
        return expand_head_forward(self, x)


def _make(size, scale):
    def build(class_num: int = 1000, **kw):
        return MobileNetV3(size, scale, class_num, **kw)

    build.__doc__ = f"MobileNetV3 {size} x{scale} (PaddleClas legendary_models names)"
    return build


for _size in CONFIG:
    for _tag, _scale in SCALES.items():
        _name = f"MobileNetV3_{_size}_{_tag}"
        register_model(_name, family="MobileNetV3", paddlex_name=_name)(_make(_size, _scale))
