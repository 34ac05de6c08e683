"""The bundled demo: a synthetic shapes data set, its training recipe and checkpoint.

``dataset`` draws the images, ``train`` trains :data:`DEMO_ARCH` on them (its
preprocessing is ``train.DEMO_PREPROCESS``), ``samples`` writes ``sample_images/``.
Importing this package is cheap: nothing here imports Paddle.
"""

from pathlib import Path

DEMO_ARCH = "ResNet18_vd_x0_25"
DEMO_DIR = Path(__file__).resolve().parent
DEMO_CHECKPOINT = DEMO_DIR / "demo_model.pdparams"
DEMO_LABELS = DEMO_DIR / "labels.txt"

__all__ = ["DEMO_ARCH", "DEMO_DIR", "DEMO_CHECKPOINT", "DEMO_LABELS"]
