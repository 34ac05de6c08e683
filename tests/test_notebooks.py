"""Every notebook runs top to bottom in a fresh kernel, offline, on the bundled demo model.

The notebooks assert their own claims; a failing assert is a cell error here.  Executed
copies go to ``test-artifacts/notebooks/`` for a look after a failure.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ARTIFACTS = REPO / "test-artifacts" / "notebooks"


def test_the_notebooks_are_there_with_outputs_cleared():
    assert [p.name for p in NOTEBOOKS] == ["01_model_formats.ipynb", "02_export.ipynb", "03_three_modes.ipynb",
                                           "04_check_a_checkpoint.ipynb", "05_latency.ipynb", "06_runtimes.ipynb",
                                           "07_explain.ipynb"]
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3", p.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{p.name}: commit with outputs cleared"


def kernel_env(monkeypatch) -> None:
    """The kernel is this interpreter's (jupyter_client runs a 'python' kernelspec with sys.executable);
    its bin folder goes first on PATH so ``!python`` and subprocesses in cells use it too."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("CLSVIZ_NB_FAST", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    kernel_env(monkeypatch)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))  # which interpreter ran it
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, ARTIFACTS / path.name)
    seconds = time.perf_counter() - t0
    with open(ARTIFACTS / "timings.jsonl", "a") as f:
        f.write(json.dumps({"notebook": path.name, "seconds": round(seconds, 1)}) + "\n")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # the kernel really is this interpreter's environment (the venv), not another python3 on the machine
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.prefix
