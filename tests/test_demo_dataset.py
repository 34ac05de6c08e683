"""The synthetic shapes generator and the sample images: determinism, shapes, coverage, files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from clsviz.demo import DEMO_CHECKPOINT, DEMO_LABELS
from clsviz.demo import dataset as ds
from clsviz.demo import samples
from clsviz.errors import OptionError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "sample_images"


def _lum(a: np.ndarray) -> np.ndarray:
    return a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255


def test_classes_are_eight_distinct_lowercase_names():
    assert len(ds.CLASSES) == 8 == len(set(ds.CLASSES))
    assert all(c == c.lower() and c.isidentifier() for c in ds.CLASSES)


@pytest.mark.parametrize("name", ds.CLASSES)
def test_draw_is_rgb_and_deterministic(name):
    a = ds.draw(name, np.random.default_rng(3))
    b = ds.draw(name, np.random.default_rng(3))
    c = ds.draw(name, np.random.default_rng(4))
    assert a.mode == "RGB" and a.size == (96, 96)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_draw_other_sizes():
    assert ds.draw("star", np.random.default_rng(0), 128).size == (128, 128)
    assert ds.draw("ring", np.random.default_rng(0), (300, 200)).size == (300, 200)
    with pytest.raises(OptionError):
        ds.draw("star", np.random.default_rng(0), 8)
    with pytest.raises(OptionError, match="unknown class"):
        ds.draw("pentagon", np.random.default_rng(0))


def test_make_split_shapes_balance_and_determinism():
    x, y = ds.make_split(80, seed=5)
    assert x.shape == (80, 96, 96, 3) and x.dtype == np.uint8
    assert y.shape == (80,) and y.dtype == np.int64
    assert np.bincount(y, minlength=8).tolist() == [10] * 8
    x2, y2 = ds.make_split(80, seed=5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, y3 = ds.make_split(80, seed=6)
    assert not np.array_equal(x, x3)
    # images are not near-duplicates of one another
    flat = x.reshape(len(x), -1).astype(np.int16)
    assert np.abs(flat[1:] - flat[:-1]).mean() > 10
    xs, _ = ds.make_split(10, seed=5, size=64)
    assert xs.shape == (10, 64, 64, 3)


def test_make_split_is_fast():
    import time

    t = time.process_time()
    ds.make_split(400, seed=0)
    per_image = (time.process_time() - t) / 400
    assert per_image < 0.01, f"{per_image * 1e3:.1f} ms per image: 10k images would take minutes"


@pytest.mark.parametrize("name", ds.CLASSES)
def test_shape_contrasts_with_background(name):
    """Without noise the shape's pixels and the background's differ clearly in luminance."""
    for seed in range(6):
        rng = np.random.default_rng([seed, 99])
        light_bg = bool(seed % 2)
        s = ds.random_shape(name, rng, 96, light=not light_bg)
        img = np.asarray(ds.render([s], rng, 96, light_background=light_bg, noise=0, blur=0))
        m = ds.shape_mask(s, 96, 96)
        inside, outside = _lum(img)[m > 0.99], _lum(img)[m < 0.01]
        assert inside.size > 200 and outside.size > 200
        gap = outside.min() - inside.max() if light_bg else inside.min() - outside.max()
        assert gap > 0.1, f"{name} seed {seed}: luminance gap {gap:.2f}"


def test_shape_stays_inside_the_centre_crop():
    """Training shapes stay within the centred square that resize-short + centre-crop keeps."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        name = ds.CLASSES[rng.integers(8)]
        s = ds.random_shape(name, rng, 96, light=True)
        m = ds.shape_mask(s, 96, 96)
        border = 96 * (1 - 64 / 72) / 2  # what a 72 → 64 centre crop cuts off each side
        ys, xs = np.nonzero(m > 0.05)
        assert xs.min() >= border - 1 and xs.max() <= 95 - border + 1
        assert ys.min() >= border - 1 and ys.max() <= 95 - border + 1


@pytest.mark.parametrize("layout", ["folders", "labels_txt"])
def test_write_folder(tmp_path, layout):
    written = ds.write_folder(tmp_path / "eval", 2, seed=1, layout=layout)
    assert len(written) == 16
    assert sorted(c for _, c in written) == sorted(list(ds.CLASSES) * 2)
    for path, cls in written:
        with Image.open(path) as im:
            assert im.size == (96, 96) and im.mode == "RGB"
        if layout == "folders":
            assert path.parent.name == cls
    if layout == "labels_txt":
        lines = (tmp_path / "eval" / "labels.txt").read_text().splitlines()
        assert lines == [f"{p.name} {c}" for p, c in written]
    else:
        assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(ds.CLASSES)
    with pytest.raises(OptionError):
        ds.write_folder(tmp_path / "x", 1, seed=1, layout="csv")


# ---- sample_images/ --------------------------------------------------------------------

def _labels(folder: Path) -> list[tuple[str, str, bool]]:
    rows = []
    for line in (folder / "labels.txt").read_text().splitlines():
        parts = line.split()
        rows.append((parts[0], parts[1], parts[2:] == ["hard"]))
    return rows


def test_write_sample_images_covers_the_input_zoo(tmp_path):
    paths = samples.write_sample_images(tmp_path)
    rows = _labels(tmp_path)
    assert [p.name for p in paths] == [f for f, _, _ in rows]
    assert len(rows) >= 12
    assert {c for _, c, _ in rows} == set(ds.CLASSES)
    assert 1 <= sum(h for _, _, h in rows) <= 2
    total = sum(p.stat().st_size for p in paths)
    assert total < 3e6
    sizes, modes, formats, exif_turned = set(), set(), set(), []
    for p in paths:
        with Image.open(p) as im:
            sizes.add(im.size)
            modes.add(im.mode)
            formats.add(im.format)
            if im.getexif().get(0x0112) == 6:
                upright = ImageOps.exif_transpose(im)
                exif_turned.append((im.size, upright.size))
            if im.size[0] >= 1920:
                assert p.stat().st_size < 1e6
    assert {"JPEG", "PNG"} <= formats
    assert {"L", "RGBA", "RGB"} <= modes
    assert any(w >= 1920 for w, _ in sizes)
    assert any(w != h for w, h in sizes) and any(h > w for w, h in sizes)
    assert exif_turned and all(a == b[::-1] and a != b for a, b in exif_turned)
    assert (tmp_path / "README.md").read_text().count("|") > 3 * len(rows)


def test_samples_are_deterministic(tmp_path):
    samples.write_sample_images(tmp_path / "a")
    samples.write_sample_images(tmp_path / "b")
    for f, _, _ in _labels(tmp_path / "a"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


@pytest.mark.skipif(not (SAMPLE_DIR / "labels.txt").is_file(), reason="no sample_images/ in this checkout")
def test_committed_samples_match_the_generator():
    rows = _labels(SAMPLE_DIR)
    assert [(s.filename, s.label, s.hard) for s in samples.SAMPLES] == rows
    for f, _, _ in rows:
        assert (SAMPLE_DIR / f).is_file(), f


@pytest.mark.skipif(not DEMO_CHECKPOINT.is_file() or not (SAMPLE_DIR / "labels.txt").is_file(),
                    reason="needs the bundled checkpoint and sample_images/")
def test_bundled_model_gets_every_non_hard_sample_right():
    assert DEMO_LABELS.read_text().splitlines() == [f"{i} {c}" for i, c in enumerate(ds.CLASSES)]
    rows = samples.check_samples(SAMPLE_DIR)
    wrong = [r for r in rows if not r["hard"] and not r["correct"]]
    assert not wrong, wrong
