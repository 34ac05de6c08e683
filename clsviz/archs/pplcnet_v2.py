"""PP-LCNetV2 (PaddleClas ``PPLCNetV2_small/base/large``; PaddleX ``PP-LCNetV2_…``).

Written for clsviz; state-dict names and shapes are PaddleClas 2.x ones:

    stem.0.{conv,bn}.*                     3x3/2 conv
    stem.1.dw_conv.{conv,bn}.*, stem.1.pw_conv.{conv,bn}.*
    stages.{s}.{i}.dw_conv_list.{j}.{conv,bn}.*   re-parameterisable depthwise branches
    stages.{s}.{i}.dw_conv.{weight,bias}          their fused form (trained checkpoints carry it)
    stages.{s}.{i}.se.conv{1,2}.*, .pw_conv[_1|_2].{conv,bn}.*
    last_conv.weight, fc.weight, fc.bias

Facts that change the numbers: a re-parameterisable block sums depthwise
conv+BN branches of kernel k, k-2, …, 1 (the 1x1 branch only at stride 1) and
then applies the activation; its fused ``dw_conv`` is not used until a model is
re-parameterised, so the branches are what eval mode runs.  A plain block's
depthwise conv is always followed by ReLU.  The SE gate here is a true
sigmoid.  The head is MobileNet-style with ``Dropout(p=0.2, downscale_in_infer)``.
"""

from __future__ import annotations

from typing import Any

from .._paddle import paddle
from .layers import ConvBN, SqueezeExcite, activation, add_expand_head, expand_head_forward, make_divisible
from .registry import register_model

nn: Any = paddle.nn

#: stage -> (in channels at scale 1, depthwise kernel, split pointwise, re-param, SE, shortcut)
STAGES = (
    (64, 3, False, False, False, False),
    (128, 3, False, False, False, False),
    (256, 5, True, True, True, False),
    (512, 5, False, True, False, True),
)
VARIANTS = {"small": (0.75, (2, 2, 4, 2)), "base": (1.0, (2, 2, 6, 2)), "large": (1.25, (2, 2, 8, 2))}


class RepDepthwiseSeparable(nn.Layer):
    def __init__(
        self, cin, cout, stride, k=3, *, split_pw=False, use_rep=False, use_se=False, use_shortcut=False, act="relu"
    ):
        super().__init__()
        self.use_rep, self.use_se, self.split_pw = use_rep, use_se, split_pw
        self.use_shortcut = use_shortcut and stride == 1 and cin == cout
        if use_rep:
            self.dw_conv_list = nn.LayerList(
                [ConvBN(cin, cin, ks, stride, groups=cin) for ks in range(k, 0, -2) if not (ks == 1 and stride != 1)]
            )
            self.dw_conv = nn.Conv2D(cin, cin, k, stride, padding=(k - 1) // 2, groups=cin)
        else:
            self.dw_conv = ConvBN(cin, cin, k, stride, groups=cin, act="relu")
        self.act = activation(act)
        if use_se:
            self.se = SqueezeExcite(cin, act=act, gate="sigmoid")
        if split_pw:
            mid = int(cout * 0.5)
            self.pw_conv_1 = ConvBN(cin, mid, 1, act=act)
            self.pw_conv_2 = ConvBN(mid, cout, 1, act=act)
        else:
            self.pw_conv = ConvBN(cin, cout, 1, act=act)

    def forward(self, x):
        identity = x
        if self.use_rep:
            y = self.dw_conv_list[0](x)
            for branch in self.dw_conv_list[1:]:
                y = y + branch(x)
            x = self.act(y)
        else:
            x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        x = self.pw_conv_2(self.pw_conv_1(x)) if self.split_pw else self.pw_conv(x)
        return x + identity if self.use_shortcut else x


class PPLCNetV2(nn.Layer):
    """PP-LCNetV2 at width ``scale`` with ``depths`` blocks per stage."""

    def __init__(
        self,
        scale: float,
        depths,
        class_num: int = 1000,
        *,
        dropout_prob: float = 0.0,
        use_last_conv: bool = True,
        class_expand: int = 1280,
        act: str = "relu",
    ):
        super().__init__()
        md = make_divisible
        self.stem = nn.Sequential(
            ConvBN(3, md(32 * scale), 3, 2, act=act),
            RepDepthwiseSeparable(md(32 * scale), md(64 * scale), 1, 3, act=act),
        )
        self.stages = nn.LayerList()
        for (cin, k, split_pw, use_rep, use_se, shortcut), n in zip(STAGES, depths):
            self.stages.append(
                nn.Sequential(
                    *[
                        RepDepthwiseSeparable(
                            md((cin if i == 0 else cin * 2) * scale),
                            md(cin * 2 * scale),
                            2 if i == 0 else 1,
                            k,
                            split_pw=split_pw,
                            use_rep=use_rep,
                            use_se=use_se,
                            use_shortcut=shortcut,
                            act=act,
                        )
                        for i in range(n)
                    ]
                )
            )
        add_expand_head(
            self,
            md(STAGES[-1][0] * 2 * scale),
            class_num,
            use_last_conv=use_last_conv,
            class_expand=class_expand,
            act=act,
            dropout_prob=dropout_prob,
        )

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return expand_head_forward(self, x)


def _make(scale, depths):
    def build(class_num: int = 1000, **kw):
        kw.setdefault("dropout_prob", 0.2)
        return PPLCNetV2(scale, depths, class_num, **kw)

    build.__doc__ = f"PP-LCNetV2 (scale {scale}, depths {list(depths)}): re-parameterisable mobile CPU network"
    return build


for _v, (_scale, _depths) in VARIANTS.items():
    register_model(f"PPLCNetV2_{_v}", family="PP-LCNetV2", paddlex_name=f"PP-LCNetV2_{_v}")(_make(_scale, _depths))
