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
