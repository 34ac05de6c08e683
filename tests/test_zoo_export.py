"""The model zoo end to end: a PaddleClas-trained checkpoint through clsviz's CLI and engines.

* ``clsviz infer`` and ``clsviz export`` of a PPLCNet_x1_0 checkpoint saved by PaddleClas's
  own network (the oracle), with the answer computed by that network;
* for one network of every family, export → the predictor (paddle.inference, default IR
  passes and oneDNN) agrees with the dygraph network within 1e-4;
* a 1000-class checkpoint without labels gets ImageNet-1k class names, and says so.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

import clsviz
import paddleclas_oracle as oracle
from clsviz._paddle import dygraph_mode, paddle
from clsviz.bundle import IMAGENET1K_LABELS, read_labels
from conftest import run_cli
from paddleclas_oracle import calibrate_bn, random_state

TOL = 1e-4


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo_images")
    rng = np.random.default_rng(11)
    out = []
    for i, (h, w) in enumerate([(240, 320), (300, 200)]):
        arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        arr[h // 4:h // 2, w // 4:3 * w // 4] = [30 + 90 * i, 200 - 80 * i, 60]
        p = d / f"img{i}.jpg"
        Image.fromarray(arr).save(p, quality=92)
        out.append(p)
    return out


@pytest.fixture(scope="module")
def oracle_pplcnet(tmp_path_factory):
    """PaddleClas's PPLCNet_x1_0 (1000 classes), its own random init, BN calibrated, saved as PaddleClas saves."""
    net = oracle.build("PP-LCNet", "PPLCNet_x1_0", class_num=1000)
    calibrate_bn(net, np.random.default_rng(2).normal(0, 1, (4, 3, 224, 224)).astype(np.float32))
    p = tmp_path_factory.mktemp("oracle") / "PPLCNet_x1_0_pretrained.pdparams"
    with dygraph_mode():
        paddle.save(net.state_dict(), str(p))
    return net, p


def _oracle_topk(net, image, k=5):
    x = clsviz.Preprocess()(Image.open(image))[None]   # PaddleClas's default ImageNet preprocessing
    with dygraph_mode(), paddle.no_grad():
        probs = paddle.nn.functional.softmax(net(paddle.to_tensor(x))).numpy()[0]
    ids = np.argsort(-probs, kind="stable")[:k]
    return ids, probs[ids]


def test_cli_infer_and_export_of_a_paddleclas_checkpoint(oracle_pplcnet, images, tmp_path):
    net, ckpt = oracle_pplcnet
    names = read_labels(oracle.ppcls_dir() / "utils" / "imagenet1k_label_list.txt")  # PaddleClas's file
    ids, probs = _oracle_topk(net, images[0])
    assert probs[0] < 0.9, "a near one-hot output would hide ranking errors"

    infer = json.loads(run_cli("infer", f"--i={images[0]}", "--m=PP-LCNet_x1_0", f"--p={ckpt}", "--json",
                               check=True).stdout)
    top = infer["predictions"][0]["topk"]
    assert [t["class_id"] for t in top] == ids.tolist()
    np.testing.assert_allclose([t["score"] for t in top], probs, atol=TOL)
    assert [t["label"] for t in top] == [names[i] for i in ids]
    assert "ImageNet-1k" in infer["labels_note"]
    text = run_cli("infer", f"--i={images[0]}", "--m=PPLCNet_x1_0", f"--p={ckpt}", check=True).stdout
    assert "ImageNet-1k class names, assumed" in text and names[ids[0]] in text

    out = tmp_path / "bundle"
    exp = json.loads(run_cli("export", "--m=PPLCNet_x1_0", f"--p={ckpt}", f"--o={out}", "--json",
                             check=True).stdout)
    assert exp["model_name"] == "PP-LCNet_x1_0" and exp["arch"] == "PPLCNet_x1_0"
    assert exp["class_num"] == 1000 and exp["max_abs_diff"] <= TOL and "ImageNet-1k" in exp["labels_note"]
    y = yaml.safe_load((out / "inference.yml").read_text())
    assert y["Global"]["model_name"] == "PP-LCNet_x1_0"
    assert tuple(y["PostProcess"]["Topk"]["label_list"]) == names
    assert "ImageNet-1k" in run_cli("export", "--m=PPLCNet_x1_0", f"--p={ckpt}", f"--o={out}", "--force",
                                    check=True).stdout

    pred = json.loads(run_cli("predict", f"-i={images[0]}", f"-m={out / 'inference.json'}",
                              f"-p={out / 'inference.pdiparams'}", "--json", check=True).stdout)
    top_p = pred["predictions"][0]["topk"]
    assert [t["class_id"] for t in top_p] == ids.tolist()
    np.testing.assert_allclose([t["score"] for t in top_p], probs, atol=TOL)
    assert [t["label"] for t in top_p] == [names[i] for i in ids]
    assert "labels_note" not in pred  # the bundle carries the labels now


