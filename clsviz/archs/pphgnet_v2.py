"""PP-HGNetV2 B0 … B6 (PaddleClas ``PPHGNetV2_B0``; PaddleX ``PP-HGNetV2-B0``).

Written for clsviz; state-dict names and shapes are PaddleClas 2.x ones:

    stem.stem{1,2a,2b,3,4}.{conv,bn}.*[, .lab.{scale,bias}]
    stages.{s}.downsample.{conv,bn}.*                         3x3/2 depthwise, no activation
    stages.{s}.blocks.{b}.layers.{i}[.conv1|.conv2].{conv,bn}.*[, .lab.*]
    stages.{s}.blocks.{b}.aggregation_{squeeze,excitation}_conv.{conv,bn}.*[, .lab.*]
    last_conv.weight [2048, C, 1, 1], [lab.{scale,bias}], fc.weight, fc.bias

Facts that change the numbers: B0-B3 use *learnable affine blocks* (``lab``:
``scale * x + bias`` with scalar parameters) after every activation, including
the head's; B4-B6 do not.  The stem's two 2x2 convs and its 2x2 max-pool
(stride 1, ceil mode) pad "SAME", i.e. asymmetrically (0 before, 1 after).
A block concatenates its input with every layer's output, squeezes the
concatenation to ``out/2`` channels, excites it back to ``out``, and (after
the first block of a stage) adds its input.  Stages 3-4 use "light" layers:
a 1x1 conv without activation, then a k x k depthwise conv + ReLU.  The head's
dropout defaults to 0 (``downscale_in_infer``, so a checkpoint trained with
``dropout_prob`` p needs the same p here).
"""

from __future__ import annotations

from typing import Any

from .._paddle import paddle
from .layers import ConvBN, add_expand_head, expand_head_forward
from .registry import register_model

nn: Any = paddle.nn

#: variant -> (stem channels (mid, out), use_lab,
#:             stages: (in, mid, out, blocks, downsample, light, kernel, layers))
VARIANTS = {
    "B0": (
        (16, 16),
        True,
        (
            (16, 16, 64, 1, False, False, 3, 3),
            (64, 32, 256, 1, True, False, 3, 3),
            (256, 64, 512, 2, True, True, 5, 3),
            (512, 128, 1024, 1, True, True, 5, 3),
        ),
    ),
    "B1": (
        (24, 32),
        True,
        (
            (32, 32, 64, 1, False, False, 3, 3),
            (64, 48, 256, 1, True, False, 3, 3),
            (256, 96, 512, 2, True, True, 5, 3),
            (512, 192, 1024, 1, True, True, 5, 3),
        ),
    ),
    "B2": (
        (24, 32),
        True,
        (
            (32, 32, 96, 1, False, False, 3, 4),
            (96, 64, 384, 1, True, False, 3, 4),
            (384, 128, 768, 3, True, True, 5, 4),
            (768, 256, 1536, 1, True, True, 5, 4),
        ),
    ),
    "B3": (
        (24, 32),
        True,
        (
            (32, 32, 128, 1, False, False, 3, 5),
            (128, 64, 512, 1, True, False, 3, 5),
            (512, 128, 1024, 3, True, True, 5, 5),
            (1024, 256, 2048, 1, True, True, 5, 5),
        ),
    ),
    "B4": (
        (32, 48),
        False,
        (
            (48, 48, 128, 1, False, False, 3, 6),
            (128, 96, 512, 1, True, False, 3, 6),
            (512, 192, 1024, 3, True, True, 5, 6),
            (1024, 384, 2048, 1, True, True, 5, 6),
        ),
    ),
    "B5": (
        (32, 64),
        False,
        (
            (64, 64, 128, 1, False, False, 3, 6),
            (128, 128, 512, 2, True, False, 3, 6),
            (512, 256, 1024, 5, True, True, 5, 6),
            (1024, 512, 2048, 2, True, True, 5, 6),
        ),
    ),
    "B6": (
        (48, 96),
        False,
        (
            (96, 96, 192, 2, False, False, 3, 6),
            (192, 192, 512, 3, True, False, 3, 6),
            (512, 384, 1024, 6, True, True, 5, 6),
            (1024, 768, 2048, 3, True, True, 5, 6),
        ),
    ),
}


