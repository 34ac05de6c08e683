"""Small real models with the input signatures found in the wild (issue #11).

Plain functions, not pytest fixtures: :func:`write_wild` saves every model into a folder and
returns ``{name: WildModel}``.  Each is a real Paddle program with random weights:

    gray      [N, 1, 16, 16] float32, conv → 5 classes (a fluid-era gesture classifier's shape)
    mlp       [N, 784] float32, an MNIST-style MLP (Linear 784 → 10)
    nhwc      [N, 16, 16, 3] float32 (Paddle 3.3.1's NHWC Conv2D programs fail to run, so the
              program takes NHWC and transposes inside, as exported TF-style models do)
    uint8     [N, 3, 16, 16] uint8: casts and scales the raw pixels itself
    dynamic   [N, 3, -1, -1] float32: any size (adaptive pooling)
    two_out   [N, 3, 16, 16] → (features [N, 4, 1, 1], logits [N, 5])
    fluid     a fluid-style ``__model__`` + loose parameter files, grey [N, 1, 28, 28], ending in
              softmax (written in a ``FLAGS_enable_pir_api=0`` subprocess)
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WildModel:
    name: str
    path: Path                 # the folder a user points clsviz at
    model_file: Path
    params_file: Path | None   # None: loose parameter files beside __model__
    shape: tuple               # declared input shape (-1: any)
    dtype: str


def _nets():
    from clsviz._paddle import paddle

    nn = paddle.nn

    class Gray(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(1, 4, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2D(2)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            return self.fc(paddle.flatten(self.pool(nn.functional.relu(self.conv(x))), 1))

    class Rgb(Gray):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 4, 3, padding=1)

    class Mlp(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x)

    class Nhwc(Rgb):
        def forward(self, x):
            return super().forward(paddle.transpose(x, [0, 3, 1, 2]))

    class Uint8(Rgb):
        def forward(self, x):
            return super().forward(paddle.cast(x, "float32") / 255.0 - 0.5)

    class TwoOut(Rgb):
        def forward(self, x):
            feats = self.pool(nn.functional.relu(self.conv(x)))
            return paddle.mean(feats, axis=[2, 3], keepdim=True), self.fc(paddle.flatten(feats, 1))

    return {"gray": (Gray, [None, 1, 16, 16], "float32"), "mlp": (Mlp, [None, 784], "float32"),
            "nhwc": (Nhwc, [None, 16, 16, 3], "float32"), "uint8": (Uint8, [None, 3, 16, 16], "uint8"),
            "dynamic": (Rgb, [None, 3, None, None], "float32"),
            "two_out": (TwoOut, [None, 3, 16, 16], "float32")}


def write_pir(root: Path, names=None) -> dict:
    from clsviz._paddle import dygraph_mode, paddle, quiet

    out = {}
    for name, (cls, shape, dtype) in _nets().items():
        if names is not None and name not in names:
            continue
        folder = root / name
        with dygraph_mode():
            paddle.seed(11)
            net = cls()
            net.eval()
            with quiet():
                paddle.jit.save(net, str(folder / "inference"),
                                input_spec=[paddle.static.InputSpec(shape, dtype, "x")])
        out[name] = WildModel(name, folder, folder / "inference.json", folder / "inference.pdiparams",
                              tuple(-1 if d is None else d for d in shape), dtype)
    return out


def _fluid_writer(folder: Path) -> None:
    """Runs in a FLAGS_enable_pir_api=0 process: a grey fluid-style inference model."""
    from clsviz._paddle import paddle, quiet

    paddle.enable_static()
    paddle.seed(7)
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
        image = paddle.static.data("image", [None, 1, 28, 28], "float32")
        y = paddle.static.nn.conv2d(image, 4, 3, padding=1, act="relu")
        y = paddle.nn.functional.max_pool2d(y, 2, 2)
        y = paddle.static.nn.fc(y, 6)
        out = paddle.nn.functional.softmax(y)
    exe = paddle.static.Executor(paddle.CPUPlace())
    with quiet():
        exe.run(startup)
        paddle.static.save_inference_model(str(folder / "inference"), [image], [out], exe,
                                           program=main.clone(for_test=True), legacy_format=True,
                                           separate_parameters=True)


def write_fluid(root: Path) -> WildModel:
    folder = root / "fluid"
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(folder)], env=env,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"fluid fixture writer failed:\n{p.stderr[-3000:]}")
    return WildModel("fluid", folder, folder / "__model__", None, (-1, 1, 28, 28), "float32")


def write_wild(root) -> dict:
    root = Path(root)
    models = write_pir(root)
    models["fluid"] = write_fluid(root)
    return models


if __name__ == "__main__":
    _fluid_writer(Path(sys.argv[1]))
