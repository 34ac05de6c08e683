"""Shared fixtures: small real models made by the tests, real files in tmp dirs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, check=False, timeout=300, env=None):
    """Run ``python -m clsviz ARGS`` in a subprocess; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "clsviz", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=e, cwd=REPO)
    if check and p.returncode != 0:
        raise AssertionError(f"clsviz {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="session")
def rng_image(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(7)
    arr = (rng.random((180, 240, 3)) * 255).astype(np.uint8)
    # some structure so logits are not all the same
    arr[40:120, 60:160] = [220, 30, 30]
    p = d / "test.jpeg"
    Image.fromarray(arr).save(p, quality=92)
    return p


@pytest.fixture(scope="session")
def resnet18_ckpt(tmp_path_factory) -> Path:
    """A random-initialised ResNet18_vd with 10 classes, saved as a dygraph .pdparams."""
    from clsviz._paddle import paddle
    import clsviz

    d = tmp_path_factory.mktemp("r18")
    paddle.seed(0)
    net = clsviz.get_model("ResNet18_vd", class_num=10)
    p = d / "ResNet18_vd_random.pdparams"
    paddle.save(net.state_dict(), str(p))
    return p


@pytest.fixture(scope="session")
def resnet18_bundle(tmp_path_factory, resnet18_ckpt) -> Path:
    import clsviz

    out = tmp_path_factory.mktemp("r18b") / "bundle"
    clsviz.export("ResNet18_vd", resnet18_ckpt, out, image_shape=(3, 64, 64))
    return out
