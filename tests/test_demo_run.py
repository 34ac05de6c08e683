"""``python -m clsviz demo``: the bundled model, all three real engines, real files."""
from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

import clsviz
from clsviz.demo import run as demo_run

from conftest import run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One real run of the CLI command, shared by the checks below."""
    out = tmp_path_factory.mktemp("demo") / "out"
    p = run_cli("demo", "--out", out, "--repeats", "2", timeout=600)
    return out, p


def test_demo_exits_zero_and_writes_report_and_results(demo):
    out, p = demo
    assert p.returncode == 0, f"demo failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-4000:]}"
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "results.json").is_file()
    assert (out / "bundle" / "inference.yml").is_file()


def test_demo_results_show_every_mode_agreeing_and_correct(demo):
    out, _ = demo
    r = json.loads((out / "results.json").read_text())
    assert set(r["modes"]) == set(clsviz.MODES)
    assert r["agreement"]["max_abs_diff"] <= 1e-4
    assert r["agreement"]["agree"] is True
    assert {a["mode"] for a in r["agreement"]["pairs"]} == set(clsviz.MODES) - {r["reference"]}
    assert r["ok"] is True and r["problems"] == []
    assert r["export"]["model_name"] == "ResNet18_vd_x0_25" and r["export"]["class_num"] == 8
    samples = r["samples"]
    assert len(samples) == len(r["images"]) >= 8
    labelled = [s for s in samples if s["true_label"] and not s["hard"]]
    assert len(labelled) >= 8, "sample_images/labels.txt should label most samples"
    for s in labelled:
        assert set(s["correct"]) == set(clsviz.MODES)
        assert all(s["correct"].values()), f"{s['file']}: {s}"
    # each mode's predictions in results.json say the same as the per-sample flags
    for m, rep in r["modes"].items():
        for s, tk in zip(samples, rep["topk"]):
            if s["true_label"]:
                assert (tk["topk"][0]["label"] == s["true_label"]) == s["correct"][m]


def test_demo_prints_a_side_by_side_table(demo):
    out, p = demo
    head = p.stdout.splitlines()[0]
    for m in clsviz.MODES:
        assert f"{m} top-3" in head
    assert "true" in head
    assert "modes AGREE" in p.stdout
    assert str(out / "report.html") in p.stdout
    # build times go to stderr, one line per mode
    for m in clsviz.MODES:
        assert re.search(rf"built {m}\s+in \d+\.\d\ds", p.stderr), p.stderr[-2000:]


def test_demo_report_is_self_contained(demo):
    out, _ = demo
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    srcs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)""", page)
    assert srcs and all(s.startswith("data:") for s in srcs), [s[:60] for s in srcs if not s.startswith("data:")]
    r = json.loads((out / "results.json").read_text())
    for s in r["samples"]:
        assert s["file"] in page  # every image has its row
    assert "modes agree" in page and "ResNet18_vd_x0_25" in page
    # the hard cases get saliency maps: Grad-CAM (dygraph) beside occlusion (predictor)
    why = page.split("Why did it say that?", 1)[1].split("</section>", 1)[0]
    hard = [s["file"] for s in r["samples"] if s["hard"]]
    assert hard and all(f in why for f in hard)
    assert why.count('class="explain-row"') == len(hard)
    assert why.count(">gradcam · dygraph<br>") == why.count(">occlusion · predictor<br>") == len(hard)


def test_run_demo_returns_1_and_says_why_when_a_label_is_wrong(tmp_path, capsys):
    """The exit code is a real check: a wrong label on a non-hard sample fails the demo."""
    import shutil

    src = demo_run.sample_dir(tmp_path / "generated")
    samples = tmp_path / "samples"
    shutil.copytree(src, samples)
    lines = (samples / "labels.txt").read_text().splitlines()
    labels = clsviz.read_labels(demo_run.LABELS)
    i = next(i for i, ln in enumerate(lines) if ln.split() and "hard" not in ln.split()[2:])
    name, true = lines[i].split()[:2]
    lines[i] = f"{name} {next(c for c in labels if c != true)}"
    (samples / "labels.txt").write_text("\n".join(lines) + "\n")
    rc = demo_run.run_demo(tmp_path / "out", repeats=1, samples=samples)
    err = capsys.readouterr().err
    assert rc == 1
    assert "demo FAILED" in err and name in err
    r = json.loads((tmp_path / "out" / "results.json").read_text())
    assert r["ok"] is False and any(name in p for p in r["problems"])


