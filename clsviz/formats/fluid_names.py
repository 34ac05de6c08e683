"""Legacy parameter names: fluid 1.x / early 2.0 PaddleClas <-> clsviz (PaddleClas 2.x) names.

PaddleClas 1.x built its networks with ``fluid.layers`` and explicit names, and
PaddleClas 2.0-2.1 kept those names in dygraph (``ParamAttr(name=...)``); their
pretrained tarballs, and every checkpoint trained from them, carry those names.
clsviz uses the PaddleClas 2.2+ "legendary" names.  Three families had such
names: ResNet_vd, ResNet and MobileNetV3 (PP-LCNet and PP-HGNetV2 were born
with the legendary names).  :func:`legacy_table` gives the table of any of them.

ResNet_vd
---------

Rules of the static-era code (``conv_bn_layer``):

* a conv named ``N`` stores ``N_weights``; its batch norm is named
  ``"bn" + N[3:]`` and stores ``_scale``, ``_offset``, ``_mean``, ``_variance``.
  So the stem convs ``conv1_1..conv1_3`` give **``bnv1_1``..``bnv1_3``**
  (``"conv1_1"[3:] == "v1_1"``), and ``res2a_branch2a`` gives ``bn2a_branch2a``.
* block ``i`` of stage ``s`` (s = 2..5) is ``res{s}`` + ``chr(97 + i)``
  (``res2a``, ``res2b``, …), except stage 4 of ResNet101/152/200, which is
  ``res4a``, ``res4b1``, ``res4b2``, … ``res4b{n-1}``.
* convs in a block: ``_branch2a``/``_branch2b`` (basic) or
  ``_branch2a``/``_branch2b``/``_branch2c`` (bottleneck); the projection
  shortcut of each stage's first block is ``_branch1``.
* the classifier is an unnamed ``fluid.layers.fc``, hence ``fc_0.w_0`` and
  ``fc_0.b_0``.  Its weight is ``[in, out]``, the same layout as
  ``paddle.nn.Linear.weight``, so no transpose is needed.

=====================  ==============================
fluid                  clsviz dygraph
=====================  ==============================
conv1_{j}_weights      stem.{j-1}.conv.weight
bnv1_{j}_scale         stem.{j-1}.bn.weight
bnv1_{j}_offset        stem.{j-1}.bn.bias
bnv1_{j}_mean          stem.{j-1}.bn._mean
bnv1_{j}_variance      stem.{j-1}.bn._variance
res2a_branch2a_weights blocks.0.conv0.conv.weight
bn2a_branch2a_scale    blocks.0.conv0.bn.weight
res2a_branch1_weights  blocks.0.short.conv.weight
res4b12_branch2c_*     blocks.{k}.conv2.*  (k counts blocks across stages)
fc_0.w_0 / fc_0.b_0    fc.weight / fc.bias
=====================  ==============================

ResNet (plain)
--------------
As ResNet_vd, except the single 7x7 stem conv: ``conv1_weights`` ->
``stem.0.conv.weight`` with batch norm **``bn_conv1``** (``"bn_" + name`` for
``conv1``, the one exception to the ``"bn" + name[3:]`` rule).

MobileNetV3
-----------
A conv named ``N`` stores ``N_weights`` and its batch norm ``N_bn_scale``,
``N_bn_offset``, ``N_bn_mean``, ``N_bn_variance``.  The stem is ``conv1``;
block ``i`` (0-based) is ``conv{i+2}`` with ``_expand``, ``_depthwise`` and
``_linear`` convs and, where the block has SE, ``_se_1_weights``/``_se_1_offset``
and ``_se_2_weights``/``_se_2_offset`` (1x1 convs with bias); then
``conv_last``, ``last_1x1_conv_weights`` and the classifier ``fc_weights`` /
``fc_offset`` ([in, out], like ``nn.Linear``).  Names do not depend on the
width; the scale is told from the shapes (``conv_last_weights`` channels).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from ..archs.specs import (
    MOBILENET_V3,
    MOBILENET_V3_SCALES,
    MOBILENET_V3_SQUEEZE,
    RESNET_DEPTHS,
    RESNET_VD_DEPTHS,
    make_divisible,
)
from ..errors import CheckpointMismatch
from .detect import FLUID_PERSISTABLES, STATIC_SAVE

__all__ = [
    "fluid_to_dygraph",
    "dygraph_to_fluid",
    "fluid_to_dygraph_for_arch",
    "name_table",
    "resnet_table",
    "mobilenet_v3_table",
    "legacy_table",
    "guess_arch",
    "uses_legacy_names",
    "dygraph_to_fluid_for_arch",
    "guess_depth",
    "depth_of_arch",
    "is_optimizer_state",
    "DEPTHS",
    "LEGACY_FAMILIES",
]

#: the families whose legacy names clsviz maps, as arch-name patterns
LEGACY_FAMILIES = ("ResNet*_vd", "ResNet*", "MobileNetV3_{small,large}_x*")

#: depth -> (block kind, blocks per stage), shared with clsviz.archs.resnet_vd
DEPTHS = RESNET_VD_DEPTHS
_BN_SUFFIX = (("scale", "weight"), ("offset", "bias"), ("mean", "_mean"), ("variance", "_variance"))

# Accumulators fluid optimizers and LR schedulers keep next to the weights.
_OPTIMIZER_RE = re.compile(
    r"(_velocity_\d+|_moment[12]_\d+|_beta[12]_pow_acc_\d+|_moment_\d+|_mean_square_\d+"
    r"|_mean_grad_\d+|_squared_\d+|_linear_\d+|@GRAD.*|\.ema|_ema_\d+)$"
    r"|^learning_rate_\d+$|^@LR_DECAY_COUNTER@$|^global_step$|^_generated_var_\d+$"
)


def is_optimizer_state(name: str) -> bool:
    """Whether a fluid persistable is optimizer / LR-schedule state, not a weight."""
    return bool(_OPTIMIZER_RE.search(name))


def _block_name(depth: int, stage: int, i: int) -> str:
    # stage is 0-based here; fluid numbers stages 2..5
    if depth in (101, 152, 200) and stage == 2:
        return f"res{stage + 2}" + ("a" if i == 0 else f"b{i}")
    return f"res{stage + 2}{chr(97 + i)}"


def _conv_bn(fluid: str, dygraph: str, bn: str | None = None) -> list[tuple[str, str]]:
    bn = bn or "bn" + fluid[3:]
    pairs = [(f"{fluid}_weights", f"{dygraph}.conv.weight")]
    pairs += [(f"{bn}_{f}", f"{dygraph}.bn.{d}") for f, d in _BN_SUFFIX]
    return pairs


@cache
def name_table(depth: int) -> tuple[tuple[str, str], ...]:
    """``((fluid name, dygraph name), …)`` for ResNet{depth}_vd, in network order."""
    if depth not in DEPTHS:
        raise CheckpointMismatch(f"no ResNet_vd of depth {depth}", hint=f"supported depths: {sorted(DEPTHS)}")
    return _resnet_table(depth, vd=True)


@cache
def resnet_table(depth: int) -> tuple[tuple[str, str], ...]:
    """``((fluid name, dygraph name), …)`` for the plain ResNet{depth}, in network order."""
    if depth not in RESNET_DEPTHS:
        raise CheckpointMismatch(f"no plain ResNet of depth {depth}", hint=f"supported depths: {list(RESNET_DEPTHS)}")
    return _resnet_table(depth, vd=False)


def _resnet_table(depth: int, *, vd: bool) -> tuple[tuple[str, str], ...]:
    kind, counts = DEPTHS[depth]
    convs = ("2a", "2b") if kind == "basic" else ("2a", "2b", "2c")
    pairs: list[tuple[str, str]] = []
    if vd:
        for j in range(3):
            pairs += _conv_bn(f"conv1_{j + 1}", f"stem.{j}")
    else:
        pairs += _conv_bn("conv1", "stem.0", bn="bn_conv1")
    k = 0
    for stage, n in enumerate(counts):
        for i in range(n):
            base = _block_name(depth, stage, i)
            for c, suffix in enumerate(convs):
                pairs += _conv_bn(f"{base}_branch{suffix}", f"blocks.{k}.conv{c}")
            if i == 0:
                pairs += _conv_bn(f"{base}_branch1", f"blocks.{k}.short")
            k += 1
    pairs += [("fc_0.w_0", "fc.weight"), ("fc_0.b_0", "fc.bias")]
    return tuple(pairs)


@cache
def mobilenet_v3_table(size: str) -> tuple[tuple[str, str], ...]:
    """``((fluid name, dygraph name), …)`` for MobileNetV3 ``size`` ("small"/"large"), any width."""
    if size not in MOBILENET_V3:
        raise CheckpointMismatch(f"no MobileNetV3 {size!r}", hint="sizes: 'small', 'large'")

    def conv_bn(fluid, dygraph):
        return _conv_bn(fluid, dygraph, bn=f"{fluid}_bn")

    pairs = conv_bn("conv1", "conv")
    for i, (_k, _exp, _c, se, _act, _s) in enumerate(MOBILENET_V3[size]):
        f, d = f"conv{i + 2}", f"blocks.{i}"
        pairs += conv_bn(f"{f}_expand", f"{d}.expand_conv") + conv_bn(f"{f}_depthwise", f"{d}.bottleneck_conv")
        if se:
            pairs += [
                (f"{f}_se_{j}_{w}", f"{d}.mid_se.conv{j}.{v}")
                for j in (1, 2)
                for w, v in (("weights", "weight"), ("offset", "bias"))
            ]
        pairs += conv_bn(f"{f}_linear", f"{d}.linear_conv")
    pairs += conv_bn("conv_last", "last_second_conv")
    pairs += [("last_1x1_conv_weights", "last_conv.weight"), ("fc_weights", "fc.weight"), ("fc_offset", "fc.bias")]
    return tuple(pairs)


_VD_RE = re.compile(r"^ResNet(\d+)_vd(?:_\w+)?$", re.IGNORECASE)
_RESNET_RE = re.compile(r"^ResNet(\d+)$", re.IGNORECASE)
_MBV3_RE = re.compile(r"^MobileNetV3_(small|large)_(x\d+_\d+)$", re.IGNORECASE)


def legacy_table(arch: str) -> tuple[tuple[str, str], ...] | None:
    """The legacy name table of a registry architecture name, or None if its family has none."""
    arch = arch or ""
    m = _VD_RE.match(arch)
    if m and int(m.group(1)) in DEPTHS:
        return name_table(int(m.group(1)))
    m = _RESNET_RE.match(arch)
    if m and int(m.group(1)) in RESNET_DEPTHS:
        return resnet_table(int(m.group(1)))
    m = _MBV3_RE.match(arch)
    if m and m.group(2).lower() in MOBILENET_V3_SCALES:
        return mobilenet_v3_table(m.group(1).lower())
    return None


def _candidates():
    """(arch, table) for every legacy scheme; MobileNetV3 under its size (the width comes later)."""
    for depth in DEPTHS:
        yield f"ResNet{depth}_vd", name_table(depth)
    for depth in RESNET_DEPTHS:
        yield f"ResNet{depth}", resnet_table(depth)
    for size in MOBILENET_V3:
        yield f"MobileNetV3_{size}", mobilenet_v3_table(size)


def _mobilenet_v3_scale(size: str, state) -> str | None:
    """``x1_0`` etc. from the channels of the last 1x1 conv before pooling, or None."""
    if not isinstance(state, Mapping):
        return None
    v = state.get("conv_last_weights", state.get("last_second_conv.conv.weight"))
    shape = getattr(v, "shape", v)  # an array, or a shape tuple
    if not isinstance(shape, (tuple, list)) or not shape:
        return None
    for tag, scale in MOBILENET_V3_SCALES.items():
        if make_divisible(scale * MOBILENET_V3_SQUEEZE[size]) == int(shape[0]):
            return tag
    return None


def guess_arch(names_or_state) -> str | None:
    """The architecture whose legacy (or clsviz) weight names are exactly these, or None.

    Optimizer state is ignored.  A MobileNetV3's width is read from the tensor shapes,
    so pass the state dict (or a name → array or shape mapping) for those; names alone
    give None.
    """
    keys = {n for n in names_or_state if not is_optimizer_state(n)}
    for arch, table in _candidates():
        if keys == {f for f, _ in table} or keys == {d for _, d in table}:
            if arch.startswith("MobileNetV3_"):
                tag = _mobilenet_v3_scale(arch.split("_")[1], names_or_state)
                return f"{arch}_{tag}" if tag else None
            return arch
    return None


def uses_legacy_names(names, arch: str | None) -> bool:
    """Whether ``names`` (optimizer state aside) include legacy names of ``arch``'s family."""
    table = legacy_table(arch) if arch else None
    if table is None:
        return False
    fluid = {f for f, _ in table}
    return any(n in fluid for n in names if not is_optimizer_state(n))


