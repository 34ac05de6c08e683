"""Real files in every Paddle model format, for two small classifiers.

Plain functions, not pytest fixtures: call them with a temporary folder.
Each returns :class:`LegacyFixture` objects holding the paths and the
reference output for a fixed random input, so a test can check that every
format (and every engine) gives the same answer.

Models
    ``tiny_cnn``     conv-bn-relu-maxpool-fc-softmax, input (2, 3, 16, 16), 10 classes;
                     static-graph names are Paddle's automatic ones
                     (``conv2d_0.w_0``, ``batch_norm_0.w_1``, ``fc_0.w_0``, …).
    ``ResNet18_vd``  clsviz's ResNet18_vd, 10 classes, input (2, 3, 32, 32), logits;
                     static-graph names are PaddleClas 1.x fluid names
                     (``conv1_1_weights``, ``bnv1_1_scale``, ``res2a_branch1_weights``, …).

Kinds (letters as in the issue) and who writes them
    a ``fluid_checkpoint``          loose tensor files of the *training* program
                                    (weights + Momentum velocities + learning_rate_0):
                                    ``paddle.static.io.save_vars`` — fluid ``save_persistables``.
                                    tests/test_tensorfile.py checks our codec + name map
                                    rebuild these files byte for byte from dygraph weights
    b ``fluid_inference_loose``     ``__model__`` + loose files: ``save_inference_model(
                                    separate_parameters=True, legacy_format=True)``
    c ``fluid_inference_combined``  ``__model__`` + ``__params__``
    d ``fluid_model_params``        ``model`` + ``params``
                                    (c, d: ``save_inference_model(legacy_format=True)``, renamed —
                                    Paddle 3 dropped ``model_filename``/``params_filename``)
    e ``static_save``               ``model.pdparams`` + ``model.pdopt`` + ``model.pdmodel``:
                                    ``paddle.static.save`` of the training program
    f ``dygraph_pdparams``          ``model.pdparams``: ``paddle.save(layer.state_dict())``
    g ``paddle2_inference``         ``inference.pdmodel`` + ``.pdiparams`` + ``.pdiparams.info``:
                                    ``paddle.jit.save`` with the old IR
    h ``paddle3_inference``         ``inference.json`` + ``inference.pdiparams``:
                                    ``paddle.jit.save`` with PIR

a-g are written in one subprocess started with ``FLAGS_enable_pir_api=0``
(the flag only counts before ``import paddle``); h in this process when it
runs PIR, else in a PIR subprocess.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

MODELS = {
    "tiny_cnn": {"input_shape": (2, 3, 16, 16), "class_num": 10, "softmax": True},
    "ResNet18_vd": {"input_shape": (2, 3, 32, 32), "class_num": 10, "softmax": False},
}
KINDS = ("fluid_checkpoint", "fluid_inference_loose", "fluid_inference_combined",
         "fluid_model_params", "static_save", "dygraph_pdparams", "paddle2_inference",
         "paddle3_inference")
LETTERS = dict(zip("abcdefgh", KINDS))
_LEGACY_KINDS = KINDS[:-1]
#: feed names: fluid-era programs call the input "image", jit.save'd ones "x"
STATIC_FEED = "image"
JIT_FEED = "x"

# tiny_cnn: dygraph name -> name the static graph gives it automatically
TINY_STATIC_NAMES = {
    "conv.weight": "conv2d_0.w_0",
    "bn.weight": "batch_norm_0.w_0",
    "bn.bias": "batch_norm_0.b_0",
    "bn._mean": "batch_norm_0.w_1",
    "bn._variance": "batch_norm_0.w_2",
    "fc.weight": "fc_0.w_0",
    "fc.bias": "fc_0.b_0",
}


@dataclass(frozen=True)
class LegacyFixture:
    kind: str
    model: str
    path: Path                      # what a user points clsviz at (file or folder)
    files: dict = field(default_factory=dict)   # role -> Path ("model", "params", "opt", "info")
    input: np.ndarray = None
    expected: np.ndarray = None     # dygraph output for ``input``
    static_output: np.ndarray = None   # legacy Executor output (static kinds), else None
    base: Path = None               # root/model: holds weights.npz and reference.npz

    def weights(self) -> dict:
        """The dygraph-named weights the fixture was written with."""
        return load_weights(self.base.parent, self.model)

    @property
    def feed_name(self) -> str:
        return JIT_FEED if self.kind in ("paddle2_inference", "paddle3_inference") else STATIC_FEED


# ---------------------------------------------------------------- shared helpers
def reference_input(model: str) -> np.ndarray:
    """The fixed random input every fixture's ``expected`` refers to."""
    shape = MODELS[model]["input_shape"]
    return np.random.default_rng(1234).standard_normal(shape).astype("float32")


