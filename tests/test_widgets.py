"""Drive the widgets from Python: set controls, click buttons, read what the panels show."""
from __future__ import annotations

import datetime
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

W = pytest.importorskip("ipywidgets")

import clsviz  # noqa: E402
from clsviz.widgets import Explorer, ExportPanel, FileChooser, FormatTour  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def html_of(output) -> str:
    return "\n".join(o["data"].get("text/html", "") for o in output.outputs)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gallery")
    rng = np.random.default_rng(3)
    for i in range(3):
        arr = (rng.random((72, 90, 3)) * 255).astype(np.uint8)
        arr[10:50, 20:60] = [30 * i, 200, 90]
        Image.fromarray(arr).save(d / f"shape{i}.png")
    return d


def quick(ex: Explorer) -> Explorer:
    ex.repeats.value, ex.warmup.value = 2, 0
    return ex


def test_explorer_click_run_shows_every_mode(resnet18_bundle, images):
    ex = quick(Explorer(resnet18_bundle, images, selected=2))
    assert [t.toggle.value for t in ex.tiles] == [True, True, False]
    assert "10 classes" in ex.model_info.value
    ex.run_button.click()
    cmp = ex.value
    assert isinstance(cmp, clsviz.Comparison)
    assert list(cmp.modes) == list(clsviz.MODES) and len(cmp.images) == 2
    page = html_of(ex.output)
    for m in clsviz.MODES:
        assert f"data-mode='{m}'" in page
    assert "modes agree" in page and "max |Δ|" in page and "top-1 agree 100%" in page
    assert page.count("class='clsviz-chart") == 4  # a top-k chart per mode + latency
    from clsviz.render import latency_table

    assert latency_table(cmp) in page  # the one latency table, as in the repr and report.html
    assert ex.progress.value == ex.progress.max and ex.progress.bar_style == "success"
    assert ex.image_select.options[1][0] == "shape1.png"
    ex.image_select.value = 1
    assert "<h4>shape1.png</h4>" in html_of(ex.output)
    ex.close()


def test_explorer_caches_engines_per_options(resnet18_bundle, images):
    ex = quick(Explorer(resnet18_bundle, images, selected=1))
    ex.run()
    first = dict(ex._engines)
    ex.run()
    assert ex._engines == first  # nothing rebuilt
    ex.onednn.value = False  # a predictor-only knob: only the predictor is rebuilt
    cmp = ex.run()
    assert len(ex._engines) == len(first) + 1
    assert "CPU ·" in cmp.modes["predictor"].description and "oneDNN" not in cmp.modes["predictor"].description
    ex.modes["executor"].value = False
    ex.top_k.value = 2
    cmp = ex.run()
    assert list(cmp.modes) == ["predictor", "dygraph"] and len(cmp.modes["dygraph"].predictions[0].topk) == 2
    ex.close()


def test_explorer_errors_show_in_output(resnet18_bundle, images, tmp_path):
    ex = quick(Explorer(resnet18_bundle, images, selected=1))
    ex.model_path.value = str(tmp_path / "nope")
    assert "not found" in ex.model_info.value
    ex.run_button.click()
    page = html_of(ex.output)
    assert "<b>FormatError</b>" in page and "model path not found" in page
    assert ex.value is None and ex.progress.bar_style == "danger" and not ex.run_button.disabled
    with pytest.raises(clsviz.FormatError):
        ex.run()

    ex.model_path.value = str(resnet18_bundle)
    for cb in ex.modes.values():
        cb.value = False
    ex.run_button.click()
    assert "<b>OptionError</b>" in html_of(ex.output) and "no mode ticked" in html_of(ex.output)

    ex.modes["predictor"].value = True
    ex.select_none.click()
    ex.run_button.click()
    assert "no image ticked" in html_of(ex.output)
    ex.close()