def _listing(names, limit=8) -> str:
    names = sorted(names)
    more = f" … (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _convert(items, table: dict, what: str, direction: str, *, strict: bool, skip_optimizer: bool, hint: str = ""):
    is_dict = isinstance(items, Mapping)
    keys = list(items.keys()) if is_dict else list(items)
    unmapped, skipped, out = [], [], {}
    for key in keys:
        if key in table:
            target = table[key]
            out[target if is_dict else key] = items[key] if is_dict else target
        elif skip_optimizer and direction == "fluid" and is_optimizer_state(key):
            skipped.append(key)
        else:
            unmapped.append(key)
    src, dst = ("fluid", "dygraph") if direction == "fluid" else ("dygraph", "fluid")
    if unmapped:
        raise CheckpointMismatch(
            f"{len(unmapped)} {src} name(s) have no {dst} counterpart in {what}: {_listing(unmapped)}", hint=hint
        )
    if strict:
        missing = set(table) - set(keys)
        if missing:
            raise CheckpointMismatch(
                f"{len(missing)} {src} name(s) of {what} are missing: {_listing(missing)}",
                hint="the checkpoint is incomplete or of another depth; pass strict=False to convert what is there",
            )
    return out


def fluid_to_dygraph(names_or_dict, depth: int, *, strict: bool = True, skip_optimizer: bool = True) -> dict:
    """Map fluid 1.x ResNet_vd names to clsviz dygraph names.

    Given names (any iterable of str), returns ``{fluid name: dygraph name}``;
    given a dict, returns it re-keyed ``{dygraph name: value}``.  Optimizer and
    LR-schedule state (``*_velocity_0``, ``learning_rate_0``, …) is dropped
    when ``skip_optimizer``.  Raises :class:`CheckpointMismatch` listing any
    name that does not map, and (``strict``) any weight that is missing.
    """
    table = dict(name_table(depth))
    return _convert(
        names_or_dict,
        table,
        f"ResNet{depth}_vd",
        "fluid",
        strict=strict,
        skip_optimizer=skip_optimizer,
        hint=_depth_hint(names_or_dict),
    )


