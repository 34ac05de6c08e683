"""Every Paddle model layout (a–h) × every clsviz mode, on real files of two models.

Each cell either passes (output within 1e-4 × scale of the fixture's reference)
or raises exactly the clsviz error :func:`format_matrix.expect` documents; the
table in docs/formats.md is rendered from the same ``expect``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import fixtures_legacy as FX  # noqa: E402
import format_matrix as M  # noqa: E402
from conftest import run_cli  # noqa: E402

CELLS = [(model, kind, mode) for model in M.MODELS for kind in FX.KINDS for mode in M.MODES]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest.mark.parametrize("model,kind,mode", CELLS,
                         ids=[f"{M.LETTER[k]}-{m}-{mode}" for m, k, mode in CELLS])
def test_cell(model, kind, mode, workdir):
    fx = FX.shared(model)[kind]
    M.check_cell(fx, mode, workdir)


@pytest.mark.parametrize("model", M.MODELS)
def test_capability_agrees_with_the_oracle(model):
    """``clsviz.engines.capability`` (what load, inspect and the widgets ask) says of every
    layout what the hand-written oracle says, in every engine mode: the Paddle three, and the
    runtimes, which run what the predictor runs once their extra is installed."""
    from clsviz.engines import ENGINES, capability
    from clsviz.formats import detect

    for kind in FX.KINDS:
        files = detect.resolve(FX.shared(model)[kind].path)
        for mode in ENGINES:
            got = capability(files, mode, arch=M.ARCH[model])
            want = M.expect(model, kind, mode if mode in M.MODES else "predictor")
            if got.status == "needs" and got.error is not None and got.error.__name__ == "BackendUnavailable":
                continue  # a runtime whose extra is not installed here
            assert got.available == want.ok, (kind, mode, got)
            if not want.ok:
                assert got.error is not None and got.error.__name__ == want.error, (kind, mode, got)
                assert want.match in f"mode {mode!r} {got.detail}", (kind, mode, got)
        if files.checkpoint is not None and not files.has_program:  # the arch is what makes it run
            want = M.expect("tiny_cnn", kind, "dygraph")
            got = capability(files, "dygraph")
            assert not got.available and got.error is not None and got.error.__name__ == want.error
            assert want.match in f"mode 'dygraph' {got.detail}", got


def test_docs_table_is_current():
    assert M.docs_section() == M.render_markdown(), \
        "docs/formats.md is stale: run python benchmarks/format_matrix.py --write"


def test_every_layout_has_a_passing_path_to_paddle3():
    """Any layout of a model clsviz has code for ends up as a Paddle 3 bundle."""
    for kind in FX.KINDS:
        assert M.expect("ResNet18_vd", kind, "migrate").ok, kind


def _topk(stdout: str) -> list:
    return json.loads(stdout)["predictions"][0]["topk"]


def test_fluid_persistables_infer_export_compare_agree_cli(tmp_path, rng_image):
    """The issue's must-show: a PaddleClas 1.x ResNet18_vd persistables folder (a), through the CLI."""
    folder = FX.shared("ResNet18_vd")["fluid_checkpoint"].path
    infer = run_cli("infer", f"--i={rng_image}", "--m=ResNet18_vd", f"--p={folder}", "--json", "-k", "3",
                    check=True)
    out = tmp_path / "bundle"
    exp = run_cli("export", "--m=ResNet18_vd", f"--p={folder}", f"--o={out}", "--json", check=True)
    assert json.loads(exp.stdout)["max_abs_diff"] <= 1e-4
    cmp = run_cli("compare", "-i", rng_image, "--bundle", out, "--checkpoint", folder, "--arch",
                  "ResNet18_vd", "--json", "-k", "3", "--repeats", "1", "--warmup", "0", check=True)
    d = json.loads(cmp.stdout)
    assert set(d["modes"]) == {"predictor", "dygraph", "executor"}
    assert d["agreement"]["max_abs_diff"] <= 1e-4
    want = _topk(infer.stdout)
    for mode, rep in d["modes"].items():
        got = rep["topk"][0]["topk"]
        assert [t["class_id"] for t in got] == [t["class_id"] for t in want], mode
        assert np.allclose([t["score"] for t in got], [t["score"] for t in want], atol=1e-4), mode
