"""ResNet_vd parameter names: fluid 1.x (static-era PaddleClas) <-> clsviz dygraph.

PaddleClas 1.x built ResNet_vd with ``fluid.layers`` and explicit names, and
its pretrained tarballs (and every fluid checkpoint trained from them) carry
those names.  clsviz's ResNet_vd uses the PaddleClas 2.x "legendary" names.

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
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Mapping

from ..archs.specs import RESNET_VD_DEPTHS
from ..errors import CheckpointMismatch

__all__ = ["fluid_to_dygraph", "dygraph_to_fluid", "fluid_to_dygraph_for_arch", "name_table",
           "guess_depth", "depth_of_arch", "is_optimizer_state", "DEPTHS"]

#: depth -> (block kind, blocks per stage), shared with clsviz.archs.resnet_vd
DEPTHS = RESNET_VD_DEPTHS
_BN_SUFFIX = (("scale", "weight"), ("offset", "bias"), ("mean", "_mean"),
              ("variance", "_variance"))

# Accumulators fluid optimizers and LR schedulers keep next to the weights.
_OPTIMIZER_RE = re.compile(
    r"(_velocity_\d+|_moment[12]_\d+|_beta[12]_pow_acc_\d+|_moment_\d+|_mean_square_\d+"
    r"|_mean_grad_\d+|_squared_\d+|_linear_\d+|@GRAD.*|\.ema|_ema_\d+)$"
    r"|^learning_rate_\d+$|^@LR_DECAY_COUNTER@$|^global_step$|^_generated_var_\d+$")


def is_optimizer_state(name: str) -> bool:
    """Whether a fluid persistable is optimizer / LR-schedule state, not a weight."""
    return bool(_OPTIMIZER_RE.search(name))


def _block_name(depth: int, stage: int, i: int) -> str:
    # stage is 0-based here; fluid numbers stages 2..5
    if depth in (101, 152, 200) and stage == 2:
        return f"res{stage + 2}" + ("a" if i == 0 else f"b{i}")
    return f"res{stage + 2}{chr(97 + i)}"


def _conv_bn(fluid: str, dygraph: str) -> list[tuple[str, str]]:
    bn = "bn" + fluid[3:]
    pairs = [(f"{fluid}_weights", f"{dygraph}.conv.weight")]
    pairs += [(f"{bn}_{f}", f"{dygraph}.bn.{d}") for f, d in _BN_SUFFIX]
    return pairs


@lru_cache(maxsize=None)
def name_table(depth: int) -> tuple[tuple[str, str], ...]:
    """``((fluid name, dygraph name), …)`` for ResNet{depth}_vd, in network order."""
    if depth not in DEPTHS:
        raise CheckpointMismatch(f"no ResNet_vd of depth {depth}",
                                 hint=f"supported depths: {sorted(DEPTHS)}")
    kind, counts = DEPTHS[depth]
    convs = ("2a", "2b") if kind == "basic" else ("2a", "2b", "2c")
    pairs: list[tuple[str, str]] = []
    for j in range(3):
        pairs += _conv_bn(f"conv1_{j + 1}", f"stem.{j}")
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


def _listing(names, limit=8) -> str:
    names = sorted(names)
    more = f" … (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _convert(items, table: dict, depth: int, direction: str, *, strict: bool,
             skip_optimizer: bool):
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
        guess = guess_depth(keys)
        hint = (f"these names are those of ResNet{guess}_vd: pass depth={guess}" if guess
                else "is the depth right? (clsviz.formats.fluid_names.guess_depth(names)) "
                     "— or the checkpoint is not a PaddleClas ResNet_vd")
        raise CheckpointMismatch(
            f"{len(unmapped)} {src} name(s) have no {dst} counterpart in ResNet{depth}_vd: "
            f"{_listing(unmapped)}", hint=hint)
    if strict:
        missing = set(table) - set(keys)
        if missing:
            raise CheckpointMismatch(
                f"{len(missing)} {src} name(s) of ResNet{depth}_vd are missing: "
                f"{_listing(missing)}",
                hint="the checkpoint is incomplete or of another depth; pass strict=False "
                     "to convert what is there")
    return out


def fluid_to_dygraph(names_or_dict, depth: int, *, strict: bool = True,
                     skip_optimizer: bool = True) -> dict:
    """Map fluid 1.x ResNet_vd names to clsviz dygraph names.

    Given names (any iterable of str), returns ``{fluid name: dygraph name}``;
    given a dict, returns it re-keyed ``{dygraph name: value}``.  Optimizer and
    LR-schedule state (``*_velocity_0``, ``learning_rate_0``, …) is dropped
    when ``skip_optimizer``.  Raises :class:`CheckpointMismatch` listing any
    name that does not map, and (``strict``) any weight that is missing.
    """
    table = dict(name_table(depth))
    return _convert(names_or_dict, table, depth, "fluid", strict=strict,
                    skip_optimizer=skip_optimizer)


def dygraph_to_fluid(state_dict, depth: int, *, strict: bool = True) -> dict:
    """Map clsviz dygraph names (or a state dict) to fluid 1.x names.

    The mirror of :func:`fluid_to_dygraph`, with the same return shapes and errors.
    """
    table = {d: f for f, d in name_table(depth)}
    return _convert(state_dict, table, depth, "dygraph", strict=strict, skip_optimizer=False)


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


_ARCH_RE = re.compile(r"^ResNet(\d+)_vd(?:_\w+)?$", re.IGNORECASE)


def depth_of_arch(arch: str) -> int | None:
    """``"ResNet50_vd"`` (or a width variant such as ``"ResNet18_vd_x0_25"``) -> 50."""
    m = _ARCH_RE.match(arch or "")
    depth = int(m.group(1)) if m else None
    return depth if depth in DEPTHS else None


def fluid_to_dygraph_for_arch(state, arch: str | None, *, strict: bool = True) -> dict:
    """Re-key a fluid checkpoint (``{fluid name: value}``) for a registered architecture.

    ``arch`` is a registry name; only the ResNet_vd family has a fluid name
    map.  ``None`` guesses the depth from the names.  A state dict that
    already uses clsviz names comes back unchanged (as a new dict).
    """
    keys = list(state.keys())
    depth = depth_of_arch(arch) if arch else None
    if arch and depth is None:
        raise CheckpointMismatch(
            f"fluid 1.x parameter names can only be mapped for ResNet*_vd, not {arch!r}",
            hint="load the checkpoint with the architecture it was trained with, or convert "
                 "the names yourself (clsviz.formats.tensorfile reads the files)")
    if depth is None:
        depth = guess_depth(keys)
        if depth is None:
            raise CheckpointMismatch(
                "these fluid parameter names match no ResNet_vd depth "
                f"({len(keys)} names, e.g. {_listing(keys, 4)})",
                hint="pass arch= (e.g. 'ResNet50_vd')")
    dygraph_names = {d for _, d in name_table(depth)}
    weights = [k for k in keys if not is_optimizer_state(k)]
    if weights and all(k in dygraph_names for k in weights):
        return {k: state[k] for k in weights}
    return fluid_to_dygraph(state, depth, strict=strict)
