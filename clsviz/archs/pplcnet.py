"""PP-LCNet (PaddleClas ``PPLCNet_x0_25`` … ``PPLCNet_x2_5``; PaddleX ``PP-LCNet_x…``).

Written for clsviz from the published architecture; the state-dict names and
shapes are PaddleClas 2.x ``legendary_models`` ones, so ``*_pretrained.pdparams``
and PaddleX checkpoints load strictly:

    conv1.{conv,bn}.*
    blocks{2..6}.{i}.dw_conv.{conv,bn}.*, .se.conv{1,2}.{weight,bias}, .pw_conv.{conv,bn}.*
    last_conv.weight [class_expand, C, 1, 1],  fc.weight [class_expand, class_num], fc.bias

Facts that change the numbers: every conv is followed by BN and hard-swish;
the SE gate is ``hardsigmoid`` with Paddle's default slope 0.1666667 (not
MobileNetV3's 0.2) and a ReLU inside; the head is pool → 1x1 ``last_conv`` to
``class_expand`` (1280) → hard-swish → ``Dropout(p=0.2, mode="downscale_in_infer")``,
which multiplies by 0.8 at inference → ``fc``.
"""

from __future__ import annotations

from typing import Any

from .._paddle import paddle
from .layers import ConvBN, SqueezeExcite, add_expand_head, expand_head_forward, make_divisible
from .registry import register_model

nn: Any = paddle.nn

#: stage name -> blocks (kernel, in channels, out channels, stride, SE) at scale 1.0
BLOCKS = (
    ("blocks2", ((3, 16, 32, 1, False),)),
    ("blocks3", ((3, 32, 64, 2, False), (3, 64, 64, 1, False))),
    ("blocks4", ((3, 64, 128, 2, False), (3, 128, 128, 1, False))),
    ("blocks5", ((3, 128, 256, 2, False),) + ((5, 256, 256, 1, False),) * 5),
    ("blocks6", ((5, 256, 512, 2, True), (5, 512, 512, 1, True))),
)
SCALES = {"x0_25": 0.25, "x0_35": 0.35, "x0_5": 0.5, "x0_75": 0.75, "x1_0": 1.0, "x1_5": 1.5, "x2_0": 2.0, "x2_5": 2.5}


def _stride(s):
    return tuple(int(v) for v in s) if isinstance(s, (list, tuple)) else int(s)


class DepthwiseSeparable(nn.Layer):
    def __init__(self, cin, cout, k, stride, se, act):
        super().__init__()
        self.dw_conv = ConvBN(cin, cin, k, stride, groups=cin, act=act)
        self.use_se = se
        if se:
            self.se = SqueezeExcite(cin)  # ReLU inside, hardsigmoid(slope 0.1666667) gate
        self.pw_conv = ConvBN(cin, cout, 1, act=act)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNet(nn.Layer):
    """PP-LCNet at width ``scale``.

    ``stride_list`` holds five strides (stem, then the first block of stages 3-6);
    an entry may be an ``[h, w]`` pair, as PaddleClas's text-line orientation
    configs use (``[2, [2, 1], [2, 1], [2, 1], [2, 1]]``).  ``lr_mult_list`` is
    accepted for config compatibility and only matters for training.
    """

    def __init__(
        self,
        scale: float = 1.0,
        class_num: int = 1000,
        *,
        dropout_prob: float = 0.2,
        class_expand: int = 1280,
        use_last_conv: bool = True,
        act: str = "hardswish",
        stride_list=(2, 2, 2, 2, 2),
        lr_mult_list=None,
    ):
        super().__init__()
        if len(stride_list) != 5:
            raise ValueError(f"stride_list needs 5 entries (stem + 4 stages), got {list(stride_list)}")
        if lr_mult_list is not None and len(lr_mult_list) != 6:
            raise ValueError(f"lr_mult_list needs 6 entries, got {list(lr_mult_list)}")
        self.scale = scale
        self.conv1 = ConvBN(3, make_divisible(16 * scale), 3, _stride(stride_list[0]), act=act)
        for stage, (name, blocks) in enumerate(BLOCKS):
            layers = []
            for i, (k, cin, cout, s, se) in enumerate(blocks):
                if i == 0 and stage > 0:
                    s = _stride(stride_list[stage])
                layers.append(
                    DepthwiseSeparable(make_divisible(cin * scale), make_divisible(cout * scale), k, s, se, act)
                )
            setattr(self, name, nn.Sequential(*layers))
        add_expand_head(
            self,
            make_divisible(BLOCKS[-1][1][-1][2] * scale),
            class_num,
            use_last_conv=use_last_conv,
            class_expand=class_expand,
            act=act,
            dropout_prob=dropout_prob,
        )

    def forward(self, x):
        x = self.conv1(x)
        for name, _ in BLOCKS:
            x = getattr(self, name)(x)
        return expand_head_forward(self, x)


def _make(scale):
    def build(class_num: int = 1000, **kw):
        return PPLCNet(scale, class_num, **kw)

    build.__doc__ = f"PP-LCNet x{scale}: depthwise-separable mobile CPU network (PaddleClas PPLCNet)"
    return build


for _tag, _scale in SCALES.items():
    register_model(f"PPLCNet_{_tag}", family="PP-LCNet", paddlex_name=f"PP-LCNet_{_tag}")(_make(_scale))
