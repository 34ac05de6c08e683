"""What the lab runs on: a bundle for a model name, sample or synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .._paddle import dygraph_mode, paddle
from ..archs import get_model
from ..bundle import BundleConfig
from ..demo import DEMO_ARCH, DEMO_CHECKPOINT
from ..demo.run import export_demo
from ..demo.samples import write_sample_images
from ..errors import OptionError
from ..export import export
from ..formats import detect
from ..transforms import IMAGE_SUFFIXES

SAMPLE_IMAGES = Path(__file__).resolve().parents[2] / "sample_images"


def prepare_bundle(
    model: str, workdir, *, image_size: int = 224, seed: int = 0, softmax: bool = True
) -> tuple[Path, str]:
    """An inference bundle for ``model``: an existing bundle path, ``"demo"`` (the bundled demo
    checkpoint), or an architecture name (random weights, seeded) exported at ``image_size``
    into ``workdir``.  Returns ``(bundle, arch)``.  ``softmax=False`` keeps an architecture's
    logits: random weights saturate a softmax, which leaves agreement columns nothing to see."""
    p = Path(model)
    if p.exists():
        files = detect.resolve(p)
        arch = BundleConfig.read(files.config_file).model_name if files.config_file else None
        return p, arch or "?"
    out = Path(workdir) / f"{model.replace(':', '_').replace('/', '_')}_{image_size}"
    if model == "demo":  # the bundled checkpoint, with its own labels and preprocessing
        if not DEMO_CHECKPOINT.exists():
            raise OptionError(
                f"the demo model is not there ({DEMO_CHECKPOINT})",
                hint="train it with `python -m clsviz train-demo`, or pick an architecture",
            )

        export_demo(out)
        return out, DEMO_ARCH
    with dygraph_mode():
        paddle.seed(seed)
        net = get_model(model)
        state = net.state_dict()
    export(model, state, out, image_shape=(3, image_size, image_size), force=True, softmax=softmax)
    return out, model


def bench_images(n: int, workdir, *, folder=None) -> tuple[list[Path], str]:
    """At least ``n`` image paths (cycled if needed) and where they came from.

    ``sample_images/`` when it holds images; else the same set written by
    :mod:`clsviz.demo.samples` into ``workdir``; else generated 640×480 JPEGs.
    """

    def images_in(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []

    folder = Path(folder) if folder is not None else SAMPLE_IMAGES
    found, source = images_in(folder), str(folder)
    if not found and folder == SAMPLE_IMAGES:
        try:
            target = Path(workdir) / "sample_images"
            write_sample_images(target)
            found, source = images_in(target), "sample_images/ as written by clsviz.demo.samples"
        except Exception:  # noqa: BLE001 - the demo images are optional here
            found = []
    if not found:
        found = [synthetic_jpeg(Path(workdir) / f"synthetic_{i}.jpg", (640, 480), seed=i) for i in range(n)]
        source = "generated 640×480 JPEGs"
    return [found[i % len(found)] for i in range(max(n, len(found)))], source


def synthetic_jpeg(path, size=(1920, 1080), *, seed: int = 0, quality: int = 90) -> Path:
    """A photo-like JPEG (smooth gradients, shapes, mild noise) — pure noise would decode unfairly slowly."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [128 + 100 * np.sin(xx / w * np.pi * (1 + c) + c + seed) * np.cos(yy / h * np.pi * (2 - c)) for c in range(3)],
        -1,
    )
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(w // 60, w // 8))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=quality)
    return path
