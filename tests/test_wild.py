"""Models from the wild (issue #11): the program's input signature drives preprocessing.

Each fixture model (tests/fixtures_wild.py) predicts a colour JPEG; the expected numbers come
from preparing that input by hand here (PIL / numpy / cv2, written independently of
clsviz.transforms) and calling raw ``paddle.inference``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clsviz
from clsviz.errors import FormatError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_wild import write_wild  # noqa: E402

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    return write_wild(tmp_path_factory.mktemp("wild"))


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory):
    """A colour JPEG, 48×36, with different content per channel (grey ≠ any one channel)."""
    y, x = np.mgrid[0:36, 0:48]
    rgb = np.stack([x * 5, y * 7, (x * y) % 256], axis=-1).astype(np.uint8)
    p = tmp_path_factory.mktemp("img") / "colour.jpg"
    Image.fromarray(rgb).save(p, quality=95)
    return p


# ---------------------------------------------------------------- by hand
def hand_pil(path, *, grey: bool, resize: int, crop: int) -> np.ndarray:
    """Pillow: RGB (or its ITU-R 601-2 luma), short side → ``resize``, centre ``crop``; HWC uint8."""
    img = Image.open(path).convert("RGB")
    if grey:
        img = img.convert("L")
    w, h = img.size
    s = resize / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    a = np.asarray(img.crop((left, top, left + crop, top + crop)))
    return a[..., None] if grey else a


def hand_cv2(path, *, grey: bool, resize: int, crop: int) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    a = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., None] if grey else bgr[..., ::-1]
    h, w = a.shape[:2]
    s = resize / min(w, h)
    a = cv2.resize(np.ascontiguousarray(a), (int(round(w * s)), int(round(h * s))),
                   interpolation=cv2.INTER_LINEAR)
    a = a[..., None] if a.ndim == 2 else a
    h, w = a.shape[:2]
    top, left = (h - crop) // 2, (w - crop) // 2
    return a[top:top + crop, left:left + crop]


def normalise(hwc: np.ndarray) -> np.ndarray:
    c = hwc.shape[-1]
    mean, std = (MEAN, STD) if c == 3 else (MEAN.mean(keepdims=True), STD.mean(keepdims=True))
    return ((hwc / 255.0 - mean) / std).astype(np.float32)


def by_hand(name, path, hand=hand_pil) -> np.ndarray:
    """The [1, ...] input each fixture program takes, prepared for ``path``."""
    if name == "gray":
        return normalise(hand(path, grey=True, resize=18, crop=16)).transpose(2, 0, 1)[None]
    if name == "fluid":
        return normalise(hand(path, grey=True, resize=32, crop=28)).transpose(2, 0, 1)[None]
    if name == "mlp":
        return normalise(hand(path, grey=True, resize=32, crop=28)).reshape(1, 784)
    if name == "nhwc":
        return normalise(hand(path, grey=False, resize=18, crop=16))[None]
    if name == "uint8":
        return hand(path, grey=False, resize=18, crop=16).transpose(2, 0, 1)[None].astype(np.uint8).copy()
    if name == "dynamic":  # no sidecar: the default 256 → 224
        return normalise(hand(path, grey=False, resize=256, crop=224)).transpose(2, 0, 1)[None]
    if name == "two_out":
        return normalise(hand(path, grey=False, resize=18, crop=16)).transpose(2, 0, 1)[None]
    raise KeyError(name)


def raw_paddle(model, x: np.ndarray, output: int = 0) -> np.ndarray:
    from clsviz._paddle import paddle, quiet

    inf = paddle.inference
    cfg = (inf.Config(str(model.model_file.parent)) if model.params_file is None
           else inf.Config(str(model.model_file), str(model.params_file)))
    cfg.disable_gpu()
    cfg.switch_ir_optim(False)
    with quiet():
        pred = inf.create_predictor(cfg)
    h = pred.get_input_handle(pred.get_input_names()[0])
    h.reshape(list(x.shape))
    h.copy_from_cpu(np.ascontiguousarray(x))
    with quiet():
        pred.run()
    return pred.get_output_handle(pred.get_output_names()[output]).copy_to_cpu()


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


NAMES = ("gray", "mlp", "nhwc", "uint8", "dynamic", "two_out", "fluid")


@pytest.mark.parametrize("name", NAMES)
def test_predict_matches_hand_and_raw_paddle_in_every_mode(wild, jpeg, name):
    m = wild[name]
    out = 1 if name == "two_out" else 0
    raw = raw_paddle(m, by_hand(name, jpeg), out)[0].astype(np.float64)
    want = raw if name == "fluid" else softmax(raw)   # the fluid program ends in softmax
    order = np.argsort(-want, kind="stable")[:3]
    report = clsviz.inspect(m.path)
    ready = [md.mode for md in report.modes if md.mode in clsviz.MODES and md.available]
    assert set(ready) == set(clsviz.MODES), report.to_text()  # every kind runs in every Paddle mode
    assert report.preprocess, report.to_text()
    for mode in ready:
        with clsviz.load(m.path, mode=mode) as clf:
            pred = clf.predict(jpeg, top_k=3)[0]
        assert [t.class_id for t in pred.topk] == list(order), (name, mode)
        np.testing.assert_allclose([t.score for t in pred.topk], want[order], atol=1e-5,
                                   err_msg=f"{name} {mode}")


def test_signatures_read_from_the_programs(wild):
    from clsviz.engines import load_config

    want = {"gray": ((1, 16, 16), "NCHW", "float32"), "mlp": ((1, 28, 28), "flat", "float32"),
            "nhwc": ((3, 16, 16), "NHWC", "float32"), "uint8": ((3, 16, 16), "NCHW", "uint8"),
            "dynamic": ((3, 224, 224), "NCHW", "float32"), "two_out": ((3, 16, 16), "NCHW", "float32"),
            "fluid": ((1, 28, 28), "NCHW", "float32")}
    for name, (shape, layout, dtype) in want.items():
        cfg = load_config(wild[name].path)
        assert (tuple(cfg.image_shape), cfg.preprocess.layout, cfg.preprocess.dtype) == (shape, layout, dtype)
        probe = cfg.preprocess.probe(2)
        assert probe.dtype == np.dtype(dtype) and probe.shape[0] == 2
        assert raw_paddle(wild[name], probe, 1 if name == "two_out" else 0).shape[0] == 2
    assert load_config(wild["two_out"].path).output_index == 1


def test_dynamic_size_comes_from_the_preprocess_settings(wild, jpeg):
    m = wild["dynamic"]
    pre = clsviz.Preprocess(resize_short=40, crop_size=32)
    with clsviz.load(m.path, preprocess=pre) as clf:
        assert clf.preprocess(jpeg).shape == (1, 3, 32, 32)
        got = clf.forward(clf.preprocess(jpeg))
    x = normalise(hand_pil(jpeg, grey=False, resize=40, crop=32)).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(got, raw_paddle(m, x), atol=1e-5)


def test_output_by_name(wild, jpeg):
    m = wild["two_out"]
    names = [o.name for o in clsviz.inspect(m.path).outputs]
    with clsviz.load(m.path, output=names[1]) as clf:
        assert clf.config.output_index == 1
    with pytest.raises(clsviz.OptionError, match="not an output"):
        clsviz.load(m.path, output="nope")


def test_cv2_backend_matches_cv2_by_hand(wild, jpeg):
    for name in ("gray", "nhwc", "mlp"):
        m = wild[name]
        pre = clsviz.Preprocess(resize_short=18 if name != "mlp" else 32,
                                crop_size=16 if name != "mlp" else 28, backend="cv2")
        with clsviz.load(m.path, preprocess=pre) as clf:
            got = clf.preprocess(jpeg)
        np.testing.assert_allclose(got, by_hand(name, jpeg, hand=hand_cv2), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", NAMES)
def test_migrate_verifies(wild, jpeg, tmp_path, name):
    r = clsviz.migrate(wild[name].path, tmp_path / "out", images=[jpeg])
    assert r.images_checked == 1
    with clsviz.load(wild[name].path) as a, clsviz.load(tmp_path / "out") as b:
        np.testing.assert_allclose(b.forward(b.preprocess(jpeg)), a.forward(a.preprocess(jpeg)), atol=1e-5)


# ---------------------------------------------------------------- what clsviz cannot fill
def _jit_save(folder: Path, layer, specs):
    from clsviz._paddle import dygraph_mode, paddle, quiet

    with dygraph_mode():
        layer.eval()
        with quiet():
            paddle.jit.save(layer, str(folder / "inference"), input_spec=specs)
    return folder


def test_flat_input_of_unknown_size_asks_for_image_shape(tmp_path, jpeg):
    from clsviz._paddle import paddle

    folder = _jit_save(tmp_path / "flat", paddle.nn.Linear(1000, 4),
                       [paddle.static.InputSpec([None, 1000], "float32", "x")])
    with pytest.raises(FormatError, match="image_shape"):
        clsviz.load(folder)
    report = clsviz.inspect(folder)
    assert not report.mode("predictor").available and "image_shape" in report.mode("predictor").detail
    with clsviz.load(folder, image_shape=(1, 25, 40), preprocess=clsviz.Preprocess(30, (25, 40))) as clf:
        assert clf.preprocess(jpeg).shape == (1, 1000)
        assert len(clf.predict(jpeg)[0].topk) == 4


def test_several_inputs_are_named(tmp_path):
    from clsviz._paddle import paddle

    class Two(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(48, 4)

        def forward(self, a, b):
            return self.fc(paddle.flatten(a, 1) + paddle.flatten(b, 1))

    folder = _jit_save(tmp_path / "two", Two(), [paddle.static.InputSpec([None, 3, 4, 4], "float32", "left"),
                                                 paddle.static.InputSpec([None, 3, 4, 4], "float32", "right")])
    with pytest.raises(FormatError, match="2 inputs.*left.*right"):
        clsviz.load(folder)
    assert not clsviz.inspect(folder).mode("predictor").available


def test_unknown_preprocess_op_is_a_clear_error(wild, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(wild["nhwc"].path, folder)
    (folder / "inference.yml").write_text(
        "Global: {model_name: X}\nPreProcess:\n  transform_ops:\n  - ResizeImage: {resize_short: 18}\n"
        "  - GridMask: {d1: 96}\n  - CropImage: {size: 16}\nPostProcess:\n  Topk: {topk: 2}\n")
    with pytest.raises(FormatError, match="GridMask"):
        clsviz.load(folder)
    assert not clsviz.inspect(folder).mode("predictor").available


def test_missing_weights_are_named_by_inspect_and_load(wild, tmp_path):
    import shutil

    folder = tmp_path / "paddlex_no_weights"
    folder.mkdir()
    shutil.copy(wild["gray"].model_file, folder / "inference.json")
    (folder / "inference.yml").write_text("Global: {model_name: PP-LCNet_x1_0}\n")
    report = clsviz.inspect(folder)
    assert "inference.pdiparams is missing" in report.verdict and not report.is_model
    assert "not a Paddle model" not in report.to_text()
    with pytest.raises(FormatError, match="inference.pdiparams.*missing"):
        clsviz.load(folder)


def test_the_explorer_says_what_an_image_goes_through(wild, jpeg):
    pytest.importorskip("ipywidgets")
    from clsviz.widgets import Explorer

    ex = Explorer(wild["mlp"].path, [jpeg], selected=0)
    assert "grey (ITU-R 601-2 luma)" in ex.model_info.value and "flattened CHW float32 [784]" in ex.model_info.value


def test_cast_reads_fluid_codes_and_pir_names():
    """A fluid ``cast`` names its type by ``VarType`` code (20 uint8 → 5 float32), a PIR one by name;
    both rebuild to the same tensor, and a cast clsviz cannot rebuild is named."""
    from clsviz._paddle import dygraph_mode, paddle
    from clsviz.formats.programdesc import OpDesc
    from clsviz.formats.rebuild import _HANDLERS

    x = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    with dygraph_mode():
        for to in (5, "float32"):
            env = {"x": paddle.to_tensor(x)}
            _HANDLERS["cast"](OpDesc("cast", {"X": ("x",)}, {"Out": ("y",)}, {"in_dtype": 20, "out_dtype": to}), env)
            assert env["y"].dtype == paddle.float32 and np.array_equal(env["y"].numpy(), x.astype(np.float32))
        with pytest.raises(FormatError, match="cast"):
            _HANDLERS["cast"](OpDesc("cast", {"X": ("x",)}, {"Out": ("y",)}, {"out_dtype": 22}), env)