def test_explorer_checkpoint_needs_arch_then_exports(resnet18_ckpt, images):
    ex = quick(Explorer(resnet18_ckpt, images, selected=1))
    assert "the network comes from code" in ex.model_info.value
    ex.run_button.click()
    assert "choose its architecture" in html_of(ex.output)
    ex.arch.value = "ResNet18_vd"
    ex.img_size.value = 64
    cmp = ex.run()
    assert cmp.agree, cmp.to_text()
    tmp = ex._tmp.path()
    assert (tmp / "bundle0" / "inference.json").is_file()
    ex.close()
    assert not tmp.exists()


def test_explorer_upload_adds_a_ticked_image(resnet18_bundle, images):
    ex = quick(Explorer(resnet18_bundle, images, selected=0))
    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 20, 20)).save(buf, format="PNG")
    ex.upload.value = ({"name": "red.png", "type": "image/png", "size": len(buf.getvalue()),
                        "content": memoryview(buf.getvalue()),
                        "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert ex.tiles[0].key == "<upload> red.png" and ex.tiles[0].toggle.value
    assert ex.upload.value == ()  # handled and cleared: the same file can be uploaded again
    ex.modes["executor"].value = False
    cmp = ex.run()
    assert cmp.images == ("<upload> red.png",)
    ex.close()


def test_export_panel(resnet18_ckpt, tmp_path):
    out = tmp_path / "bundle"
    panel = ExportPanel(resnet18_ckpt, "ResNet18_vd", out, img_size=64)
    panel.labels.value = ""
    panel.export_button.click()
    res = panel.value
    assert isinstance(res, clsviz.ExportResult) and res.class_num == 10
    page = html_of(panel.output)
    for name in ("inference.json", "inference.pdiparams", "inference.yml", "model.pdparams"):
        assert name in page and (out / name).is_file()
    assert "weights for the program" in page
    panel.export_button.click()  # the folder is now full: refused without force
    assert "<b>ExportError</b>" in html_of(panel.output) and "not empty" in html_of(panel.output)
    panel.force.value = True
    panel.export_button.click()
    assert "Exported" in html_of(panel.output)
    panel.arch.value = "ResNet34_vd"
    panel.export_button.click()
    assert "<b>CheckpointMismatch</b>" in html_of(panel.output)


def test_format_tour(resnet18_bundle, resnet18_ckpt, tmp_path):
    tour = FormatTour(resnet18_bundle)
    assert tour.value.is_model and tour.value.layout == "bundle"
    page = html_of(tour.output)
    assert "inference.json" in page and "inference.pdiparams" in page and "predictor" in page

    tour.path.value = str(resnet18_ckpt)
    tour.compare_with.value = str(resnet18_bundle)
    tour.inspect_button.click()
    assert tour.value.same_weights and "equal" in html_of(tour.output)

    (tmp_path / "junk.txt").write_text("hello")
    tour.compare_with.value = ""
    tour.path.value = str(tmp_path / "junk.txt")
    tour.inspect_button.click()
    assert not tour.value.is_model and "not a Paddle model" in html_of(tour.output)

    tour.path.value = str(tmp_path / "nope")
    tour.inspect_button.click()
    assert "<b>FormatError</b>" in html_of(tour.output) and "path not found" in html_of(tour.output)


def test_file_chooser_navigates_and_picks(resnet18_bundle, tmp_path):
    picked = []
    fc = FileChooser(resnet18_bundle.parent, on_pick=picked.append)
    labels = [label for label, _ in fc.listing.options]
    assert f"📦 {resnet18_bundle.name}/" in labels and labels[0] == "📁 .."
    fc.listing.value = "dir:" + str(resnet18_bundle.resolve())  # selecting a folder opens it
    assert fc.cwd == resnet18_bundle.resolve() and "this folder is a model" in fc.note.value
    assert any("inference.json" in label for label, _ in fc.listing.options)
    fc.pick.click()  # nothing highlighted: the folder itself
    assert picked == [str(resnet18_bundle.resolve())] and fc.value == picked[0]
    fc.listing.value = str(resnet18_bundle.resolve() / "inference.json")
    fc.pick.click()
    assert picked[-1].endswith("inference.json")
    fc.folder.value = str(resnet18_bundle.resolve().parent)
    assert fc.cwd == resnet18_bundle.resolve().parent


def test_explorer_picks_a_model_with_the_chooser(resnet18_bundle, images):
    ex = Explorer(resnet18_bundle, images, selected=1, chooser_start=resnet18_bundle.parent)
    ex.browse.value = True
    assert ex.chooser.layout.display is None
    ex.chooser.choose(resnet18_bundle / "inference.json")
    assert ex.model_path.value.endswith("inference.json") and ex.browse.value is False
    assert "paddle3 inference" in ex.model_info.value or "bundle" in ex.model_info.value
    ex.close()


def test_only_widgets_imports_ipywidgets():
    offenders = [p.relative_to(REPO) for p in (REPO / "clsviz").rglob("*.py")
                 if p.name != "widgets.py" and "ipywidgets" in p.read_text()]
    assert offenders == []
    code = "import sys, clsviz, clsviz.cli; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_explorer_ticks_named_images(resnet18_bundle, images):
    ex = Explorer(resnet18_bundle, images, selected=["shape2.png"])
    assert [t.toggle.value for t in ex.tiles] == [False, False, True]
    assert "1 of 3 ticked" in ex.image_count.value
    ex.select_all.click()
    assert ex.selected_images() == sorted(images.glob("*.png")) and "3 of 3" in ex.image_count.value
    ex.close()


def test_arch_lists_offer_the_model_zoo_in_both_spellings(resnet18_bundle, images):
    panel = ExportPanel(arch="PP-LCNet_x1_0")                     # PaddleX spelling selects the network
    assert panel.arch.value == "PPLCNet_x1_0"
    assert "PaddleX <code>PP-LCNet_x1_0</code>" in panel.arch_info.value and "GFLOPs @224" in panel.arch_info.value
    for name in ("PPLCNetV2_base", "MobileNetV3_small_x0_35", "PPHGNetV2_B6", "ResNet152", "ResNet50_vd"):
        assert name in panel.arch.options
    panel.arch.value = "PPHGNetV2_B0"
    assert "PP-HGNetV2-B0" in panel.arch_info.value and "6.00 M params" in panel.arch_info.value
    assert ExportPanel().arch.value == "PPLCNet_x1_0"            # the zoo's most used network by default
    ex = Explorer(resnet18_bundle, images, arch="pp-hgnetv2-b3", selected=0)
    assert ex.arch.value == "PPHGNetV2_B3" and "PP-HGNetV2-B3" in ex.arch_info.value
    assert "MobileNetV3_large_x1_0" in ex.arch.options
    ex.arch.value = "(from the bundle)"
    assert ex.arch_info.value == ""
    ex.close()


def test_explorer_model_line_and_mode_tooltips_ask_capabilities(images, monkeypatch):
    """The Explorer says which modes run a model from clsviz.engines.capabilities, the answer load
    gives: a program with an op the dygraph rebuild does not cover is 'not dygraph', with why."""
    import fixtures_legacy as FX

    from clsviz.engines import capability
    from clsviz.formats import detect, rebuild

    fx = FX.shared("tiny_cnn")["fluid_inference_loose"]
    ex = Explorer(fx.path, images)
    assert "runs in every mode" in ex.model_info.value
    assert ex.modes["executor"].tooltip == capability(detect.resolve(fx.path), "executor").detail
    assert "worker process" in ex.modes["executor"].tooltip
    monkeypatch.setattr(rebuild, "SUPPORTED_OPS", rebuild.SUPPORTED_OPS - {"relu"})
    ex._describe_model()
    assert "not dygraph: the program cannot be rebuilt: ops not covered: relu" in ex.model_info.value
    assert "runs in predictor, executor" in ex.model_info.value and "relu" in ex.modes["dygraph"].tooltip
    with pytest.raises(clsviz.FormatError, match="relu"):  # load says the same
        clsviz.load(fx.path, mode="dygraph")
