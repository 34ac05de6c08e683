"""inference.yml both ways (issue #11): clsviz writes what PaddleX 3.x / PaddleClas deploy read
unchanged, and reads their folders with their labels and cv2 preprocessing.

The PaddleX facts checked here (op names, interpolation names, PostProcess keys) are PaddleX
3.7.2's; tests/test_paddlex_client.py runs PaddleX itself on an exported bundle.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import clsviz
from clsviz.bundle import deploy_check, paddlex_model_names, read_labels
from clsviz.errors import FormatError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_wild import hand_cv2, normalise, raw_paddle  # noqa: E402

DEMO = Path(clsviz.__file__).parent / "demo"
LABELS = DEMO / "labels.txt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("px")
    kw = dict(labels=LABELS, image_shape=(3, 64, 64), include_checkpoint=True)
    a = clsviz.export("ResNet18_vd_x0_25", DEMO / "demo_model.pdparams", root / "softmax",
                      model_name="ResNet18_vd", preprocess=clsviz.Preprocess(73, 64, backend="cv2"), **kw)
    b = clsviz.export("ResNet18_vd_x0_25", DEMO / "demo_model.pdparams", root / "logits", softmax=False, **kw)
    return a, b


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory):
    y, x = np.mgrid[0:90, 0:120]
    rgb = np.stack([x * 2, y * 2, (x + y) % 256], axis=-1).astype(np.uint8)
    p = tmp_path_factory.mktemp("img") / "c.jpg"
    Image.fromarray(rgb).save(p, quality=95)
    return p


def test_the_sidecar_holds_only_what_paddlex_reads(exported):
    a, _ = exported
    d = yaml.safe_load((a.out_dir / "inference.yml").read_text())
    assert d["Global"] == {"model_name": "ResNet18_vd"}
    assert d["PostProcess"] == {"Topk": {"topk": 5, "label_list": list(read_labels(LABELS))}}
    ops = [next(iter(op)) for op in d["PreProcess"]["transform_ops"]]
    assert ops == ["ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage"]
    assert d["PreProcess"]["transform_ops"][0]["ResizeImage"]["interpolation"] == "LINEAR"
    shapes = d["Hpi"]["backend_configs"]["paddle_infer"]["trt_dynamic_shapes"]["x"]
    assert shapes == [[1, 3, 64, 64], [1, 3, 64, 64], [8, 3, 64, 64]]
    assert d["clsviz"]["backend"] == "cv2" and d["clsviz"]["softmax"] is True
    assert d["clsviz"]["arch"] == "ResNet18_vd_x0_25"
    assert "&id" not in (a.out_dir / "inference.yml").read_text()   # no YAML anchors
    assert deploy_check(d) == ()
    report = clsviz.inspect(a.out_dir)
    assert report.deploy_check == () and "PaddleX ✓" in report.to_text()


def test_softmax_by_default_never_twice_and_opt_out(exported, jpeg):
    a, b = exported
    assert a.softmax and not b.softmax
    assert len(b.notes) == 1 and "PaddleX" in b.notes[0]          # ResNet18_vd_x0_25: not PaddleX's
    for mode in clsviz.MODES:
        with clsviz.load(a.out_dir, mode=mode) as ca, clsviz.load(b.out_dir, mode=mode) as cb:
            assert ca.config.softmax and not cb.config.softmax
            pa = ca.forward(ca.preprocess(jpeg))
            lb = cb.forward(ca.preprocess(jpeg))
            np.testing.assert_allclose(pa.sum(axis=1), 1.0, atol=1e-5)
            e = np.exp(lb - lb.max(axis=1, keepdims=True))
            np.testing.assert_allclose(pa, e / e.sum(axis=1, keepdims=True), atol=1e-5, err_msg=mode)
            # predict applies no second softmax: its scores are the program's probabilities
            top = ca.predict(jpeg, top_k=1)[0].topk[0]
            assert abs(top.score - float(pa[0].max())) < 1e-5
    from clsviz.export import _is_probabilities

    z = np.random.default_rng(0).standard_normal((2, 8))
    assert _is_probabilities(np.exp(z) / np.exp(z).sum(1, keepdims=True)) and not _is_probabilities(z)
    assert deploy_check(yaml.safe_load((b.out_dir / "inference.yml").read_text()), softmax=False)


def test_cli_no_softmax_and_model_name(tmp_path):
    from conftest import run_cli

    p = run_cli("export", "-m", "ResNet18_vd_x0_25", "-p", DEMO / "demo_model.pdparams", "-o", tmp_path / "o",
                "--img_size", "32", "--no-softmax", "--model_name", "PP-LCNet_x1_0", "--json", check=True)
    import json

    r = json.loads(p.stdout)
    assert r["softmax"] is False and r["model_name"] == "PP-LCNet_x1_0" and r["notes"] == []
    d = yaml.safe_load((tmp_path / "o" / "inference.yml").read_text())
    assert d["Global"]["model_name"] == "PP-LCNet_x1_0" and d["clsviz"]["softmax"] is False
    assert "PP-LCNet_x1_0" in paddlex_model_names() and len(paddlex_model_names()) == 84


def test_an_older_clsviz_bundle_still_loads(exported, tmp_path, jpeg):
    """The sidecar layout before PaddleX compatibility: Global.clsviz, main_indicator, bilinear."""
    _, b = exported
    old = tmp_path / "old"
    shutil.copytree(b.out_dir, old)
    d = yaml.safe_load((old / "inference.yml").read_text())
    section = d.pop("clsviz")
    section.pop("backend")
    section.pop("arch", None)
    d.pop("Hpi")
    d["Global"]["clsviz"] = section
    d["PostProcess"] = {"main_indicator": "Topk", **d["PostProcess"]}
    d["PreProcess"]["transform_ops"][0]["ResizeImage"]["interpolation"] = "bilinear"
    (old / "inference.yml").write_text(yaml.safe_dump(d))
    for mode in clsviz.MODES:
        with clsviz.load(old, mode=mode) as c, clsviz.load(b.out_dir, mode=mode) as ref:
            assert c.config.preprocess.backend == "pil"   # what older exports were made with
            assert c.config.labels == ref.config.labels
            np.testing.assert_allclose(c.forward(c.preprocess(jpeg)), ref.forward(ref.preprocess(jpeg)), atol=1e-5)
    problems = deploy_check(d)
    assert any("main_indicator" in p for p in problems) and any("bilinear" in p for p in problems)


def _paddlex_folder(src: Path, dst: Path, *, labels, extra_ops=()) -> Path:
    """A folder laid out as PaddleX exports it: inference.json + .pdiparams + an inference.yml
    written the way PaddleX writes one (no clsviz section)."""
    dst.mkdir()
    for n in ("inference.json", "inference.pdiparams"):
        shutil.copy(src / n, dst / n)
    shapes = {"x": [[1, 3, 64, 64], [1, 3, 64, 64], [8, 3, 64, 64]]}
    doc = {"Global": {"model_name": "ResNet18_vd"},
           "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": shapes},
                                       "tensorrt": {"dynamic_shapes": shapes}}},
           "PreProcess": {"transform_ops": [
               {"ResizeImage": {"resize_short": 73}}, {"CropImage": {"size": 64}},
               {"NormalizeImage": {"channel_num": 3, "mean": [0.485, 0.456, 0.406], "order": "",
                                   "scale": 0.00392156862745098, "std": [0.229, 0.224, 0.225]}},
               *extra_ops, {"ToCHWImage": None}]},
           "PostProcess": {"Topk": {"topk": 5, "label_list": list(labels)}}}
    (dst / "inference.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def test_a_paddlex_folder_runs_with_its_labels_and_cv2_preprocessing(exported, tmp_path, jpeg):
    a, _ = exported
    labels = [f"shape {i}" for i in range(8)]
    folder = _paddlex_folder(a.out_dir, tmp_path / "px", labels=labels)
    x = normalise(hand_cv2(jpeg, grey=False, resize=73, crop=64)).transpose(2, 0, 1)[None]

    class M:  # what raw_paddle needs
        model_file, params_file = folder / "inference.json", folder / "inference.pdiparams"

    want = raw_paddle(M, x)[0]
    report = clsviz.inspect(folder)
    assert report.deploy_check == () and "cv2" in report.preprocess
    ready = [m.mode for m in report.modes if m.mode in clsviz.MODES and m.available]
    assert ready == ["predictor", "dygraph", "executor"], report.to_text()
    for mode in ready:
        with clsviz.load(folder, mode=mode) as c:
            assert c.config.preprocess.backend == "cv2" and c.config.softmax
            assert c.config.labels == tuple(labels)
            top = c.predict(jpeg, top_k=3)[0].topk
        assert [t.label for t in top] == [labels[i] for i in np.argsort(-want)[:3]]
        np.testing.assert_allclose([t.score for t in top], np.sort(want)[::-1][:3], atol=1e-5, err_msg=mode)


def test_unknown_op_in_a_paddlex_folder(exported, tmp_path):
    a, _ = exported
    folder = _paddlex_folder(a.out_dir, tmp_path / "px", labels=list("abcdefgh"),
                             extra_ops=({"TimmAutoAugment": {"prob": 0.5}},))
    with pytest.raises(FormatError, match="TimmAutoAugment"):
        clsviz.load(folder)
