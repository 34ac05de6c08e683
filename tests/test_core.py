"""The core contract: registry, checkpoints, export, the three modes, compare."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import clsviz
from clsviz._paddle import paddle
from clsviz.errors import (ArchitectureError, BackendUnavailable, CheckpointMismatch, ExportError,
                           FormatError, OptionError)


# --- PaddleClas ResNet50_vd key set, written from PaddleClas's naming rules --------------------

def paddleclas_resnet50_vd_keys(class_num=1000):
    """Names and shapes as PaddleClas 2.x legendary_models ResNet50_vd stores them."""
    shapes = {}

    def convbn(prefix, cin, cout, k):
        shapes[f"{prefix}.conv.weight"] = (cout, cin, k, k)
        for s in ("weight", "bias", "_mean", "_variance"):
            shapes[f"{prefix}.bn.{s}"] = (cout,)

    convbn("stem.0", 3, 32, 3)
    convbn("stem.1", 32, 32, 3)
    convbn("stem.2", 32, 64, 3)
    k, cin = 0, 64
    for stage, n in enumerate((3, 4, 6, 3)):
        w = 64 * 2 ** stage
        for i in range(n):
            convbn(f"blocks.{k}.conv0", cin, w, 1)
            convbn(f"blocks.{k}.conv1", w, w, 3)
            convbn(f"blocks.{k}.conv2", w, w * 4, 1)
            if i == 0:
                convbn(f"blocks.{k}.short", cin, w * 4, 1)
            cin = w * 4
            k += 1
    shapes["fc.weight"] = (2048, class_num)
    shapes["fc.bias"] = (class_num,)
    return shapes


def test_resnet50_vd_matches_paddleclas_key_set(tmp_path):
    expected = paddleclas_resnet50_vd_keys()
    assert len(expected) == 277
    net = clsviz.get_model("ResNet50_vd")
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == expected
    # sample pinned facts
    assert got["stem.0.conv.weight"] == (32, 3, 3, 3)
    assert got["stem.0.bn._mean"] == (32,)
    assert got["blocks.3.short.conv.weight"] == (512, 256, 1, 1)
    assert got["blocks.15.conv2.bn._variance"] == (2048,)
    assert got["fc.weight"] == (2048, 1000)
    # a state dict with exactly that key set loads strictly through a real .pdparams file
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal(s).astype("float32") for k, s in expected.items()}
    p = tmp_path / "ResNet50_vd_pretrained.pdparams"
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(p))
    loaded = clsviz.load_state_dict(p)
    diag = clsviz.checkpoint.load_into(net, loaded)
    assert diag.ok and diag.matched == 277
    np.testing.assert_array_equal(net.state_dict()["blocks.7.conv1.conv.weight"].numpy(),
                                  state["blocks.7.conv1.conv.weight"])


@pytest.mark.parametrize("depth,blocks", [(18, 8), (34, 16), (101, 33), (152, 50), (200, 66)])
def test_resnet_vd_family_depths(depth, blocks):
    net = clsviz.get_model(f"ResNet{depth}_vd", class_num=7)
    keys = net.state_dict().keys()
    assert f"blocks.{blocks - 1}.conv1.conv.weight" in keys
    assert f"blocks.{blocks}.conv0.conv.weight" not in keys
    assert tuple(net.state_dict()["fc.weight"].shape) == (512 if depth < 50 else 2048, 7)


def test_registry_lists_and_rejects():
    names = clsviz.list_models("ResNet*_vd")
    assert {"ResNet18_vd", "ResNet50_vd", "ResNet200_vd"} <= set(names)
    assert "paddle.vision:resnet18" in clsviz.list_models("paddle.vision:*")
    with pytest.raises(ArchitectureError, match="unknown architecture"):
        clsviz.get_model("ResNet51_vd")
    with pytest.raises(ArchitectureError):
        clsviz.get_model("no_such_module_xyz:build")


def test_vision_and_user_callable_architectures():
    net = clsviz.get_model("paddle.vision:mobilenet_v2", class_num=5)
    net.eval()
    assert tuple(net(paddle.randn([1, 3, 64, 64])).shape) == (1, 5)
    net = clsviz.get_model("clsviz.archs.resnet_vd:ResNetVd", class_num=3, depth=18, width_mult=0.25)
    assert tuple(net.state_dict()["fc.weight"].shape) == (128, 3)


def test_class_num_from_checkpoint_and_strict_mismatch(tmp_path, resnet18_ckpt):
    state = clsviz.load_state_dict(resnet18_ckpt)
    assert clsviz.checkpoint.infer_class_num(state) == 10
    clf = clsviz.load(resnet18_ckpt, mode="dygraph", arch="ResNet18_vd", preprocess=clsviz.Preprocess(72, 64))
    assert clf.class_num == 10
    bad = dict(state)
    bad.pop("blocks.0.conv0.conv.weight")
    bad["extra.weight"] = np.zeros(3, "float32")
    bad["fc.bias"] = np.zeros(11, "float32")
    p = tmp_path / "bad.pdparams"
    paddle.save(bad, str(p))
    with pytest.raises(CheckpointMismatch) as ei:
        clsviz.load(p, mode="dygraph", arch="ResNet18_vd", class_num=10)
    d = ei.value.diagnostics
    assert d.missing == ("blocks.0.conv0.conv.weight",)
    assert d.unexpected == ("extra.weight",)
    assert d.mismatched == (("fc.bias", (10,), (11,)),)
    assert "missing" in d._repr_html_() and "fc.bias" in ei.value._repr_html_()


def test_static_save_checkpoint_loads(tmp_path):
    """paddle.static.save writes .pdparams (+ .pdmodel) keyed by static names; load by position."""
    code = f"""