FAMILY_MEMBERS = ["PPLCNet_x0_25", "PPLCNetV2_small", "MobileNetV3_small_x0_35", "PPHGNetV2_B0", "ResNet18",
                  "ResNet18_vd"]


@pytest.mark.parametrize("arch", FAMILY_MEMBERS)
def test_dygraph_and_predictor_agree_after_export(arch, images, tmp_path):
    from clsviz.archs import model_spec, paddlex_name

    assert {model_spec(a).family for a in FAMILY_MEMBERS} >= {"PP-LCNet", "PP-LCNetV2", "MobileNetV3",
                                                              "PP-HGNetV2", "ResNet", "ResNet_vd"}
    net = clsviz.get_model(arch, class_num=7)
    with dygraph_mode():
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in random_state(net, seed=1).items()})
    calibrate_bn(net, np.random.default_rng(4).normal(0, 1, (4, 3, 160, 160)).astype(np.float32))
    ckpt = tmp_path / "model.pdparams"
    with dygraph_mode():
        paddle.save(net.state_dict(), str(ckpt))
    # logits (softmax=False): random weights give near-uniform probabilities that would hide a mismatch
    r = clsviz.export(arch, ckpt, tmp_path / "bundle", image_shape=(3, 160, 160), softmax=False)
    assert r.model_name == paddlex_name(arch) and r.labels_note is None
    dyg = clsviz.load(tmp_path / "bundle", mode="dygraph")          # resolves the PaddleX name
    pred = clsviz.load(tmp_path / "bundle", mode="predictor")       # default IR passes + oneDNN
    batch = pred.preprocess(images)
    a, b = dyg.forward(batch), pred.forward(batch)
    scale = max(1.0, float(np.abs(a).max()))
    assert np.abs(a - b).max() <= TOL * scale, (arch, float(np.abs(a - b).max()), scale)
    assert np.abs(a[0] - a[1]).max() > 1e-2 * scale  # the two images are told apart
    dyg.close()
    pred.close()


def test_imagenet_labels_are_paddleclas_class_order():
    ours = read_labels(IMAGENET1K_LABELS)
    assert len(ours) == 1000 and ours == read_labels(oracle.ppcls_dir() / "utils" / "imagenet1k_label_list.txt")
    assert ours[0] == "tench, Tinca tinca" and ours[999] == "toilet tissue, toilet paper, bathroom tissue"


def test_labels_are_assumed_only_for_1000_classes_without_labels(tmp_path, images):
    def ckpt(classes):
        p = tmp_path / f"m{classes}.pdparams"
        with dygraph_mode():
            paddle.save(clsviz.get_model("PPLCNet_x0_25", class_num=classes).state_dict(), str(p))
        return p

    c1000, c10 = ckpt(1000), ckpt(10)
    clf = clsviz.load(c1000, mode="dygraph", arch="PP-LCNet_x0_25")
    assert clf.labels[0] == "tench, Tinca tinca" and "ImageNet-1k" in clf.config.labels_note
    assert "ImageNet-1k" in clf._repr_html_()
    assert clf.predict(images[0], top_k=1)[0].topk[0].label in clf.labels
    mine = [f"thing {i}" for i in range(1000)]
    clf = clsviz.load(c1000, mode="dygraph", arch="PPLCNet_x0_25", labels=mine)
    assert clf.labels[5] == "thing 5" and clf.config.labels_note is None
    clf = clsviz.load(c10, mode="dygraph", arch="PPLCNet_x0_25")
    assert clf.labels is None and clf.config.labels_note is None

    r = clsviz.export("PPLCNet_x0_25", c10, tmp_path / "b10", image_shape=(3, 64, 64))
    assert r.labels_note is None and "label_list" not in yaml.safe_load(
        (tmp_path / "b10" / "inference.yml").read_text())["PostProcess"]["Topk"]
    r = clsviz.export("PPLCNet_x0_25", c1000, tmp_path / "b1000", image_shape=(3, 64, 64))
    assert "ImageNet-1k" in str(r) and "ImageNet-1k" in r._repr_html_() and r.to_dict()["labels_note"]
    r = clsviz.export("PPLCNet_x0_25", c1000, tmp_path / "b1000m", image_shape=(3, 64, 64), labels=mine)
    assert r.labels_note is None and "ImageNet" not in str(r)
