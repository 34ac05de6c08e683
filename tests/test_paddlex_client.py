"""A real client: PaddleX 3.7 runs a clsviz-exported bundle unchanged (issue #11).

PaddleX (the ``clients`` extra, which ``make test`` installs; clsviz never imports it) runs in a
subprocess: ``create_model(Global.model_name, model_dir=bundle).predict`` on every image of
``sample_images/``.  clsviz with the bundle's recorded cv2 backend must give the same top-5 and
scores within 1e-4 (PaddleX rounds its scores to 5 decimals).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clsviz
from clsviz.transforms import IMAGE_SUFFIXES

REPO = Path(__file__).resolve().parents[1]
DEMO = Path(clsviz.__file__).parent / "demo"
SAMPLES = sorted(p for p in (REPO / "sample_images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

_PADDLEX = r"""
import json, sys
import numpy as np
from paddlex import create_model
name, model_dir, *images = sys.argv[1:]
model = create_model(model_name=name, model_dir=model_dir, device="cpu")
out = []
for path in images:
    for res in model.predict(path, batch_size=1, topk=5):
        names = np.asarray(res["label_names"], dtype=object).ravel()
        out.append({"image": path, "class_ids": [int(i) for i in np.asarray(res["class_ids"]).ravel()],
                    "scores": [float(s) for s in np.asarray(res["scores"]).ravel()],
                    "label_names": [str(n) for n in names]})
print("CLSVIZ-PADDLEX " + json.dumps(out))
"""


def run_paddlex(model_name: str, bundle: Path, images) -> list[dict]:
    import importlib.util

    if importlib.util.find_spec("paddlex") is None:
        pytest.fail("PaddleX is not installed: pip install -e '.[clients]' (make test installs it)")
    env = dict(os.environ, PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True", GLOG_minloglevel="2")
    p = subprocess.run([sys.executable, "-c", _PADDLEX, model_name, str(bundle), *map(str, images)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=bundle)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("CLSVIZ-PADDLEX ")]
    assert p.returncode == 0 and lines, f"PaddleX failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return json.loads(lines[-1][len("CLSVIZ-PADDLEX "):])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("paddlex") / "bundle"
    clsviz.export("ResNet18_vd_x0_25", DEMO / "demo_model.pdparams", out, labels=DEMO / "labels.txt",
                  image_shape=(3, 64, 64), model_name="ResNet18_vd",
                  preprocess=clsviz.Preprocess(72, 64, backend="cv2"))
    return out


def test_paddlex_runs_a_clsviz_bundle_with_the_same_topk(bundle):
    theirs = run_paddlex("ResNet18_vd", bundle, SAMPLES)
    assert [Path(r["image"]).name for r in theirs] == [p.name for p in SAMPLES]
    with clsviz.load(bundle, mode="predictor") as clf:
        assert clf.config.preprocess.backend == "cv2"
        ours = clf.predict(SAMPLES, top_k=5)
    gaps = []
    for t, o in zip(theirs, ours):
        assert t["class_ids"] == [k.class_id for k in o.topk], (t["image"], t, o)
        assert t["label_names"] == [k.label for k in o.topk]
        gaps.append(np.max(np.abs(np.array(t["scores"]) - [k.score for k in o.topk])))
    assert max(gaps) < 1e-4, gaps
    print(f"\nPaddleX vs clsviz (cv2): {len(SAMPLES)} images, top-5 identical, max score gap {max(gaps):.2g}")
