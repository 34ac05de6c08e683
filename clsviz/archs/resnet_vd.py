"""ResNet_vd (ResNet with the 'bag of tricks' D-variant stem and shortcut).

Written for clsviz; the *parameter names and shapes* follow PaddleClas 2.x
``legendary_models`` so its ``ResNet*_vd_pretrained.pdparams`` load strictly:

    stem.{0,1,2}.conv.weight, stem.{i}.bn.{weight,bias,_mean,_variance}
    blocks.{k}.conv{0,1[,2]}.{conv,bn}.*,  blocks.{k}.short.{conv,bn}.*
    fc.weight [C_last, class_num], fc.bias [class_num]

Structure facts: a 3-conv stem (32, 32, 64; first stride 2) + 3x3/2 max-pool;
four stages; the first block of stages 2-4 downsamples its shortcut with a 2x2
average pool (ceil mode, SAME padding) before a stride-1 1x1 conv.
"""
from __future__ import annotations

from .._paddle import paddle
from .registry import register_model
from .specs import RESNET_VD_DEPTHS

nn = paddle.nn

_DEPTHS = RESNET_VD_DEPTHS


class ConvBN(nn.Layer):
    """conv (no bias) -> BatchNorm [-> ReLU]; optional 2x2 avg-pool in front (vd shortcut)."""

    def __init__(self, cin, cout, k, stride=1, *, relu=False, pool_first=False):
        super().__init__()
        self.pool_first = pool_first
        self.relu_after = relu
        if pool_first:
            self.avg_pool = nn.AvgPool2D(kernel_size=2, stride=stride, padding="SAME", ceil_mode=True)
        self.conv = nn.Conv2D(cin, cout, k, stride=1 if pool_first else stride,
                              padding=(k - 1) // 2, bias_attr=False)
        # paddle.nn.BatchNorm (not BatchNorm2D): state keys weight/bias/_mean/_variance
        self.bn = nn.BatchNorm(cout)

    def forward(self, x):
        if self.pool_first:
            x = self.avg_pool(x)
        x = self.bn(self.conv(x))
        return nn.functional.relu(x) if self.relu_after else x


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, cin, width, stride, *, project, first):
        super().__init__()
        self.conv0 = ConvBN(cin, width, 3, stride, relu=True)
        self.conv1 = ConvBN(width, width, 3)
        if project:
            self.short = ConvBN(cin, width, 1, stride, pool_first=not first)
        self.project = project

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        s = self.short(x) if self.project else x
        return nn.functional.relu(y + s)


class BottleneckBlock(nn.Layer):
    expansion = 4

    def __init__(self, cin, width, stride, *, project, first):
        super().__init__()
        self.conv0 = ConvBN(cin, width, 1, relu=True)
        self.conv1 = ConvBN(width, width, 3, stride, relu=True)
        self.conv2 = ConvBN(width, width * 4, 1)
        if project:
            self.short = ConvBN(cin, width * 4, 1, stride, pool_first=not first)
        self.project = project

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        s = self.short(x) if self.project else x
        return nn.functional.relu(y + s)


class ResNetVd(nn.Layer):
    """ResNet_vd of a given depth; ``width_mult`` scales every width (for compact nets)."""

    def __init__(self, depth: int = 50, class_num: int = 1000, *, width_mult: float = 1.0,
                 in_channels: int = 3):
        super().__init__()
        kind, counts = _DEPTHS[depth]
        block = BasicBlock if kind == "basic" else BottleneckBlock

        def w(c):
            return max(4, int(round(c * width_mult)))

        stem = (w(32), w(32), w(64))
        self.stem = nn.Sequential(
            ConvBN(in_channels, stem[0], 3, 2, relu=True),
            ConvBN(stem[0], stem[1], 3, 1, relu=True),
            ConvBN(stem[1], stem[2], 3, 1, relu=True),
        )
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        layers = []
        cin = stem[2]
        for stage, n in enumerate(counts):
            width = w(64 * 2 ** stage)
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                layers.append(block(cin, width, stride, project=(i == 0),
                                    first=(stage == 0 and i == 0)))
                cin = width * block.expansion
        self.blocks = nn.Sequential(*layers)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        bound = 1.0 / cin ** 0.5
        self.fc = nn.Linear(cin, class_num, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.Uniform(-bound, bound)))
        self.class_num = class_num

    def forward(self, x):
        x = self.max_pool(self.stem(x))
        x = self.blocks(x)
        return self.fc(self.flatten(self.avg_pool(x)))


def _make(depth, width_mult=1.0):
    def build(class_num: int = 1000, **kw):
        return ResNetVd(depth, class_num, width_mult=kw.pop("width_mult", width_mult), **kw)

    return build


for _d in _DEPTHS:
    register_model(f"ResNet{_d}_vd", family="ResNet_vd")(_make(_d))

# Compact variant used by the bundled demo model (~0.7 M parameters).
register_model("ResNet18_vd_x0_25", family="ResNet_vd")(_make(18, 0.25))
