"""The habits of the trade, enforced: lint, types and layers on ``clsviz/``.

Each tool runs with the configuration in pyproject.toml and the test fails on any finding,
so ``make test`` keeps the package clean and ``docs/architecture.md``'s layer picture true.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it is in the dev extra (make install)")
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _report(p: subprocess.CompletedProcess) -> str:
    return (p.stdout + p.stderr)[-8000:]


def test_ruff_lint_is_clean():
    p = _run(_tool("ruff"), "check", "--no-cache", "clsviz")
    assert p.returncode == 0, _report(p)


def test_mypy_is_clean():
    p = _run(_tool("mypy"), "--no-incremental")
    assert p.returncode == 0, _report(p)
    assert "Success" in p.stdout, _report(p)


def test_import_layers_hold():
    """The import-linter contracts: the layers of docs/architecture.md, one importer per heavy library."""
    p = _run(_tool("lint-imports"), "--no-cache")
    assert p.returncode == 0, _report(p)
    assert "0 broken" in p.stdout, _report(p)


def test_import_layers_can_fail(tmp_path):
    """The layer contract catches an upward import (so the test above can fail)."""
    src = ROOT / "clsviz" / "formats" / "pirjson.py"
    text = src.read_text(encoding="utf-8")
    # a copy of the package with one upward import added: formats -> engines
    pkg = tmp_path / "clsviz"
    shutil.copytree(ROOT / "clsviz", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pdparams"))
    (pkg / "formats" / "pirjson.py").write_text(text + "\nfrom ..engines import load as _upward  # noqa\n",
                                                 encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    p = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600, env={"PYTHONPATH": str(tmp_path), "PATH": str(BIN)})
    assert p.returncode != 0, _report(p)
    assert "clsviz.formats.pirjson -> clsviz.engines" in p.stdout, _report(p)


def test_architecture_doc_shows_the_contracted_layers():
    """docs/architecture.md draws exactly the layers import-linter enforces, in order."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c["layers"] for c in contracts["contracts"] if c.get("containers") == ["clsviz"])
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = doc.split("## Layers", 1)[1].split("```", 2)[1]
    drawn = [ln[18:].split("(")[0].strip() for ln in block.splitlines()[1:] if ln.strip()]
    assert drawn == layers


def test_ruff_format_is_clean():
    p = _run(_tool("ruff"), "format", "--check", "--no-cache", "clsviz")
    assert p.returncode == 0, _report(p)