import os, numpy as np
os.environ['GLOG_minloglevel'] = '2'
import paddle
paddle.enable_static()
main, start = paddle.static.Program(), paddle.static.Program()
with paddle.static.program_guard(main, start):
    x = paddle.static.data('x', [None, 3, 8, 8], 'float32')
    y = paddle.static.nn.conv2d(x, 4, 3, bias_attr=False)
    y = paddle.static.nn.batch_norm(y)
    y = paddle.mean(y, axis=[2, 3])
    y = paddle.static.nn.fc(y, 2)
exe = paddle.static.Executor(paddle.CPUPlace()); exe.run(start)
paddle.static.save(main, r'{tmp_path / "static"}')
"""
    env = dict(os.environ, FLAGS_enable_pir_api="0")  # how Paddle 2.x wrote static saves
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    assert (tmp_path / "static.pdparams").exists() and (tmp_path / "static.pdmodel").exists()
    files = clsviz.formats.resolve(tmp_path / "static.pdparams")
    assert files.kind == "static_save"
    state = clsviz.load_state_dict(tmp_path / "static.pdparams")
    shapes = sorted(tuple(v.shape) for v in state.values())
    assert (4, 3, 3, 3) in shapes and (4, 2) in shapes

    class Tiny(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 3, bias_attr=False)
            self.bn = paddle.nn.BatchNorm(4)
            self.fc = paddle.nn.Linear(4, 2)

    net = Tiny()
    diag = clsviz.checkpoint.load_into(net, state)
    assert diag.ok and "position" in diag.note


def test_export_writes_self_describing_bundle(tmp_path, resnet18_ckpt):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{i} class_{i}\n" for i in range(10)))
    r = clsviz.export("ResNet18_vd", resnet18_ckpt, tmp_path / "b", image_shape=(3, 64, 64), labels=labels,
                      softmax=True)
    names = {f.name for f in r.files}
    assert {"inference.json", "inference.pdiparams", "inference.yml", "model.pdparams"} <= names
    assert r.max_abs_diff <= 1e-4 and r.class_num == 10
    y = yaml.safe_load((tmp_path / "b" / "inference.yml").read_text())
    ops = [next(iter(op)) for op in y["PreProcess"]["transform_ops"]]
    assert ops == ["ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage"]
    assert y["PostProcess"]["Topk"]["label_list"][3] == "class_3"
    assert y["Global"]["model_name"] == "ResNet18_vd"
    assert "inference.yml" in r._repr_html_()
    # every mode runs the bundle with no other arguments, softmax head => probabilities
    for mode in clsviz.MODES:
        clf = clsviz.load(tmp_path / "b", mode=mode)
        out = clf.forward(clf.preprocess(np.zeros((70, 90, 3), np.uint8)))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
        assert clf.predict(np.zeros((70, 90, 3), np.uint8), top_k=3)[0].label.startswith("class_")
    # refuses to overwrite a non-empty folder without force
    with pytest.raises(ExportError, match="not empty"):
        clsviz.export("ResNet18_vd", resnet18_ckpt, tmp_path / "b")


def test_three_modes_agree_and_static_state_does_not_leak(resnet18_bundle, rng_image):
    clfs = [clsviz.load(resnet18_bundle, mode=m) for m in clsviz.MODES]
    assert paddle.in_dynamic_mode()
    cmp = clsviz.compare([rng_image, rng_image], clfs, top_k=3, repeats=3, warmup=1)
    assert paddle.in_dynamic_mode()
    assert set(cmp.modes) == set(clsviz.MODES)
    assert cmp.max_abs_diff <= 1e-4, cmp.to_text()
    assert cmp.agree
    for rep in cmp.modes.values():
        assert rep.total.n == 6 and rep.stages["forward"].p50 > 0
        assert len(rep.predictions) == 2 and len(rep.predictions[0].topk) == 3
    d = cmp.to_dict()
    assert d["modes"]["predictor"]["latency_ms"]["p50"] > 0
    assert "modes agree" in cmp._repr_html_()
    # a dygraph net still trains-style forwards after the executor ran
    net = clsviz.get_model("ResNet18_vd_x0_25", class_num=2)
    assert tuple(net(paddle.randn([1, 3, 32, 32])).shape) == (1, 2)


def test_topk_is_capped_and_options_validated(resnet18_bundle, rng_image):
    clf = clsviz.load(resnet18_bundle, mode="predictor")
    p = clf.predict(rng_image, top_k=50)[0]
    assert len(p.topk) == 10
    scores = [t.score for t in p.topk]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(OptionError):
        clf.predict(rng_image, top_k=0)
    with pytest.raises(OptionError):
        clsviz.load(resnet18_bundle, mode="nope")
    with pytest.raises(OptionError):
        clsviz.load(resnet18_bundle, mode="predictor", batch_size=0)
    with pytest.raises(OptionError):
        clsviz.load(resnet18_bundle, mode="predictor", cpu_threads=0)
    with pytest.raises(BackendUnavailable, match="CUDA"):
        clsviz.load(resnet18_bundle, mode="predictor", use_gpu=True)
    with pytest.raises(BackendUnavailable):
        clsviz.load(resnet18_bundle, mode="predictor", use_tensorrt=True)


def test_batching_gives_the_same_answers(resnet18_bundle, rng_image):
    one = clsviz.load(resnet18_bundle, mode="predictor", batch_size=1)
    four = clsviz.load(resnet18_bundle, mode="predictor", batch_size=4)
    imgs = [rng_image] * 5
    a = one.run_batches(one.preprocess(imgs))
    b = four.run_batches(four.preprocess(imgs))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_checkpoint_needs_export_for_predictor(resnet18_ckpt):
    with pytest.raises(FormatError, match="export it first"):
        clsviz.load(resnet18_ckpt, mode="predictor")
    with pytest.raises(OptionError, match="arch"):
        clsviz.load(resnet18_ckpt, mode="dygraph")


def test_import_is_quiet():
    p = subprocess.run([sys.executable, "-c", "import clsviz; clsviz.get_model('ResNet18_vd')"],
                       capture_output=True, text=True)
    assert p.returncode == 0
    assert p.stdout == "" and p.stderr == "", (p.stdout, p.stderr)
