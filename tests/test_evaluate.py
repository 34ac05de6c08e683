"""``clsviz.evaluate``: accuracy of the demo bundle on freshly generated labelled folders."""
from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

import clsviz
from clsviz.demo import dataset
from clsviz.demo.run import export_demo
from clsviz.evaluate import EvalReport, evaluate, read_labelled_folder, write_evaluation_html

from conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-bundle") / "bundle"
    export_demo(out)
    return out


@pytest.fixture(scope="module", params=["folders", "labels_txt"])
def labelled(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"val-{request.param}")
    # a seed the demo model never trained on
    dataset.write_folder(d, 12, 2024, layout=request.param)
    return d, request.param


def _assert_png(path):
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) > 200


def test_demo_model_is_accurate_on_a_fresh_labelled_folder(labelled, demo_bundle, tmp_path):
    folder, layout = labelled
    rep = evaluate(folder, demo_bundle, batch_size=8)
    assert isinstance(rep, EvalReport)
    assert rep.layout == layout
    n = len(dataset.CLASSES) * 12
    assert len(rep.paths) == n
    assert set(rep.labels) == set(dataset.CLASSES)
    assert rep.accuracy["predictor"] >= 0.97, rep.to_text()
    r = rep.modes["predictor"]
    assert r.confusion.shape == (8, 8) and r.confusion.sum() == n
    assert int(r.confusion.trace()) == n - len(r.misclassified)
    assert all(v is not None and 0 <= v <= 1 for v in r.per_class.values())
    for e in r.misclassified:
        assert e.true != e.pred and 0 < e.score <= 1
    html_path = write_evaluation_html(rep, tmp_path / "ev")
    _assert_png(tmp_path / "ev" / "confusion.png")
    page = html_path.read_text()
    assert html_path.name == "evaluation.html" and "Confusion matrix" in page and "<script" not in page
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["images"] == n and d["layout"] == layout
    assert "accuracy" in rep.to_text() and rep._repr_html_().startswith("<div>")


def test_all_modes_give_the_same_answers(demo_bundle, tmp_path):
    folder = tmp_path / "val"
    dataset.write_folder(folder, 3, 99, layout="folders")
    rep = evaluate(folder, demo_bundle, modes="all", batch_size=4)
    assert list(rep.modes) == list(clsviz.MODES)
    preds = {m: r.y_pred for m, r in rep.modes.items()}
    assert preds["dygraph"] == preds["predictor"] == preds["executor"]
    out = tmp_path / "html"
    write_evaluation_html(rep, out)
    _assert_png(out / "confusion.png")
    _assert_png(out / "confusion-dygraph.png")


def test_unknown_class_names_are_a_format_error(demo_bundle, tmp_path):
    folder = tmp_path / "val"
    dataset.write_folder(folder, 1, 5, layout="folders")
    first = sorted(p for p in folder.iterdir() if p.is_dir())[0]
    first.rename(folder / "zebra")
    with pytest.raises(clsviz.FormatError, match="zebra") as ei:
        evaluate(folder, demo_bundle)
    assert "circle" in str(ei.value) or dataset.CLASSES[0] in str(ei.value)  # lists the known classes

    flat = tmp_path / "flat"
    flat.mkdir()
    img = next(p for p in (folder / "zebra").iterdir())
    shutil.copy(img, flat / "a.png")
    (flat / "labels.txt").write_text("a.png zebra\n")
    with pytest.raises(clsviz.FormatError, match="zebra.*line 1"):
        read_labelled_folder(flat, dataset.CLASSES)
    (flat / "labels.txt").write_text("missing.png circle\n")
    with pytest.raises(clsviz.FormatError, match="missing.png"):
        read_labelled_folder(flat, dataset.CLASSES)


def test_labels_txt_accepts_class_ids_as_paddleclas_lists_do(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    (tmp_path / "labels.txt").write_text("x.png 2 hard\n")
    paths, ys, layout = read_labelled_folder(tmp_path, ["a", "b", "c"])
    assert [p.name for p in paths] == ["x.png"] and ys == [2] and layout == "labels_txt"
    with pytest.raises(clsviz.FormatError, match="labels.txt nor class sub-folders"):
        read_labelled_folder(_empty(tmp_path), ["a"])
    with pytest.raises(clsviz.OptionError):
        evaluate(tmp_path, tmp_path, modes="nope")


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_evaluate_cli(demo_bundle, tmp_path):
    folder = tmp_path / "val"
    dataset.write_folder(folder, 2, 11, layout="labels_txt")
    out = tmp_path / "out"
    p = run_cli("evaluate", folder, "--bundle", demo_bundle, "--mode", "predictor,executor", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "predictor" in p.stdout and "executor" in p.stdout and "accuracy" in p.stdout
    assert (out / "evaluation.html").is_file()
    _assert_png(out / "confusion.png")
    p = run_cli("evaluate", folder, "--bundle", demo_bundle, "--json", "--out", out)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert list(d["modes"]) == ["predictor"] and d["images"] == 16
    p = run_cli("evaluate", tmp_path / "nowhere", "--bundle", demo_bundle)
    assert p.returncode == 1 and "FormatError" in p.stderr and "Traceback" not in p.stderr
