"""Shared fixtures: small real models made by the tests, real files in tmp dirs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- reliability corpus records
# (case, group, result, message) rows; benchmarks/reliability_table.py runs the corpus with
# CLSVIZ_RELIABILITY_JSON set and turns them into the tables of docs/reliability.md.
RECORDS: list[dict] = []
GROUP_OF_PREFIX = {"image": "images", "model": "models", "checkpoint": "checkpoints", "network": "networks",
                   "option": "options"}


def record(case: str, result: str, message: str = "", *, group: str | None = None) -> None:
    """Add a corpus row: ``result`` is an error class name, or ``ok`` for what must succeed."""
    group = group or GROUP_OF_PREFIX.get(case.split(":", 1)[0], "other")
    RECORDS.append({"group": group, "case": case, "result": result, "message": message})


@pytest.fixture(scope="session", autouse=True)
def _emit_reliability_records():
    yield
    out = os.environ.get("CLSVIZ_RELIABILITY_JSON")
    if out:
        Path(out).write_text(json.dumps(RECORDS, indent=1, ensure_ascii=False), encoding="utf-8")


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: root keeps its uid but loses every
    capability (so chmod 000 files are unreadable to it); others need nothing."""
    if os.geteuid() != 0:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv(1): permissions cannot be tested")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def run_cli(*args, check=False, timeout=300, env=None, prefix=(), cwd=REPO):
    """Run ``python -m clsviz ARGS`` in a subprocess; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([*prefix, sys.executable, "-m", "clsviz", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=e, cwd=cwd)
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