def test_read_sample_labels(tmp_path):
    (tmp_path / "labels.txt").write_text("# comment\na.png circle\n\nb.png ring hard\n")
    assert demo_run.read_sample_labels(tmp_path) == {"a.png": ("circle", False), "b.png": ("ring", True)}
    (tmp_path / "labels.txt").write_text("a.png\n")
    with pytest.raises(clsviz.FormatError, match="line 1"):
        demo_run.read_sample_labels(tmp_path)


# --- viz: figures without pyplot ----------------------------------------------------------------

def _fake_comparison():
    from clsviz.results import Agreement, Comparison, ModeReport, Prediction, StageStats, TopK

    labels = ["circle", "square", "ring"]
    modes = {}
    for j, m in enumerate(clsviz.MODES):
        preds = tuple(Prediction(f"img{i}.png", m, tuple(TopK(c, labels[c], s) for c, s in
                                                          ((i % 3, 0.8), ((i + 1) % 3, 0.15), ((i + 2) % 3, 0.05))))
                      for i in range(3))
        st = StageStats.of(np.array([1.0, 1.2, 1.5]) * 1e-3 * (j + 1))
        modes[m] = ModeReport(m, preds, {"preprocess": st, "forward": st, "postprocess": st},
                              StageStats.of(np.array([3.0, 3.6, 5.0]) * 1e-3 * (j + 1)), 0.1 * j, 100.0, 120.0, 1)
    ags = tuple(Agreement(m, "predictor", 1e-6, 1.0, 1.0, 1.0) for m in clsviz.MODES[1:])
    return Comparison(("img0.png", "img1.png", "img2.png"), modes, ags, "predictor", 3)


def test_viz_figures_render_without_touching_pyplot():
    from clsviz import viz

    before = set(sys.modules)
    cmp = _fake_comparison()
    figs = [viz.topk_bars({m: r.predictions[0] for m, r in cmp.modes.items()}, true_label="circle"),
            viz.topk_bars(cmp.modes["predictor"].predictions[1]),
            viz.latency_bars(cmp),
            viz.confusion_matrix([0, 1, 2, 2], [0, 1, 1, 2], ["a", "b", "c"])]
    assert len(figs[0].axes) == 3 and len(figs[1].axes) == 1
    for f in figs:
        png = viz.fig_to_png_bytes(f)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert viz.fig_to_data_uri(figs[2]).startswith("data:image/png;base64,")
    assert "matplotlib.pyplot" not in set(sys.modules) - before
    assert viz.confusion_counts([0, 1, 2, 2], [0, 1, 1, 2], 3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_write_report_from_a_comparison(tmp_path):
    from clsviz.report import write_report

    cmp = _fake_comparison()
    p = write_report(tmp_path / "r" / "report.html", cmp, title="T <x>", true_labels=["circle", "circle", "ring"],
                     hard={"img2.png"}, extra_sections=[("More", "<p>extra</p>")])
    page = p.read_text()
    assert "T &lt;x&gt;" in page and "<p>extra</p>" in page
    assert "no preview" in page  # the images do not exist: a placeholder, not a broken <img>
    assert "1/2 correct" in page  # img0 right, img1 wrong; img2 is a hard case, counted apart
    assert "hard cases: 1/1 right" in page
    with pytest.raises(clsviz.OptionError):
        write_report(tmp_path / "x.html", cmp, title="t", true_labels=["a"])