class Stem(nn.Layer):
    def __init__(self, cin, mid, cout, lab):
        super().__init__()
        self.stem1 = ConvBN(cin, mid, 3, 2, act="relu", lab=lab)
        self.stem2a = ConvBN(mid, mid // 2, 2, 1, act="relu", lab=lab, padding="SAME")
        self.stem2b = ConvBN(mid // 2, mid, 2, 1, act="relu", lab=lab, padding="SAME")
        self.stem3 = ConvBN(mid * 2, mid, 3, 2, act="relu", lab=lab)
        self.stem4 = ConvBN(mid, cout, 1, act="relu", lab=lab)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")

    def forward(self, x):
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        x = paddle.concat([self.pool(x), x2], axis=1)
        return self.stem4(self.stem3(x))


class LightConv(nn.Layer):
    """1x1 conv + BN (no activation), then k x k depthwise conv + BN + ReLU."""

    def __init__(self, cin, cout, k, lab):
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 1, lab=lab)
        self.conv2 = ConvBN(cout, cout, k, groups=cout, act="relu", lab=lab)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class HGBlock(nn.Layer):
    def __init__(self, cin, mid, cout, k, layer_num, *, identity, light, lab):
        super().__init__()
        self.identity = identity
        self.layers = nn.LayerList(
            [
                LightConv(cin if i == 0 else mid, mid, k, lab)
                if light
                else ConvBN(cin if i == 0 else mid, mid, k, act="relu", lab=lab)
                for i in range(layer_num)
            ]
        )
        self.aggregation_squeeze_conv = ConvBN(cin + layer_num * mid, cout // 2, 1, act="relu", lab=lab)
        self.aggregation_excitation_conv = ConvBN(cout // 2, cout, 1, act="relu", lab=lab)

    def forward(self, x):
        outs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outs.append(y)
        y = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(paddle.concat(outs, axis=1)))
        return y + x if self.identity else y


class HGStage(nn.Layer):
    def __init__(self, cin, mid, cout, blocks, downsample, light, k, layer_num, lab):
        super().__init__()
        self.is_downsample = downsample
        if downsample:
            self.downsample = ConvBN(cin, cin, 3, 2, groups=cin, lab=lab)
        self.blocks = nn.Sequential(
            *[
                HGBlock(cin if i == 0 else cout, mid, cout, k, layer_num, identity=i > 0, light=light, lab=lab)
                for i in range(blocks)
            ]
        )

    def forward(self, x):
        if self.is_downsample:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNetV2(nn.Layer):
    """PP-HGNetV2 ``variant`` ("B0" … "B6")."""

    def __init__(
        self,
        variant: str = "B0",
        class_num: int = 1000,
        *,
        use_last_conv: bool = True,
        class_expand: int = 2048,
        dropout_prob: float = 0.0,
        lr_mult_list=None,
    ):
        super().__init__()
        if lr_mult_list is not None and len(lr_mult_list) != 5:
            raise ValueError(f"lr_mult_list needs 5 entries, got {list(lr_mult_list)}")
        (mid, out), lab, stages = VARIANTS[variant]
        self.stem = Stem(3, mid, out, lab)
        self.stages = nn.LayerList([HGStage(*cfg, lab) for cfg in stages])
        add_expand_head(
            self,
            stages[-1][2],
            class_num,
            use_last_conv=use_last_conv,
            class_expand=class_expand,
            act="relu",
            dropout_prob=dropout_prob,
            lab=lab,
        )

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return expand_head_forward(self, x)


def _make(variant):
    def build(class_num: int = 1000, **kw):
        return PPHGNetV2(variant, class_num, **kw)

    build.__doc__ = f"PP-HGNetV2-{variant}: high-accuracy GPU/CPU network" + (
        " with learnable affine blocks" if VARIANTS[variant][1] else ""
    )
    return build


for _v in VARIANTS:
    register_model(f"PPHGNetV2_{_v}", family="PP-HGNetV2", paddlex_name=f"PP-HGNetV2-{_v}")(_make(_v))