def _depth_hint(keys) -> str:
    guess = guess_depth(keys)
    return (
        f"these names are those of ResNet{guess}_vd: pass depth={guess}"
        if guess
        else "is the depth right? (clsviz.formats.fluid_names.guess_depth(names)) "
        "— or the checkpoint is not a PaddleClas ResNet_vd"
    )


def dygraph_to_fluid(state_dict, depth: int, *, strict: bool = True) -> dict:
    """Map clsviz dygraph names (or a state dict) to fluid 1.x names.

    The mirror of :func:`fluid_to_dygraph`, with the same return shapes and errors.
    """
    table = {d: f for f, d in name_table(depth)}
    return _convert(
        state_dict,
        table,
        f"ResNet{depth}_vd",
        "dygraph",
        strict=strict,
        skip_optimizer=False,
        hint=_depth_hint(state_dict),
    )


def guess_depth(names: Iterable[str]) -> int | None:
    """The ResNet_vd depth whose fluid (or dygraph) weight names are exactly ``names``.

    Optimizer state is ignored.  Returns None when no depth matches.
    """
    keys = {n for n in names if not is_optimizer_state(n)}
    for depth in DEPTHS:
        table = name_table(depth)
        if keys == {f for f, _ in table} or keys == {d for _, d in table}:
            return depth
    return None