def random_weights(shapes: dict) -> dict:
    """Deterministic weights with non-trivial BatchNorm statistics.

    Default BN stats (mean 0, variance 1) would hide a swapped mean/variance,
    so every BN tensor gets its own random values.
    """
    rng = np.random.default_rng(7)
    out = {}
    for name, shape in shapes.items():
        shape = tuple(shape)
        if name.endswith("._mean"):
            a = rng.normal(0.0, 0.1, shape)
        elif name.endswith("._variance"):
            a = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("bn.weight"):
            a = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("bn.bias") or name.endswith("fc.bias"):
            a = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            a = rng.normal(0.0, (2.0 / fan_in) ** 0.5, shape)
        out[name] = a.astype("float32")
    return out


def static_names(model: str, keys) -> dict:
    """``{dygraph name: static-graph name}`` for a model's weights."""
    if model == "tiny_cnn":
        return {k: TINY_STATIC_NAMES[k] for k in keys}
    from clsviz.formats.fluid_names import dygraph_to_fluid

    return dygraph_to_fluid(list(keys), 18)


def load_weights(root, model: str) -> dict:
    """The dygraph-named weights a fixture set was written with."""
    with np.load(Path(root) / model / "weights.npz") as z:
        return {k: z[k] for k in z.files}


def _build_dygraph(model: str):
    from clsviz._paddle import paddle

    if model == "ResNet18_vd":
        from clsviz.archs import get_model

        return get_model("ResNet18_vd", class_num=MODELS[model]["class_num"])
    nn = paddle.nn

    class TinyCNN(nn.Layer):
        def __init__(self, class_num=10):
            super().__init__()
            self.conv = nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
            self.bn = nn.BatchNorm(8)
            self.fc = nn.Linear(8 * 8 * 8, class_num)

        def forward(self, x):
            x = nn.functional.relu(self.bn(self.conv(x)))
            x = nn.functional.max_pool2d(x, 2, 2)
            return nn.functional.softmax(self.fc(paddle.flatten(x, 1)))

    return TinyCNN(MODELS[model]["class_num"])


def _input_spec(model: str):
    from clsviz._paddle import paddle

    shape = [None] + list(MODELS[model]["input_shape"][1:])
    return [paddle.static.InputSpec(shape, "float32", JIT_FEED)]


# ---------------------------------------------------------------- static graphs
def _static_tiny(x):
    from clsviz._paddle import paddle

    y = paddle.static.nn.conv2d(x, 8, 3, padding=1, bias_attr=False)
    y = paddle.static.nn.batch_norm(y, act="relu")
    y = paddle.nn.functional.max_pool2d(y, 2, 2)
    y = paddle.static.nn.fc(y, 10)      # 4-D input, num_flatten_dims=1: a fluid-style `mul`
    return paddle.nn.functional.softmax(y)


