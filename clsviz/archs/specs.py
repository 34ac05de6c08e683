"""Architecture facts that need no Paddle (shared by the networks and the format codecs)."""

#: ResNet_vd depth -> (block kind, blocks per stage)
RESNET_VD_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 12, 48, 3)),
}

#: MobileNetV3 blocks: (kernel, expanded channels, out channels, SE, activation, stride) at scale 1.0
MOBILENET_V3 = {
    "large": (
        (3, 16, 16, False, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2),
        (5, 120, 40, True, "relu", 1),
        (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hardswish", 2),
        (3, 200, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 480, 112, True, "hardswish", 1),
        (3, 672, 112, True, "hardswish", 1),
        (5, 672, 160, True, "hardswish", 2),
        (5, 960, 160, True, "hardswish", 1),
        (5, 960, 160, True, "hardswish", 1),
    ),
    "small": (
        (3, 16, 16, True, "relu", 2),
        (3, 72, 24, False, "relu", 2),
        (3, 88, 24, False, "relu", 1),
        (5, 96, 40, True, "hardswish", 2),
        (5, 240, 40, True, "hardswish", 1),
        (5, 240, 40, True, "hardswish", 1),
        (5, 120, 48, True, "hardswish", 1),
        (5, 144, 48, True, "hardswish", 1),
        (5, 288, 96, True, "hardswish", 2),
        (5, 576, 96, True, "hardswish", 1),
        (5, 576, 96, True, "hardswish", 1),
    ),
}
#: MobileNetV3 channels of the 1x1 conv before pooling ("class_squeeze"), at scale 1.0
MOBILENET_V3_SQUEEZE = {"large": 960, "small": 576}
#: MobileNetV3 width multipliers PaddleClas publishes
MOBILENET_V3_SCALES = {"x0_35": 0.35, "x0_5": 0.5, "x0_75": 0.75, "x1_0": 1.0, "x1_25": 1.25}
#: plain ResNet depths PaddleClas publishes (ResNet_vd adds 200)
RESNET_DEPTHS = (18, 34, 50, 101, 152)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never below 90 % of ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def infer_class_num(state: dict) -> int | None:
    """Number of classes from the last layer: ``fc.weight`` [C, N], else the last 2-D weight."""
    for key in ("fc.weight", "head.fc.weight", "classifier.weight", "fc_0.w_0", "out.weight"):
        if key in state and getattr(state[key], "ndim", 0) == 2:
            return int(state[key].shape[1])
    two_d = [k for k, v in state.items() if getattr(v, "ndim", 0) == 2]
    if two_d:
        return int(state[two_d[-1]].shape[1])
    return None