def depth_of_arch(arch: str) -> int | None:
    """``"ResNet50_vd"`` (or a width variant such as ``"ResNet18_vd_x0_25"``) -> 50."""
    m = _VD_RE.match(arch or "")
    depth = int(m.group(1)) if m else None
    return depth if depth in DEPTHS else None


def fluid_to_dygraph_for_arch(state, arch: str | None, *, strict: bool = True) -> dict:
    """Re-key a legacy checkpoint (``{fluid name: value}``) for a registered architecture.

    ``arch`` is a registry name of a family with legacy names (:data:`LEGACY_FAMILIES`);
    ``None`` guesses it from the names (and, for MobileNetV3, the shapes).  A state
    dict that already uses clsviz names comes back unchanged (as a new dict, without
    optimizer state).
    """
    keys = list(state.keys())
    if arch:
        table = legacy_table(arch)
        if table is None:
            raise CheckpointMismatch(
                f"fluid 1.x parameter names can only be mapped for ResNet*_vd, ResNet* and MobileNetV3_*, not {arch!r}",
                hint="load the checkpoint with the architecture it was trained with, or convert "
                "the names yourself (clsviz.formats.tensorfile reads the files)",
            )
    else:
        arch = guess_arch(state)
        if arch is None:
            raise CheckpointMismatch(
                "these fluid parameter names match no ResNet_vd, ResNet or MobileNetV3 "
                f"({len(keys)} names, e.g. {_listing(keys, 4)})",
                hint="pass arch= (e.g. 'ResNet50_vd')",
            )
        table = legacy_table(arch)
        assert table is not None  # guess_arch names only architectures that have a table
    dygraph_names = {d for _, d in table}
    weights = [k for k in keys if not is_optimizer_state(k)]
    if weights and all(k in dygraph_names for k in weights):
        return {k: state[k] for k in weights}
    guess = guess_arch(state)
    hint = (
        f"these names are those of {guess}: pass arch={guess!r}"
        if guess and guess != arch
        else "is the architecture right? (clsviz.formats.fluid_names.guess_arch(state))"
    )
    if depth_of_arch(arch) and not guess:
        hint = _depth_hint(keys)
    return _convert(state, dict(table), arch, "fluid", strict=strict, skip_optimizer=True, hint=hint)