def _static_resnet18_vd(x):
    """ResNet18_vd the PaddleClas 1.x way: fluid.layers-style ops with explicit names."""
    from clsviz._paddle import paddle

    F = paddle.nn.functional
    PA = paddle.ParamAttr

    def conv_bn(inp, cout, k, stride, act, name, vd_pool=False):
        if vd_pool:
            inp = F.avg_pool2d(inp, 2, 2, padding=0, ceil_mode=True)
        y = paddle.static.nn.conv2d(inp, cout, k, stride=1 if vd_pool else stride,
                                    padding=(k - 1) // 2, param_attr=PA(name=name + "_weights"),
                                    bias_attr=False)
        bn = "bn" + name[3:]
        return paddle.static.nn.batch_norm(
            y, act=act, param_attr=PA(name=bn + "_scale"), bias_attr=PA(name=bn + "_offset"),
            moving_mean_name=bn + "_mean", moving_variance_name=bn + "_variance")

    y = conv_bn(x, 32, 3, 2, "relu", "conv1_1")
    y = conv_bn(y, 32, 3, 1, "relu", "conv1_2")
    y = conv_bn(y, 64, 3, 1, "relu", "conv1_3")
    y = F.max_pool2d(y, 3, 2, padding=1)
    for stage, n in enumerate((2, 2, 2, 2)):
        width = 64 * 2 ** stage
        for i in range(n):
            name = f"res{stage + 2}{chr(97 + i)}"
            stride = 2 if (i == 0 and stage > 0) else 1
            a = conv_bn(y, width, 3, stride, "relu", name + "_branch2a")
            b = conv_bn(a, width, 3, 1, None, name + "_branch2b")
            short = y
            if i == 0:
                short = conv_bn(y, width, 1, stride, None, name + "_branch1",
                                vd_pool=stage > 0)
            y = F.relu(paddle.add(short, b))
    y = F.adaptive_avg_pool2d(y, 1)
    return paddle.static.nn.fc(y, MODELS["ResNet18_vd"]["class_num"],
                               weight_attr=PA(name="fc_0.w_0"), bias_attr=PA(name="fc_0.b_0"))


# ---------------------------------------------------------------- writers (in-process)
def _legacy_writer(root: Path, model: str, kinds) -> None:
    """Runs inside the FLAGS_enable_pir_api=0 subprocess."""
    from clsviz._paddle import paddle, pir_enabled, quiet

    if pir_enabled():
        raise RuntimeError("legacy writer started with PIR on; set FLAGS_enable_pir_api=0")
    base = root / model
    base.mkdir(parents=True, exist_ok=True)
    x = reference_input(model)

    # dygraph: weights, reference output, f and g
    paddle.disable_static()
    net = _build_dygraph(model)
    weights = random_weights({k: v.shape for k, v in net.state_dict().items()})
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    net.eval()
    expected = net(paddle.to_tensor(x)).numpy()
    np.savez(base / "weights.npz", **weights)
    if "dygraph_pdparams" in kinds:
        (base / "dygraph_pdparams").mkdir(exist_ok=True)
        paddle.save(net.state_dict(), str(base / "dygraph_pdparams" / "model.pdparams"))
    if "paddle2_inference" in kinds:
        with quiet():
            paddle.jit.save(net, str(base / "paddle2_inference" / "inference"),
                            input_spec=_input_spec(model))

    # static: a-e from one training program and its inference clone
    static_kinds = {"fluid_checkpoint", "fluid_inference_loose", "fluid_inference_combined",
                    "fluid_model_params", "static_save"} & set(kinds)
    static_out = None
    if static_kinds:
        named = {static_names(model, weights)[k]: v for k, v in weights.items()}
        paddle.enable_static()
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
            image = paddle.static.data(STATIC_FEED, [None] + list(x.shape[1:]), "float32")
            out = (_static_tiny if model == "tiny_cnn" else _static_resnet18_vd)(image)
            test_prog = main.clone(for_test=True)
            loss = paddle.mean(out)
            paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.9).minimize(loss)
        exe = paddle.static.Executor(paddle.CPUPlace())
        with quiet():
            exe.run(startup)
        scope = paddle.static.global_scope()
        params = {v.name for v in test_prog.list_vars() if v.persistable and
                  v.name not in ("feed", "fetch")}
        if params != set(named):
            raise RuntimeError(f"static names differ from the map: only in program "
                               f"{sorted(params - set(named))}, only in map "
                               f"{sorted(set(named) - params)}")
        for name, arr in named.items():
            scope.find_var(name).get_tensor().set(arr, paddle.CPUPlace())
        fetch = test_prog.global_block().var(out.name)
        with quiet():
            static_out = exe.run(test_prog, feed={STATIC_FEED: x}, fetch_list=[fetch])[0]
        test_image = test_prog.global_block().var(STATIC_FEED)

        def inference_model(folder: Path, model_name: str, params_name: str | None):
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "_tmp"
            kw = dict(program=test_prog, legacy_format=True)
            with quiet():
                if params_name is None:
                    paddle.static.save_inference_model(str(folder / "inference"), [test_image],
                                                       [fetch], exe, separate_parameters=True,
                                                       **kw)
                else:
                    paddle.static.save_inference_model(str(tmp), [test_image], [fetch], exe,
                                                       **kw)
                    os.replace(f"{tmp}.pdmodel", folder / model_name)
                    os.replace(f"{tmp}.pdiparams", folder / params_name)

        if "fluid_checkpoint" in kinds:
            (base / "fluid_checkpoint").mkdir(exist_ok=True)
            with quiet():
                paddle.static.io.save_vars(exe, str(base / "fluid_checkpoint"), main,
                                           predicate=lambda v: v.persistable and
                                           v.name not in ("feed", "fetch"))
        if "fluid_inference_loose" in kinds:
            inference_model(base / "fluid_inference_loose", "__model__", None)
        if "fluid_inference_combined" in kinds:
            inference_model(base / "fluid_inference_combined", "__model__", "__params__")
        if "fluid_model_params" in kinds:
            inference_model(base / "fluid_model_params", "model", "params")
        if "static_save" in kinds:
            (base / "static_save").mkdir(exist_ok=True)
            with quiet():
                paddle.static.save(main, str(base / "static_save" / "model"))
        paddle.disable_static()

    ref = {"input": x, "expected": expected}
    if static_out is not None:
        ref["static_output"] = static_out
    np.savez(base / "reference.npz", **ref)


