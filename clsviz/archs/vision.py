"""``paddle.vision.models`` classifiers, registered as ``paddle.vision:NAME``."""

from __future__ import annotations

from .._paddle import paddle
from .registry import register_model

_NAMES = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "vgg11",
    "vgg16",
    "alexnet",
    "squeezenet1_0",
    "squeezenet1_1",
    "shufflenet_v2_x0_25",
    "shufflenet_v2_x1_0",
    "densenet121",
    "googlenet",
    "inception_v3",
]


def _make(fn_name):
    def build(class_num: int = 1000, **kw):
        fn = getattr(paddle.vision.models, fn_name)
        return fn(pretrained=False, num_classes=class_num, **kw)

    build.__doc__ = f"paddle.vision.models.{fn_name} (random init; load weights with a checkpoint)"
    return build


for _n in _NAMES:
    if hasattr(paddle.vision.models, _n):
        register_model(f"paddle.vision:{_n}", family="paddle.vision")(_make(_n))
