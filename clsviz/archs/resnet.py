"""ResNet (PaddleClas ``ResNet18`` … ``ResNet152``) and the network ResNet_vd shares with it.

Written for clsviz; the *parameter names and shapes* follow PaddleClas 2.x
``legendary_models/resnet.py``, whose one ``ResNet`` class builds both versions,
so ``ResNet50_pretrained.pdparams`` and ``ResNet50_vd_pretrained.pdparams`` load strictly:

    stem.{j}.conv.weight, stem.{j}.bn.{weight,bias,_mean,_variance}
    blocks.{k}.conv{0,1[,2]}.{conv,bn}.*,  blocks.{k}.short.{conv,bn}.*
    fc.weight [C_last, class_num], fc.bias [class_num]

Structure facts: version "vb" (plain ResNet) has a 7x7/2 stem conv, version "vd"
a 3-conv stem (32, 32, 64; first stride 2); both then a 3x3/2 max-pool and four
stages.  The first block of *every* stage projects its shortcut with a 1x1
conv + BN (``short``), also in stage 1 where the shapes already agree.  In "vb"
that conv carries the block's stride; in "vd" (except the very first block) a
2x2 average pool (ceil mode, SAME padding) does the striding and the conv runs
at stride 1.  ``stride_list`` (stem, max-pool, stages 2-4) and ``max_pool=False``
(stage 1 then uses ``stride_list[1]``) are PaddleClas's options for dense
feature maps.
"""

from __future__ import annotations

from typing import Any

from .._paddle import paddle
from .layers import ConvBN
from .registry import register_model
from .specs import RESNET_DEPTHS, RESNET_VD_DEPTHS

nn: Any = paddle.nn

#: depth -> (block kind, blocks per stage); shared with formats.fluid_names
DEPTHS = RESNET_VD_DEPTHS


class ShortcutConv(ConvBN):
    """1x1 conv + BN on the shortcut; with ``pool`` a 2x2 average pool strides first (vd)."""

    def __init__(self, cin, cout, stride, *, pool: bool):
        super().__init__(cin, cout, 1, 1 if pool else stride)
        self.pool = pool
        if pool:
            self.avg_pool = nn.AvgPool2D(kernel_size=2, stride=stride, padding="SAME", ceil_mode=True)

    def forward(self, x):
        return super().forward(self.avg_pool(x) if self.pool else x)


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, cin, width, stride, *, project, pool):
        super().__init__()
        self.conv0 = ConvBN(cin, width, 3, stride, act="relu")
        self.conv1 = ConvBN(width, width, 3)
        if project:
            self.short = ShortcutConv(cin, width, stride, pool=pool)
        self.project = project

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return nn.functional.relu(y + (self.short(x) if self.project else x))


class BottleneckBlock(nn.Layer):
    expansion = 4

    def __init__(self, cin, width, stride, *, project, pool):
        super().__init__()
        self.conv0 = ConvBN(cin, width, 1, act="relu")
        self.conv1 = ConvBN(width, width, 3, stride, act="relu")
        self.conv2 = ConvBN(width, width * 4, 1)
        if project:
            self.short = ShortcutConv(cin, width * 4, stride, pool=pool)
        self.project = project

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return nn.functional.relu(y + (self.short(x) if self.project else x))


class ResNet(nn.Layer):
    """ResNet of a given depth, ``version`` "vb" (plain) or "vd".

    ``width_mult`` scales every width (clsviz's compact demo model; PaddleClas has no
    such option).  ``lr_mult_list`` is accepted for config compatibility (training
    only); ``data_format="NHWC"`` computes the same numbers as NCHW, so it is accepted
    and the network runs NCHW.
    """

    def __init__(
        self,
        depth: int = 50,
        class_num: int = 1000,
        *,
        version: str = "vb",
        width_mult: float = 1.0,
        in_channels: int = 3,
        input_image_channel: int | None = None,
        stride_list=(2, 2, 2, 2, 2),
        max_pool: bool = True,
        stem_act: str | None = "relu",
        use_first_short_conv: bool = True,
        lr_mult_list=None,
        data_format: str = "NCHW",
    ):
        super().__init__()
        if version not in ("vb", "vd"):
            raise ValueError(f"version must be 'vb' or 'vd', got {version!r}")
        if depth not in DEPTHS:
            raise ValueError(f"no ResNet of depth {depth}; supported depths: {sorted(DEPTHS)}")
        if len(stride_list) != 5:
            raise ValueError(f"stride_list needs 5 entries (stem, max-pool, stages 2-4), got {list(stride_list)}")
        if data_format not in ("NCHW", "NHWC"):
            raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else BottleneckBlock
        cin = input_image_channel or in_channels

        def w(c):
            return max(4, round(c * width_mult))

        stem = (
            [(cin, w(64), 7, stride_list[0])]
            if version == "vb"
            else [(cin, w(32), 3, stride_list[0]), (w(32), w(32), 3, 1), (w(32), w(64), 3, 1)]
        )
        self.stem = nn.Sequential(*[ConvBN(i, o, k, s, act=stem_act) for i, o, k, s in stem])
        self.use_max_pool = max_pool
        if max_pool:
            self.max_pool = nn.MaxPool2D(kernel_size=3, stride=stride_list[1], padding=1)
        layers = []
        cin = stem[-1][1]
        for stage, n in enumerate(counts):
            width = w(64 * 2**stage)
            for i in range(n):
                stride = stride_list[stage + 1] if i == 0 and (stage > 0 or not max_pool) else 1
                project = i == 0 and (use_first_short_conv or stage > 0)
                layers.append(
                    block(cin, width, stride, project=project, pool=version == "vd" and not (stage == 0 and i == 0))
                )
                cin = width * block.expansion
        self.blocks = nn.Sequential(*layers)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        bound = 1.0 / cin**0.5
        self.fc = nn.Linear(
            cin, class_num, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
        )
        self.class_num = class_num

    def forward(self, x):
        x = self.stem(x)
        if self.use_max_pool:
            x = self.max_pool(x)
        x = self.blocks(x)
        return self.fc(self.flatten(self.avg_pool(x)))


def _make(depth):
    def build(class_num: int = 1000, **kw):
        return ResNet(depth, class_num, version="vb", **kw)

    build.__doc__ = f"ResNet{depth} (He et al., 2016; PaddleClas legendary_models names)"
    return build


for _d in RESNET_DEPTHS:
    register_model(f"ResNet{_d}", family="ResNet", paddlex_name=f"ResNet{_d}")(_make(_d))
