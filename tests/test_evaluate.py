"""``clsviz.evaluate``: accuracy of the demo bundle on freshly generated labelled folders."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import clsviz
from clsviz.demo import dataset
from clsviz.demo.run import export_demo
from clsviz.evaluate import Evaluation, evaluate, read_labelled_folder, write_evaluation_html

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "benchmarks"))
from scale_bench import noise_folder  # noqa: E402  (small labelled images, as the benchmark writes them)

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
    assert isinstance(rep, Evaluation) and clsviz.evaluate.EvalReport is Evaluation
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
    assert repr(rep).startswith(f"<Evaluation of {n} images") and len(repr(rep)) < 200
    assert repr(r).startswith("<ModeEval predictor: accuracy")


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


# --- streaming: unreadable images, worker threads, memory that does not grow with the folder ----

def _with_bad_images(folder, layout):
    """Two unreadable files among the images: garbage bytes and an empty file."""
    if layout == "folders":
        bad = [folder / dataset.CLASSES[0] / "zz_garbage.png", folder / dataset.CLASSES[1] / "zz_empty.jpg"]
    else:
        bad = [folder / "zz_garbage.png", folder / "zz_empty.jpg"]
        with open(folder / "labels.txt", "a") as f:
            f.write(f"zz_garbage.png {dataset.CLASSES[0]}\nzz_empty.jpg {dataset.CLASSES[1]}\n")
    bad[0].write_bytes(b"GIF89a this is not really an image")
    bad[1].write_bytes(b"")
    return bad


def test_unreadable_images_are_recorded_not_fatal(demo_bundle, tmp_path):
    folder = tmp_path / "val"
    dataset.write_folder(folder, 3, 7, layout="labels_txt")
    bad = _with_bad_images(folder, "labels_txt")
    rep = clsviz.evaluate(folder, demo_bundle, modes="predictor,dygraph", batch_size=4, progress=False)
    assert isinstance(rep, clsviz.Evaluation) and len(rep.paths) == 26
    for r in rep.modes.values():
        assert [u.path for u in r.unreadable] == [str(p) for p in bad]
        assert "not an image" in r.unreadable[0].error and "empty" in r.unreadable[1].error
        assert r.scored == 24 and r.confusion.sum() == 24
        assert [r.y_pred[rep.paths.index(str(p))] for p in bad] == [-1, -1]
        assert r.accuracy == (24 - len(r.misclassified)) / 24
    assert [u.path for u in rep.unreadable] == [str(p) for p in bad]
    a, = rep.agreement
    assert (a.mode, a.reference, a.images) == ("dygraph", "predictor", 24) and a.top1_agree == 1.0
    assert a.max_prob_diff < 1e-4 and a.differing == ()
    text = rep.to_text()
    assert "unreadable" in text and "zz_garbage.png" in text and "dygraph vs predictor" in text
    d = json.loads(json.dumps(rep.to_dict()))
    assert len(d["unreadable"]) == 2 and d["run"]["backend"] == "local" and d["run"]["images"] == 26
    page = write_evaluation_html(rep, tmp_path / "html").read_text()
    assert "Unreadable images" in page and "zz_empty.jpg" in page and "Agreement between modes" in page


def test_local_run_facts_and_progress_callback(demo_bundle, tmp_path):
    folder = tmp_path / "val"
    dataset.write_folder(folder, 2, 8, layout="folders")
    seen = []
    rep = evaluate(folder, demo_bundle, modes="predictor,executor", batch_size=3, cpu_threads=1,
                   progress=lambda done, total, mode: seen.append((done, total, mode)))
    assert seen[-1][:2] == (32, 32) and seen[0][:2] == (3, 32)  # the modes interleave: either may come first
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert {m for _, _, m in seen} == {"predictor", "executor"}
    run = rep.run
    assert (run.backend, run.workers, run.threads_per_worker, run.batch_size) == ("local", 1, 1, 3)
    assert run.images == 16 and run.modes == 2 and 0 < run.setup_seconds < run.seconds and run.peak_rss_mb > 0
    assert run.images_per_second == pytest.approx(32 / run.seconds)
    assert run.timing == "interleaved per batch" and "modes interleaved per batch" in run.to_text()
    for r in rep.modes.values():  # here the engines score one batch after another
        assert 0 < r.busy_seconds <= r.scoring_seconds * 1.001 <= r.seconds * 1.01
        assert r.steady_images_per_second >= r.images_per_second * 0.99
        assert r.seconds < run.seconds  # its own batches only, not the other mode's in between
    with pytest.raises(clsviz.OptionError, match="workers"):
        evaluate(folder, demo_bundle, workers=2)
    with pytest.raises(clsviz.OptionError, match="unknown engine option"):
        evaluate(folder, demo_bundle, cpu_thread=1)


def test_local_modes_interleave_per_batch_in_a_shuffled_order(demo_bundle, tmp_path, monkeypatch):
    """Each batch is scored by every mode once, in an order shuffled per batch (the timing harness's
    rounds), recorded on the real classifiers' forward calls; the answers match one mode alone."""
    import clsviz.evaluate as ev_module

    folder = tmp_path / "val"
    dataset.write_folder(folder, 3, 5, layout="folders")
    calls, real_load = [], ev_module.load

    def recording_load(bundle, *, mode, **kw):
        clf = real_load(bundle, mode=mode, **kw)
        real = clf.forward
        clf.forward = lambda batch, real=real: calls.append((mode, len(batch))) or real(batch)
        return clf

    monkeypatch.setattr(ev_module, "load", recording_load)
    modes = ("predictor", "executor", "dygraph")
    rep = evaluate(folder, demo_bundle, modes=modes, batch_size=2, cpu_threads=1, progress=False)
    n = len(rep.paths)
    batches = -(-n // 2)
    assert len(calls) == batches * len(modes)
    rounds = [tuple(m for m, _ in calls[i:i + 3]) for i in range(0, len(calls), 3)]
    assert all(sorted(r) == sorted(modes) for r in rounds)  # every mode once per batch
    sizes = [size for _, size in calls]
    assert sizes == [2] * (len(calls) - 3) + [n - 2 * (batches - 1)] * 3  # round i scores batch i in every mode
    assert len(set(rounds)) > 1  # not one fixed order: shuffled per round
    monkeypatch.setattr(ev_module, "load", real_load)
    for m in modes:
        alone = evaluate(folder, demo_bundle, modes=m, batch_size=2, cpu_threads=1, progress=False).modes[m]
        got = rep.modes[m]
        assert got.y_pred == alone.y_pred and np.array_equal(got.confusion, alone.confusion)
        assert got.misclassified == alone.misclassified and np.allclose(got.scores, alone.scores)


def test_executor_mode_runs_from_another_thread(demo_bundle, rng_image):
    """Ray Data calls actors from a worker thread, where paddle.enable_static() is a no-op."""
    from concurrent.futures import ThreadPoolExecutor

    clf = clsviz.load(demo_bundle, mode="executor")
    x = clf.preprocess(rng_image)
    here = clf.forward(x)
    with ThreadPoolExecutor(1) as pool:
        there = pool.submit(clf.forward, x).result()
        built_there = pool.submit(lambda: clsviz.load(demo_bundle, mode="executor")).result()
        again = pool.submit(built_there.forward, x).result()
    assert np.array_equal(here, there) and np.array_equal(here, again)
    from clsviz._paddle import paddle

    assert paddle.in_dynamic_mode()  # the scope put the mode back


def test_import_does_not_need_ray():
    code = ("import sys; sys.modules['ray'] = None\n"  # as if ray were not installed
            "import clsviz, clsviz.evaluate, clsviz.cluster\n"
            "try:\n    clsviz.cluster.connect(True)\n"
            "except clsviz.BackendUnavailable as e:\n    print('HINT', e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "HINT" in p.stdout and "pip install 'clsviz[ray]'" in p.stdout


MEMORY_PROBE = r"""
import json, sys
import clsviz
from clsviz.timing import peak_rss_mb, reset_peak_rss, rss_mb
small, big, bundle, what = sys.argv[1:5]
if what == "predict":
    clf = clsviz.load(bundle, mode="predictor", batch_size=8, cpu_threads=1)
    clf.predict(small)                      # engine warm, allocator primed
    assert reset_peak_rss()
    base = rss_mb()
    n = len(clf.predict(big, top_k=1))
else:
    clsviz.evaluate(small, bundle, batch_size=8, cpu_threads=1, progress=False)
    assert reset_peak_rss()
    base = rss_mb()
    n = len(clsviz.evaluate(big, bundle, batch_size=8, cpu_threads=1, progress=False).paths)
print(json.dumps({"n": n, "growth_mb": peak_rss_mb() - base}))
"""


@pytest.mark.parametrize("what", ["predict", "evaluate"])
def test_memory_does_not_grow_with_the_folder(what, tmp_path_factory):
    """Peak RSS for 4x the images stays put.  Holding the folder's preprocessed images (the old
    predict) would add 3 x 150 x 3 x 224 x 224 x 4 bytes = 271 MB here; streaming adds ~0."""
    from clsviz.demo.run import export_demo
    from clsviz.transforms import Preprocess

    root = tmp_path_factory.mktemp("mem")
    bundle = export_demo(root / "bundle224", preprocess=Preprocess(resize_short=256, crop_size=224)).out_dir
    small, n = noise_folder(root / "small", 16, 1), 150
    growth = {}
    for count in (n, 4 * n):
        folder = noise_folder(root / f"f{count}", count, count)
        p = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(small), str(folder), str(bundle), what],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout.strip().splitlines()[-1])
        assert r["n"] == count
        growth[count] = r["growth_mb"]
    per_image_mb = 3 * 224 * 224 * 4 / 2 ** 20
    assert growth[4 * n] - growth[n] < 0.1 * 3 * n * per_image_mb, growth


def test_evaluate_reads_the_labels_the_engine_uses(tmp_path):
    """A 1000-class bundle without labels is taken as ImageNet-1k by the engines; evaluate maps the
    folder's class names through the same list, before any engine is built."""
    from clsviz._paddle import paddle
    from clsviz.engines import load_config

    paddle.seed(0)
    net = clsviz.get_model("ResNet18_vd_x0_25", class_num=1000)
    bundle = tmp_path / "b1000"
    clsviz.export("ResNet18_vd_x0_25", net.state_dict(), bundle, image_shape=(3, 32, 32))
    with clsviz.load(bundle) as clf:
        assert load_config(bundle).labels == clf.config.labels and len(clf.config.labels) == 1000
    folder = tmp_path / "val"
    folder.mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(folder / "a.png")
    (folder / "labels.txt").write_text(f"a.png {clf.config.labels[7]}\n")
    rep = evaluate(folder, bundle, progress=False)
    assert rep.y_true == (7,) and rep.labels == tuple(clf.config.labels)