def dygraph_to_fluid_for_arch(state_dict, arch: str, *, strict: bool = True) -> dict:
    """clsviz names (or a state dict) of ``arch`` -> its legacy fluid names; the mirror of
    :func:`fluid_to_dygraph_for_arch` (raises :class:`CheckpointMismatch` the same way)."""
    table = legacy_table(arch)
    if table is None:
        raise CheckpointMismatch(
            f"{arch!r} has no legacy fluid names", hint=f"families with legacy names: {', '.join(LEGACY_FAMILIES)}"
        )
    return _convert(state_dict, {d: f for f, d in table}, arch, "dygraph", strict=strict, skip_optimizer=False)


def clsviz_state(state: Mapping, arch: str | None, *, kind: str | None) -> tuple[dict, bool]:
    """The one rule for a checkpoint's names: ``(state with clsviz names, whether they were mapped)``.

    A fluid persistables folder always holds fluid names; a ``paddle.static.save`` checkpoint
    holds them when its names are ``arch``'s legacy ones.  Those are mapped with
    :func:`fluid_to_dygraph_for_arch`; anything else keeps its names.  Optimizer state is
    dropped either way.  ``kind`` is a :mod:`clsviz.formats.detect` kind (``None``: a state
    dict from the caller).
    """
    if kind == FLUID_PERSISTABLES or (kind == STATIC_SAVE and uses_legacy_names(state, arch)):
        return fluid_to_dygraph_for_arch(state, arch), True
    return {k: v for k, v in state.items() if not is_optimizer_state(k)}, False