def _pir_writer(root: Path, model: str) -> None:
    """Paddle 3 inference files (h); needs a process running PIR."""
    from clsviz._paddle import dygraph_mode, paddle, pir_enabled, quiet

    if not pir_enabled():
        raise RuntimeError("PIR writer started with PIR off")
    weights = load_weights(root, model)
    with dygraph_mode():
        net = _build_dygraph(model)
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
        net.eval()
        with quiet():
            paddle.jit.save(net, str(root / model / "paddle3_inference" / "inference"),
                            input_spec=_input_spec(model))


def _run_subprocess(mode: str, root: Path, model: str, kinds) -> None:
    env = dict(os.environ)
    env["FLAGS_enable_pir_api"] = "0" if mode == "legacy" else "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in
                                                       env.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p])
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, str(root), model, ",".join(kinds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} fixture writer failed for {model} ({proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")


# ---------------------------------------------------------------- public API
def _files(base: Path, kind: str) -> tuple[Path, dict]:
    d = base / kind
    if kind == "fluid_checkpoint":
        return d, {"params_dir": d}
    if kind == "fluid_inference_loose":
        return d, {"model": d / "__model__", "params_dir": d}
    if kind == "fluid_inference_combined":
        return d, {"model": d / "__model__", "params": d / "__params__"}
    if kind == "fluid_model_params":
        return d, {"model": d / "model", "params": d / "params"}
    if kind == "static_save":
        return d / "model.pdparams", {"pdparams": d / "model.pdparams", "opt": d / "model.pdopt",
                                      "model": d / "model.pdmodel"}
    if kind == "dygraph_pdparams":
        return d / "model.pdparams", {"pdparams": d / "model.pdparams"}
    if kind == "paddle2_inference":
        return d / "inference.pdmodel", {"model": d / "inference.pdmodel",
                                         "params": d / "inference.pdiparams",
                                         "info": d / "inference.pdiparams.info"}
    if kind == "paddle3_inference":
        return d / "inference.json", {"model": d / "inference.json",
                                      "params": d / "inference.pdiparams"}
    raise ValueError(f"unknown fixture kind {kind!r}; one of {KINDS}")


def write_all(root, model: str = "ResNet18_vd", *, kinds=KINDS) -> dict:
    """Write the requested kinds for ``model`` under ``root/model``; ``{kind: LegacyFixture}``."""
    if model not in MODELS:
        raise ValueError(f"unknown fixture model {model!r}; one of {sorted(MODELS)}")
    kinds = tuple(LETTERS.get(k, k) for k in kinds)
    for k in kinds:
        _files(Path(root), k)   # validates the name
    root = Path(root)
    base = root / model
    if base.exists():
        shutil.rmtree(base)
    # The legacy run always happens: it makes the weights and the reference output.
    _run_subprocess("legacy", root, model, [k for k in kinds if k in _LEGACY_KINDS])
    if "paddle3_inference" in kinds:
        from clsviz._paddle import pir_enabled

        if pir_enabled():
            _pir_writer(root, model)
        else:
            _run_subprocess("pir", root, model, ["paddle3_inference"])
    with np.load(base / "reference.npz") as z:
        ref = {k: z[k] for k in z.files}
    static = ("fluid_checkpoint", "fluid_inference_loose", "fluid_inference_combined",
              "fluid_model_params", "static_save")
    out = {}
    for k in kinds:
        path, files = _files(base, k)
        out[k] = LegacyFixture(k, model, path, files, ref["input"], ref["expected"],
                               ref.get("static_output") if k in static else None, base)
    return out


@functools.lru_cache(maxsize=None)
def shared(model: str = "ResNet18_vd") -> dict:
    """Every kind for ``model``, written once per process into a temporary folder.

    For tests that only read the files (the same objects come back on every
    call); copy a fixture before changing it.  The folder goes at exit.
    """
    root = Path(tempfile.mkdtemp(prefix=f"clsviz-legacy-{model}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return write_all(root, model)


def write_fixture(root, kind: str, model: str = "ResNet18_vd") -> LegacyFixture:
    """Write one kind (a letter ``"a"``..``"h"`` or a name from :data:`KINDS`)."""
    kind = LETTERS.get(kind, kind)
    return write_all(root, model, kinds=(kind,))[kind]


def fluid_checkpoint(root, model="ResNet18_vd"):
    """(a) fluid 1.x ``save_persistables`` folder (training program, loose files)."""
    return write_fixture(root, "fluid_checkpoint", model)


def fluid_inference_loose(root, model="ResNet18_vd"):
    """(b) ``__model__`` + one file per persistable."""
    return write_fixture(root, "fluid_inference_loose", model)


def fluid_inference_combined(root, model="ResNet18_vd"):
    """(c) ``__model__`` + ``__params__``."""
    return write_fixture(root, "fluid_inference_combined", model)


def fluid_model_params(root, model="ResNet18_vd"):
    """(d) ``model`` + ``params``."""
    return write_fixture(root, "fluid_model_params", model)


def static_save(root, model="ResNet18_vd"):
    """(e) Paddle 2.x ``paddle.static.save``: ``.pdparams`` + ``.pdopt`` + ``.pdmodel``."""
    return write_fixture(root, "static_save", model)


def dygraph_pdparams(root, model="ResNet18_vd"):
    """(f) Paddle 2.x dygraph ``state_dict`` pickle."""
    return write_fixture(root, "dygraph_pdparams", model)


def paddle2_inference(root, model="ResNet18_vd"):
    """(g) ``.pdmodel`` + ``.pdiparams`` + ``.pdiparams.info`` from ``jit.save`` (old IR)."""
    return write_fixture(root, "paddle2_inference", model)


def paddle3_inference(root, model="ResNet18_vd"):
    """(h) ``.json`` + ``.pdiparams`` from ``jit.save`` (PIR)."""
    return write_fixture(root, "paddle3_inference", model)


def run_predictor(model_file, params_file, x: np.ndarray) -> np.ndarray:
    """Run Paddle Inference on a model file pair (or a ``__model__`` folder if params is None)."""
    from clsviz._paddle import paddle, quiet

    inference = paddle.inference
    if params_file is None:
        config = inference.Config(str(Path(model_file).parent))
    else:
        config = inference.Config(str(model_file), str(params_file))
    config.disable_gpu()
    config.switch_ir_optim(False)
    with quiet():
        predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(np.ascontiguousarray(x))
    with quiet():
        predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


if __name__ == "__main__":  # subprocess entry: MODE ROOT MODEL KINDS
    _mode, _root, _model, _kinds = sys.argv[1:5]
    _kinds = tuple(k for k in _kinds.split(",") if k)
    if _mode == "legacy":
        _legacy_writer(Path(_root), _model, _kinds)
    elif _mode == "pir":
        _pir_writer(Path(_root), _model)
    else:
        raise SystemExit(f"unknown mode {_mode!r}")
