"""Preprocessing backends side by side: Pillow vs OpenCV (``Preprocess(backend=...)``).

    python benchmarks/preprocess_backends.py [--repeats 40]

Times decode + resize-short 256 + centre-crop 224 + normalise of one file per size (the repo's
1920×1080 JPEG and a small PNG), the two backends interleaved in one run
(``clsviz.timing.interleaved``); prints p50 per backend and the cv2 / pil ratio, and how far
the two backends' arrays are apart (they differ: resampling filters are not the same).
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

import clsviz
from clsviz.timing import interleaved, timed

REPO = Path(__file__).resolve().parents[1]
IMAGES = [REPO / "sample_images" / "ring_1920x1080.jpg", REPO / "sample_images" / "hexagon_stripes.png"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    a = ap.parse_args(argv)
    pres = {b: clsviz.Preprocess(backend=b) for b in ("pil", "cv2")}
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for img in IMAGES:
        stats = interleaved({b: timed(lambda p=p, img=img: p(img)) for b, p in pres.items()},
                            repeats=a.repeats, warmup=3)
        pil, cv2 = stats["pil"]["total"].p50, stats["cv2"]["total"].p50
        diff = float(np.abs(pres["pil"](img) - pres["cv2"](img)).max())
        print(f"{img.name:<24} pil p50 {pil:7.2f} ms   cv2 p50 {cv2:7.2f} ms   cv2/pil {cv2 / pil:.2f}×"
              f"   max|Δ| between backends {diff:.3f}")


if __name__ == "__main__":
    main()
