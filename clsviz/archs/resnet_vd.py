"""ResNet_vd ("bag of tricks" D-variant: 3-conv stem, average-pool shortcut), depths 18-200.

The network is :class:`clsviz.archs.resnet.ResNet` with ``version="vd"`` — PaddleClas
builds both versions with one class and one set of parameter names — so real
``ResNet*_vd_pretrained.pdparams`` load strictly.  ``ResNet18_vd_x0_25`` is the
compact width variant of clsviz's bundled demo model (not a PaddleClas name).
"""

from __future__ import annotations

from .registry import register_model
from .resnet import DEPTHS, ResNet


class ResNetVd(ResNet):
    """ResNet_vd of a given depth; ``width_mult`` scales every width (for compact nets)."""

    def __init__(self, depth: int = 50, class_num: int = 1000, **kw):
        super().__init__(depth, class_num, version="vd", **kw)


def _make(depth, width_mult=1.0, paddle_name=True):
    def build(class_num: int = 1000, **kw):
        kw.setdefault("width_mult", width_mult)
        return ResNetVd(depth, class_num, **kw)

    build.__doc__ = (
        f"ResNet{depth}_vd (PaddleClas legendary_models names)"
        if paddle_name
        else f"ResNet{depth}_vd at width x{width_mult} (clsviz's compact demo network)"
    )
    return build


for _d in DEPTHS:
    register_model(f"ResNet{_d}_vd", family="ResNet_vd", paddlex_name=f"ResNet{_d}_vd")(_make(_d))

# Compact variant used by the bundled demo model (~0.7 M parameters); PaddleX does not know it.
register_model("ResNet18_vd_x0_25", family="ResNet_vd")(_make(18, 0.25, paddle_name=False))
