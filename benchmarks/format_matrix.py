"""The format × mode matrix: every on-disk layout (a–h) of two models, in every clsviz mode.

    python benchmarks/format_matrix.py            # run every cell, print the results
    python benchmarks/format_matrix.py --write    # … and rewrite the table in docs/formats.md
    python benchmarks/format_matrix.py --check    # exit 1 if docs/formats.md is stale (no runs)

:func:`expect` is the one statement of what each cell does: it passes (the
output matches the fixture's reference within ``TOLERANCE`` × the output
scale), or it is "not applicable" and the user gets exactly this clsviz error
class with this text in its message.  ``tests/test_format_matrix.py`` runs
every cell against it, and the table in docs/formats.md is rendered from it,
so the table stays true.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import fixtures_legacy as FX  # noqa: E402
from docsection import read_section, write_section  # noqa: E402

DOC = REPO / "docs" / "formats.md"
START, END = "<!-- format-matrix:start -->", "<!-- format-matrix:end -->"

MODELS = ("tiny_cnn", "ResNet18_vd")
MODES = ("predictor", "dygraph", "executor", "export", "migrate", "inspect")
TOLERANCE = 1e-4
#: the architecture a user names for each model; the tiny CNN has no code in clsviz
ARCH = {"tiny_cnn": None, "ResNet18_vd": "ResNet18_vd"}
LETTER = {kind: letter for letter, kind in FX.LETTERS.items()}
CHECKPOINTS = ("fluid_checkpoint", "static_save", "dygraph_pdparams")          # a, e, f
INFERENCE = ("fluid_inference_loose", "fluid_inference_combined", "fluid_model_params",
             "paddle2_inference", "paddle3_inference")                          # b, c, d, g, h
DETECT_KIND = {"fluid_checkpoint": "fluid_persistables", "fluid_inference_loose": "fluid_inference",
               "fluid_inference_combined": "fluid_inference", "fluid_model_params": "fluid_inference",
               "static_save": "static_save", "dygraph_pdparams": "dygraph_checkpoint",
               "paddle2_inference": "paddle2_inference", "paddle3_inference": "paddle3_inference"}
ROUTE = {"fluid_checkpoint": "export", "static_save": "export", "dygraph_pdparams": "export",
         "paddle3_inference": "copy"}


@dataclass(frozen=True)
class Expect:
    """One cell: ``ok`` (and how), or the error class name and a piece of its message."""

    ok: bool
    how: str = ""
    error: str = ""        # clsviz error class name
    match: str = ""        # text the message contains


def expect(model: str, kind: str, mode: str) -> Expect:
    """What ``mode`` does with layout ``kind`` of ``model``."""
    arch = ARCH[model]
    checkpoint = kind in CHECKPOINTS
    if mode == "inspect":
        return Expect(True, f"identified as ({LETTER[kind]})")
    if mode in ("predictor", "executor"):
        if checkpoint:
            return Expect(False, error="FormatError", match="needs an inference model",
                          how="a checkpoint holds no program: export it first")
        if mode == "executor" and kind != "paddle3_inference":
            return Expect(True, "old-IR worker process")
        return Expect(True)
    if mode == "dygraph":
        if not checkpoint:
            return Expect(True, "program rebuilt op by op")
        if arch is None:
            return Expect(False, error="OptionError", match="no architecture is known",
                          how="a checkpoint needs the network code; clsviz has none for this model")
        return Expect(True, f"arch={arch}")
    if mode == "export":
        if kind in ("fluid_inference_loose", "fluid_inference_combined", "fluid_model_params"):
            return Expect(False, error="FormatError", match="holds an inference model",
                          how="already an inference model: migrate it")
        if kind in ("paddle2_inference", "paddle3_inference"):
            return Expect(False, error="FormatError", match="already an inference model",
                          how="already an inference model: migrate it")
        if arch is None:
            if kind == "fluid_checkpoint":
                return Expect(False, error="CheckpointMismatch", match="can only be mapped for ResNet",
                              how="fluid names map to clsviz networks for ResNet_vd, ResNet and MobileNetV3 only")
            return Expect(False, error="ArchitectureError", match="unknown architecture",
                          how="no network code for this model")
        return Expect(True, f"arch={arch}")
    if mode == "migrate":
        if checkpoint and arch is None:
            return Expect(False, error="OptionError", match="needs the network code",
                          how="a checkpoint needs arch=")
        return Expect(True, ROUTE.get(kind, "rebuild"))
    raise ValueError(mode)


# ------------------------------------------------------------------ running a cell
def close_enough(out: np.ndarray, ref: np.ndarray) -> float:
    """max|Δ|; raises AssertionError beyond ``TOLERANCE`` × the output scale."""
    out, ref = np.asarray(out), np.asarray(ref)
    assert out.shape == ref.shape, f"output shape {out.shape}, expected {ref.shape}"
    diff = float(np.max(np.abs(out.astype(np.float64) - ref)))
    scale = max(1.0, float(np.abs(ref).max()))
    assert diff <= TOLERANCE * scale, f"max|Δ| {diff:.3g} > {TOLERANCE} × {scale:.3g}"
    return diff


def run_cell(fx, mode: str, workdir: Path):
    """Do what a user does for this cell; returns (max|Δ| or None, detail).  Raises what the user sees."""
    import clsviz

    arch = ARCH[fx.model]
    x = fx.input
    out_dir = workdir / f"{fx.model}-{fx.kind}-{mode}"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    if mode == "inspect":
        r = clsviz.inspect(fx.path)
        assert r.is_model and r.layout == LETTER[fx.kind] and r.kind == DETECT_KIND[fx.kind], r.verdict
        assert r.tensors is not None and r.tensors.count == len(fx.weights()), r.tensors
        if fx.kind in INFERENCE:
            assert tuple(r.inputs[0].shape[1:]) == tuple(x.shape[1:]), r.inputs
            assert r.outputs[0].shape[-1] == FX.MODELS[fx.model]["class_num"], r.outputs
        for m in ("predictor", "dygraph", "executor", "export", "migrate"):
            e = expect(fx.model, fx.kind, m)
            status = r.mode(m).status
            if e.ok:   # a checkpoint cell passes with arch=, which inspect reports as "needs"
                assert status == "ready" or (status == "needs" and fx.kind in CHECKPOINTS), (m, status)
            else:
                assert status != "ready", (m, r.mode(m))
        return None, r.verdict
    if mode in ("predictor", "executor"):
        with clsviz.load(fx.path, mode=mode) as clf:
            out = clf.forward(x)
        return close_enough(out, fx.expected), ""
    if mode == "dygraph":
        with clsviz.load(fx.path, mode="dygraph", arch=arch if fx.kind in CHECKPOINTS else None) as clf:
            out = clf.forward(x)
        return close_enough(out, fx.expected), ""
    if mode == "export":
        clsviz.export(arch or fx.model, fx.path, out_dir, image_shape=x.shape[1:])
        with clsviz.load(out_dir, mode="predictor") as clf:
            out = clf.forward(x)
        return close_enough(out, _exported(fx.expected, out_dir)), ""
    if mode == "migrate":
        kw = {"image_shape": x.shape[1:]} if fx.kind in CHECKPOINTS else {}
        r = clsviz.migrate(fx.path, out_dir, arch=arch if fx.kind in CHECKPOINTS else None, **kw)
        assert r.route == expect(fx.model, fx.kind, "migrate").how, r.route
        assert (out_dir / "inference.json").is_file() and (out_dir / "inference.yml").is_file()
        with clsviz.load(out_dir, mode="predictor") as clf:
            out = clf.forward(x)
        return close_enough(out, _exported(fx.expected, out_dir)), r.route
    raise ValueError(mode)


def _exported(expected: np.ndarray, bundle: Path) -> np.ndarray:
    """What a bundle made by export should output for a network whose output is ``expected``:
    export appends a softmax to a logits network (never a second one to a softmax network)."""
    import clsviz

    e = np.asarray(expected, np.float64)
    probs = (e >= 0).all() and np.allclose(e.sum(axis=1), 1.0, atol=1e-4)
    if probs or not clsviz.engines.load_config(bundle).softmax:
        return expected
    z = np.exp(e - e.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def check_cell(fx, mode: str, workdir: Path) -> str:
    """Run a cell and hold it to :func:`expect`; returns a one-line result, raises AssertionError."""
    import clsviz

    e = expect(fx.model, fx.kind, mode)
    if e.ok:
        diff, detail = run_cell(fx, mode, workdir)
        return "pass" + (f" max|Δ| {diff:.1e}" if diff is not None else "") + (f" {detail}" if detail else "")
    try:
        run_cell(fx, mode, workdir)
    except clsviz.ClsvizError as err:
        assert type(err).__name__ == e.error, f"expected {e.error}, got {type(err).__name__}: {err}"
        assert e.match in str(err), f"expected {e.match!r} in the message: {err}"
        return f"n/a {type(err).__name__}: {str(err).splitlines()[0][:120]}"
    raise AssertionError(f"expected {e.error} ({e.match!r}), but the cell ran")


# ------------------------------------------------------------------ the docs table
def render_markdown() -> str:
    notes: dict[tuple, int] = {}
    lines = ["| layout | model | " + " | ".join(MODES) + " |",
             "|---|---|" + "---|" * len(MODES)]
    for kind in FX.KINDS:
        for model in MODELS:
            cells = []
            for mode in MODES:
                e = expect(model, kind, mode)
                if e.ok:
                    cells.append("✓" + (f" {e.how}" if e.how and mode not in ("inspect",) else ""))
                else:
                    key = (e.error, e.match, e.how)
                    n = notes.setdefault(key, len(notes) + 1)
                    cells.append(f"n/a [{n}]")
            lines.append(f"| {LETTER[kind]} {kind} | {model} | " + " | ".join(cells) + " |")
    lines.append("")
    for (error, match, how), n in notes.items():
        lines.append(f"[{n}] `{error}`: “…{match}…” — {how}.  ")
    return "\n".join(lines).rstrip() + "\n"


def docs_section() -> str:
    return read_section(DOC, START, END)


def write_docs() -> None:
    write_section(DOC, START, END, render_markdown())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the table in docs/formats.md")
    ap.add_argument("--check", action="store_true", help="only check the docs table is current")
    a = ap.parse_args(argv)
    if a.check:
        ok = docs_section() == render_markdown()
        print("docs/formats.md matrix is current" if ok else "docs/formats.md matrix is stale: "
              "run python benchmarks/format_matrix.py --write")
        return 0 if ok else 1
    failures = 0
    with tempfile.TemporaryDirectory(prefix="clsviz-matrix-") as tmp:
        for model in MODELS:
            fixtures = FX.write_all(Path(tmp) / "fx", model)
            for kind in FX.KINDS:
                for mode in MODES:
                    t0 = time.perf_counter()
                    try:
                        res = check_cell(fixtures[kind], mode, Path(tmp) / "out")
                    except AssertionError as e:
                        res, failures = f"FAIL {e}", failures + 1
                    print(f"{LETTER[kind]} {model:<11} {mode:<9} {time.perf_counter() - t0:5.1f}s  {res}")
    if failures:
        print(f"{failures} cell(s) failed; docs not written")
        return 1
    if a.write:
        write_docs()
        print(f"wrote the matrix into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
