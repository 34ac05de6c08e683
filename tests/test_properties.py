"""Property tests: preprocessing and post-processing hold for any input hypothesis finds.

Bounded ``max_examples`` keep the file under a minute on two shared cores.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import clsviz
from clsviz.bundle import BundleConfig
from clsviz.engines.base import Classifier, EngineOptions, softmax

MODES = ["L", "LA", "RGB", "RGBA", "P", "I;16", "CMYK", "1", "F"]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_image(mode: str, w: int, h: int, seed: int, transparent: bool) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "F":
        scale = float(rng.choice([1.0, 255.0, 1e6]))
        return Image.fromarray(rng.uniform(-scale, scale, (h, w)).astype(np.float32), mode="F")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    if mode == "1":
        return Image.fromarray(rng.random((h, w)) > 0.5)
    bands = len(Image.new(mode if mode != "P" else "L", (1, 1)).getbands())
    img = Image.frombytes(mode if mode != "P" else "L", (w, h), rng.integers(0, 256, (h, w, bands), np.uint8).tobytes())
    if mode == "P":
        img = img.convert("P") if not transparent else img
        if transparent:
            img.putpalette(rng.integers(0, 256, 768, np.uint8).tobytes())
            img.info["transparency"] = int(rng.integers(0, 256))
    return img


def bounds(pre: clsviz.Preprocess):
    mean, std = np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)
    return ((0 - mean) / std)[:, None, None], ((1 - mean) / std)[:, None, None]


@settings(FAST, max_examples=100)
@given(w=st.integers(1, 2000), h=st.integers(1, 2000), mode=st.sampled_from(MODES),
       seed=st.integers(0, 2 ** 32 - 1), transparent=st.booleans())
def test_any_size_and_mode_preprocesses_to_a_bounded_chw_tensor(w, h, mode, seed, transparent):
    img = make_image(mode, w, h, seed, transparent)
    assert img.mode == mode and img.size == (w, h)
    pre = clsviz.Preprocess()  # resize short side to 256, crop 224
    x = pre(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert np.isfinite(x).all()
    lo, hi = bounds(pre)
    assert (x >= lo - 1e-5).all() and (x <= hi + 1e-5).all()


@settings(FAST, max_examples=120)
@given(w=st.integers(1, 600), h=st.integers(1, 600), mode=st.sampled_from(MODES),
       seed=st.integers(0, 2 ** 32 - 1),
       resize=st.one_of(st.none(), st.integers(1, 300)),
       crop=st.tuples(st.integers(1, 256), st.integers(1, 256)),
       interp=st.sampled_from(["nearest", "bilinear", "bicubic", "lanczos", "box"]))
def test_any_preprocess_config_gives_its_crop_shape(w, h, mode, seed, resize, crop, interp):
    pre = clsviz.Preprocess(resize_short=resize, crop_size=crop, interpolation=interp)
    x = pre(make_image(mode, w, h, seed, False))
    assert x.shape == (3, *crop) and x.dtype == np.float32 and np.isfinite(x).all()
    lo, hi = bounds(pre)
    assert (x >= lo - 1e-5).all() and (x <= hi + 1e-5).all()


class Offline(Classifier):
    """A classifier with no engine: only the shared pre/post-processing."""

    mode = "offline"

    def _build(self):
        pass


def offline(classes: int, softmax_head: bool) -> Offline:
    return Offline(BundleConfig(class_num=classes, softmax=softmax_head), EngineOptions())


logits = st.integers(1, 64).flatmap(lambda c: st.tuples(
    st.just(c), st.integers(1, 6),
    st.sampled_from([1.0, 10.0, 1e4, 1e30]), st.integers(0, 2 ** 32 - 1), st.booleans()))


@settings(FAST, max_examples=200)
@given(case=logits, top_k=st.integers(1, 100))
def test_topk_is_sorted_capped_and_unique(case, top_k):
    classes, rows, scale, seed, ties = case
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((rows, classes)) * scale
    if ties:  # many equal scores: still unique ids, still sorted
        out = np.round(out / scale) * scale
    for head in (False, True):
        clf = offline(classes, head)
        raw = softmax(out) if head else out
        preds = clf.postprocess(raw.astype(np.float32), top_k=top_k)
        assert len(preds) == rows
        for p in preds:
            ids = [t.class_id for t in p.topk]
            scores = [t.score for t in p.topk]
            assert len(ids) == min(top_k, classes)
            assert len(set(ids)) == len(ids) and all(0 <= i < classes for i in ids)
            assert scores == sorted(scores, reverse=True)
            assert all(0.0 <= s <= 1.0 + 1e-6 for s in scores)


@settings(FAST, max_examples=200)
@given(case=logits)
def test_probabilities_sum_to_one_on_both_paths(case):
    classes, rows, scale, seed, _ = case
    out = np.random.default_rng(seed).standard_normal((rows, classes)) * scale
    for head, raw in ((False, out), (True, softmax(out))):  # logits path, softmax-head path
        preds = offline(classes, head).postprocess(raw.astype(np.float32), top_k=classes)
        for p in preds:
            total = sum(t.score for t in p.topk)
            assert total == pytest.approx(1.0, abs=1e-5)


@settings(FAST, max_examples=50)
@given(classes=st.integers(1, 20), top_k=st.one_of(st.integers(-5, 0), st.just(True), st.floats(0.5, 3.5)))
def test_bad_top_k_is_an_option_error(classes, top_k):
    with pytest.raises(clsviz.OptionError):
        offline(classes, False).postprocess(np.zeros((1, classes), np.float32), top_k=top_k)
