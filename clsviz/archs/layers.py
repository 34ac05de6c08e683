"""Building blocks shared by the families in ``clsviz/archs``.

PaddleClas's "legendary" networks name a conv + batch-norm pair ``conv`` and
``bn`` (state keys ``conv.weight``, ``bn.weight``, ``bn.bias``, ``bn._mean``,
``bn._variance``) in every family, and squeeze-excite blocks ``conv1`` /
``conv2`` (1x1 convs with bias).  These layers keep exactly those names, so
each family file only states its own wiring.
"""

from __future__ import annotations

from typing import Any

from .._paddle import paddle
from .specs import make_divisible  # noqa: F401  (re-exported for the families)

nn: Any = paddle.nn
F = nn.functional

#: Paddle's ``nn.Hardsigmoid()`` default slope (PP-LCNet's SE gate); MobileNetV3 uses 0.2.
PADDLE_HARDSIGMOID_SLOPE = 0.1666667


def activation(name: str | None):
    """The activation layers the PaddleClas configs name; ``None`` means identity."""
    table = {
        "relu": nn.ReLU,
        "hardswish": nn.Hardswish,
        "hard_swish": nn.Hardswish,
        "relu6": nn.ReLU6,
        "prelu": nn.PReLU,
    }
    if name is None:
        return None
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=0.1)
    if name not in table:
        raise ValueError(f"activation {name!r} is not supported; expected one of {[*sorted(table), 'leaky_relu']}")
    return table[name]()


class Affine(nn.Layer):
    """PP-HGNetV2's learnable affine block: ``scale * x + bias`` with scalar ``scale``/``bias``."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        init = nn.initializer.Constant
        self.scale = self.create_parameter([1], default_initializer=init(scale))
        self.bias = self.create_parameter([1], default_initializer=init(bias))

    def forward(self, x):
        return self.scale * x + self.bias


class ConvBN(nn.Layer):
    """conv (no bias) → BatchNorm → optional activation → optional :class:`Affine` (``lab``).

    ``padding`` defaults to ``(k - 1) // 2`` per side; a string (``"SAME"``) is passed
    to Paddle as is, which pads asymmetrically for even kernels.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 1,
        stride=1,
        *,
        groups: int = 1,
        act: str | None = None,
        padding=None,
        lab: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2D(
            cin,
            cout,
            k,
            stride=stride,
            padding=(k - 1) // 2 if padding is None else padding,
            groups=groups,
            bias_attr=False,
        )
        # PaddleClas uses nn.BatchNorm in some families and nn.BatchNorm2D in others: both hold
        # weight/bias/_mean/_variance and compute the same thing in eval mode (epsilon 1e-5)
        self.bn = nn.BatchNorm2D(cout)
        self.act = activation(act)
        if lab and self.act is not None:
            self.lab = Affine()
        self.use_lab = lab and self.act is not None

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
            if self.use_lab:
                x = self.lab(x)
        return x


class SqueezeExcite(nn.Layer):
    """Global pool → 1x1 conv (C → C/r) → ``act`` → 1x1 conv (C/r → C) → gate → scale the input.

    ``gate`` is ``"hardsigmoid"`` (with ``slope``/``offset``) or ``"sigmoid"``.
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 4,
        act: str = "relu",
        gate: str = "hardsigmoid",
        slope: float = PADDLE_HARDSIGMOID_SLOPE,
        offset: float = 0.5,
    ):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)
        self.act = activation(act)
        self.gate, self.slope, self.offset = gate, slope, offset

    def forward(self, x):
        s = self.conv2(self.act(self.conv1(F.adaptive_avg_pool2d(x, 1))))
        s = F.sigmoid(s) if self.gate == "sigmoid" else F.hardsigmoid(s, slope=self.slope, offset=self.offset)
        return x * s


def add_expand_head(
    net: nn.Layer,
    cin: int,
    class_num: int,
    *,
    use_last_conv: bool = True,
    class_expand: int = 1280,
    act: str = "hardswish",
    dropout_prob: float | None = 0.2,
    lab: bool = False,
) -> None:
    """The classifier head PaddleClas's mobile and HG networks share, as attributes of ``net``.

    pool → [``last_conv`` 1x1 (no bias) → act → (``lab``) → Dropout] → flatten → ``fc``.
    The dropout is ``downscale_in_infer``: at inference it multiplies by ``1 - p``, so
    ``dropout_prob`` changes the logits and must match the checkpoint's training config.
    """
    net.use_last_conv = use_last_conv
    if use_last_conv:
        net.last_conv = nn.Conv2D(cin, class_expand, 1, bias_attr=False)
        net.act = activation(act)
        if lab:
            net.lab = Affine()
        net.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer") if dropout_prob is not None else None
    net.head_lab = lab and use_last_conv
    net.flatten = nn.Flatten()
    net.fc = nn.Linear(class_expand if use_last_conv else cin, class_num)


def expand_head_forward(net: nn.Layer, x):
    """Run the head :func:`add_expand_head` built on ``net``."""
    x = F.adaptive_avg_pool2d(x, 1)
    if net.use_last_conv:
        x = net.act(net.last_conv(x))
        if net.head_lab:
            x = net.lab(x)
        if net.dropout is not None:
            x = net.dropout(x)
    return net.fc(net.flatten(x))


class SoftmaxHead(nn.Layer):
    """Wrap a classifier so it outputs probabilities (PaddleClas export's ``save_inference`` head)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return F.softmax(self.net(x), axis=-1)
