"""PaddleClas 2.6's own backbones, as a test oracle for ``clsviz/archs``.

The ``paddleclas==2.6.0`` wheel is installed ``--no-deps`` by ``make test`` (the
``oracle`` extra in pyproject.toml).  Importing its ``ppcls`` package would run
PaddleClas's package ``__init__`` files, which pull in pinned, conflicting
dependencies (opencv<=4.6, gast==0.3.3, faiss, visualdl …).  So this module
loads only the backbone *files* under a private package name: the parent
packages are empty module objects whose ``__path__`` points at the wheel's
folders (so relative imports inside the files resolve); the two utility imports
are stubs: ``utils.save_load`` (downloads) refuses to load pretrained weights and
``utils.logger`` is silent (PaddleClas's needs ``init_logger`` from its engine).
Nothing in ``clsviz`` imports this.
"""
from __future__ import annotations

import copy
import importlib
import importlib.metadata
import sys
import types
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from clsviz._paddle import dygraph_mode, paddle

ROOT = "_ppcls_oracle"
VERSION = "2.6.0"

#: clsviz family -> PaddleClas module under ppcls/arch/backbone/legendary_models
MODULES = {"PP-LCNet": "pp_lcnet", "PP-LCNetV2": "pp_lcnet_v2", "MobileNetV3": "mobilenet_v3",
           "PP-HGNetV2": "pp_hgnet_v2", "ResNet": "resnet", "ResNet_vd": "resnet"}


class OracleMissing(RuntimeError):
    pass


def ppcls_dir() -> Path:
    """``…/site-packages/paddleclas/ppcls`` of the installed wheel (without importing it)."""
    try:
        dist = importlib.metadata.distribution("paddleclas")
    except importlib.metadata.PackageNotFoundError as e:
        raise OracleMissing(
            f"the test oracle paddleclas=={VERSION} is not installed: run `make test`, or "
            f"`pip install --no-deps paddleclas=={VERSION}`") from e
    if dist.version != VERSION:
        raise OracleMissing(f"paddleclas {dist.version} is installed; the oracle is {VERSION}")
    path = Path(dist.locate_file("paddleclas/ppcls"))
    if not (path / "arch" / "backbone" / "legendary_models").is_dir():
        raise OracleMissing(f"no ppcls backbones under {path}")
    return path


def _package(name: str, path: Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    mod.__package__ = name
    sys.modules[name] = mod
    return mod


def _install() -> None:
    if ROOT in sys.modules:
        return
    base = ppcls_dir()
    _package(ROOT, base)
    for sub in ("arch", "arch/backbone", "arch/backbone/base", "arch/backbone/base/dbb",
                "arch/backbone/legendary_models", "utils"):
        _package(f"{ROOT}." + sub.replace("/", "."), base / sub)
    save_load = types.ModuleType(f"{ROOT}.utils.save_load")

    def load_dygraph_pretrain(*_a, **_k):
        raise RuntimeError("the oracle never downloads or loads pretrained weights")

    save_load.load_dygraph_pretrain = load_dygraph_pretrain
    sys.modules[save_load.__name__] = save_load
    logger = types.ModuleType(f"{ROOT}.utils.logger")
    for level in ("debug", "info", "warning", "error", "init_logger"):
        setattr(logger, level, lambda *_a, **_k: None)
    sys.modules[logger.__name__] = logger
    sys.modules[f"{ROOT}.utils"].logger = logger  # `from ....utils import logger`


def module(name: str) -> types.ModuleType:
    """A PaddleClas backbone module, e.g. ``module("pp_lcnet")``."""
    _install()
    return importlib.import_module(f"{ROOT}.arch.backbone.legendary_models.{name}")


@contextmanager
def _restored(mod):
    # PPLCNet writes stride_list into its module-level NET_CONFIG; undo that after each build
    saved = copy.deepcopy(getattr(mod, "NET_CONFIG", None))
    try:
        yield
    finally:
        if saved is not None:
            mod.NET_CONFIG.clear()
            mod.NET_CONFIG.update(saved)


def build(family: str, arch: str, **kwargs):
    """PaddleClas's own network for a clsviz family + registry name (random init, eval mode)."""
    mod = module(MODULES[family])
    with dygraph_mode(), _restored(mod):
        net = getattr(mod, arch)(pretrained=False, **kwargs)
    net.eval()
    return net


# ------------------------------------------------ weights that exercise every layer
def random_state(net, seed: int) -> dict[str, np.ndarray]:
    """Weights with He-scaled convs and non-trivial BN / affine parameters and statistics."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in net.state_dict().items():
        shape = tuple(v.shape)
        if k.endswith("._variance") or k.endswith("lab.scale") or (".bn." in k and k.endswith(".weight")):
            a = rng.uniform(0.6, 1.4, shape)
        elif k.endswith("._mean") or k.endswith(".bias"):
            a = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 4:
            a = rng.normal(0.0, (2.0 / np.prod(shape[1:])) ** 0.5, shape)
        elif len(shape) == 2:  # Linear [in, out]
            a = rng.normal(0.0, shape[0] ** -0.5, shape)
        else:
            raise AssertionError(f"no rule for {k} {shape}")
        out[k] = a.astype(np.float32)
    return out


def calibrate_bn(net, x: np.ndarray) -> None:
    """Set every BatchNorm's running mean/variance to its input's statistics on ``x``.

    What training leaves behind; with arbitrary statistics a deep hard-swish network's
    signal dies out and every image gives the same logits.
    """
    bns = [m for m in net.sublayers() if isinstance(m, (paddle.nn.BatchNorm, paddle.nn.BatchNorm2D))]
    assert bns
    for m in bns:
        m._momentum = 0.0
    with dygraph_mode(), paddle.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "when training, we now always track …"
        net.train()
        net(paddle.to_tensor(x))
        net.eval()
