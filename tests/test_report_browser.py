"""The demo's report.html and the evaluation page in real headless Chromium.

Screenshots go to ``test-artifacts/`` (gitignored) for a person to look at.
"""
from __future__ import annotations

import pytest
from PIL import Image

from browser import ARTIFACTS, probe_images, require_chromium, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    require_chromium()
    from clsviz.demo.run import run_demo

    out = tmp_path_factory.mktemp("demo-browser")
    assert run_demo(out, repeats=1) == 0
    return out


def _check_page(html_path, shot_name, *, min_images):
    info = probe_images(html_path)
    imgs = info["images"]
    assert len(imgs) >= min_images, info
    broken = [i for i in imgs if not (i["complete"] and i["naturalWidth"] > 0 and i["naturalHeight"] > 0)]
    assert not broken, f"images that did not render: {broken}"
    assert all(i["width"] > 0 for i in imgs), "an image is laid out with no width"
    assert info["external"] == 0, "the page must not load anything from outside itself"
    assert info["width"] <= 1280, f"the page overflows horizontally ({info['width']}px)"
    png = screenshot(html_path, ARTIFACTS / shot_name)
    with Image.open(png) as im:
        assert im.width == 1280 and im.height >= 900
        # not a blank page: the hero header is dark blue, the body light
        px = im.convert("RGB").resize((64, 64)).getcolors(64 * 64)
        assert len(px) > 20
    return info


def test_demo_report_renders_every_image(demo_out):
    import json

    r = json.loads((demo_out / "results.json").read_text())
    n = len(r["images"])
    # one thumbnail + one top-k chart per image, plus the latency chart
    info = _check_page(demo_out / "report.html", "demo-report.png", min_images=2 * n + 1)
    assert info["title"].startswith("clsviz demo")


def test_evaluation_page_renders(demo_out, tmp_path):
    from clsviz.demo.run import sample_dir
    from clsviz.evaluate import evaluate, write_evaluation_html

    rep = evaluate(sample_dir(tmp_path), demo_out / "bundle", modes="all")
    page = write_evaluation_html(rep, tmp_path / "ev")
    _check_page(page, "evaluation.png", min_images=3)
