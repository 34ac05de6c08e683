"""clsviz.migrate and the op-by-op rebuild behind it (clsviz.formats.rebuild)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import clsviz
import fixtures_legacy as FX
from clsviz.errors import ExportError, FormatError, OptionError
from clsviz.formats import rebuild
from clsviz.formats.programdesc import BlockDesc, OpDesc, Program, VarDesc
from conftest import REPO, run_cli

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny():
    return FX.shared("tiny_cnn")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray((rng.random((40 + 7 * i, 30, 3)) * 255).astype(np.uint8)).save(d / f"s{i}.png")
    return d


def _close(out, ref):
    assert np.max(np.abs(np.asarray(out) - ref)) <= TOL * max(1.0, float(np.abs(ref).max()))


def test_cli_migrates_fluid_model_with_loose_files(tiny, tmp_path, images):
    """__model__ + one file per parameter → a Paddle 3 bundle that predicts what the original does."""
    fx = tiny["fluid_inference_loose"]
    dst = tmp_path / "bundle"
    p = run_cli("migrate", fx.path, dst, "--json", check=True)
    d = json.loads(p.stdout)
    assert d["route"] == "rebuild" and d["source_kind"] == "fluid_inference"
    assert {f["name"] for f in d["files"]} == {"inference.json", "inference.pdiparams", "inference.yml"}
    assert d["max_abs_diff"] <= TOL
    cfg = clsviz.BundleConfig.read(dst / "inference.yml")
    assert cfg.class_num == 10 and cfg.image_shape == (3, 16, 16) and cfg.softmax
    # every mode runs the new bundle with no other argument, and agrees with the original
    for mode in clsviz.MODES:
        with clsviz.load(dst, mode=mode) as clf:
            _close(clf.forward(fx.input), fx.expected)
    with clsviz.load(fx.path) as old, clsviz.load(dst) as new:
        a, b = old.predict(images, top_k=3), new.predict(images, top_k=3)
    assert [[t.class_id for t in x.topk] for x in a] == [[t.class_id for t in x.topk] for x in b]
    assert np.allclose([x.score for x in a], [x.score for x in b], atol=1e-5)
    assert a[0].score > 0.15  # probabilities, not a softmax applied twice
    # the migrated tensors keep the program's names
    c = clsviz.inspect.compare(fx.path, dst)
    assert c.same_weights and all(m.matched_by == "name" for m in c.matches)


def test_sample_images_are_checked(tiny, tmp_path, images):
    r = clsviz.migrate(tiny["fluid_model_params"].path, tmp_path / "b", images=images)
    assert r.images_checked == 3 and r.images_max_abs_diff <= TOL
    assert "3 sample images" in str(r)
    d = r.to_dict()
    json.dumps(d)
    assert d["route"] == "rebuild" and d["images_checked"] == 3
    assert "Migrated" in r._repr_html_()
    r = clsviz.migrate(tiny["paddle3_inference"].path, tmp_path / "h", images=False)
    assert r.route == "copy" and r.images_checked == 0


def test_unsupported_op_falls_back_to_a_paddle2_bundle(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(rebuild, "SUPPORTED_OPS", rebuild.SUPPORTED_OPS - {"relu"})
    fx = tiny["fluid_inference_loose"]
    with pytest.raises(FormatError, match="not covered: relu") as e:
        rebuild.program_to_layer(fx.path)
    assert e.value.unsupported_ops == ("relu",)
    with pytest.raises(FormatError, match="relu"):
        clsviz.load(fx.path, mode="dygraph")
    rep = clsviz.inspect(fx.path)
    assert rep.mode("dygraph").status == "no" and "relu" in rep.mode("dygraph").detail
    assert "Paddle 2 bundle" in rep.mode("migrate").detail
    with pytest.raises(ExportError, match="relu"):
        clsviz.migrate(fx.path, tmp_path / "strict", fallback=False)
    assert not (tmp_path / "strict").exists()
    r = clsviz.migrate(fx.path, tmp_path / "b")
    assert r.route == "fallback" and r.unsupported_ops == ("relu",)
    assert {f.name for f in r.files} == {"inference.pdmodel", "inference.pdiparams", "inference.yml"}
    assert "relu" in str(r) and r.max_abs_diff <= TOL
    with clsviz.load(tmp_path / "b") as clf:   # loose files were combined by the codec
        _close(clf.forward(fx.input), fx.expected)


def test_refuses_a_bundle_that_disagrees(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(rebuild._HANDLERS, "relu", lambda op, env: rebuild._set(op, env, rebuild._in(op, env, "X")))
    dst = tmp_path / "b"
    with pytest.raises(ExportError, match="disagrees"):
        clsviz.migrate(tiny["fluid_inference_combined"].path, dst)
    assert not dst.exists() and not list(tmp_path.iterdir())   # nothing left behind


def test_what_migrate_refuses(tiny, tmp_path):
    with pytest.raises(OptionError, match="needs the network code"):
        clsviz.migrate(tiny["dygraph_pdparams"].path, tmp_path / "x")
    dst = tmp_path / "b"
    clsviz.migrate(tiny["paddle2_inference"].path, dst)
    with pytest.raises(ExportError, match="not empty"):
        clsviz.migrate(tiny["paddle2_inference"].path, dst)
    assert clsviz.migrate(tiny["paddle2_inference"].path, dst, force=True).route == "rebuild"
    with pytest.raises(ExportError, match="already a Paddle 3 bundle"):
        clsviz.migrate(dst, tmp_path / "again")
    with pytest.raises(FormatError, match="training program"):
        clsviz.migrate(tiny["static_save"].files["model"], tmp_path / "t", params=tiny["static_save"].path)


def test_unknown_ops_are_all_named():
    ops = (OpDesc("feed", {"X": ("feed",)}, {"Out": ("x",)}, {"col": 0}),
           OpDesc("relu", {"X": ("x",)}, {"Out": ("a",)}),
           OpDesc("top_k_v2", {"X": ("a",)}, {"Out": ("b",)}),
           OpDesc("argsort", {"X": ("b",)}, {"Out": ("c",)}),
           OpDesc("top_k_v2", {"X": ("c",)}, {"Out": ("d",)}),
           OpDesc("fetch", {"X": ("d",)}, {"Out": ("fetch",)}, {"col": 0}))
    prog = Program((BlockDesc(0, -1, (VarDesc("x", "LOD_TENSOR", "float32", (-1, 4)),), ops),))
    assert rebuild.unsupported_ops(prog) == {"top_k_v2": 2, "argsort": 1}
    err = rebuild._unsupported_error(rebuild.unsupported_ops(prog), "m")
    assert "argsort, top_k_v2 ×2" in str(err) and err.unsupported_ops == ("argsort", "top_k_v2")


# ------------------------------------------------------------------ op semantics
def _run(op_type, inputs: dict, attrs: dict | None = None, out="Out", n_out=1):
    """Run one handler in dygraph on numpy inputs; returns the output array(s)."""
    from clsviz._paddle import dygraph_mode, paddle

    env, names = {}, {}
    for param, value in inputs.items():
        values = value if isinstance(value, list) else [value]
        names[param] = tuple(f"{param}{i}" for i in range(len(values)))
        for n, v in zip(names[param], values):
            env[n] = v
    outs = tuple(f"out{i}" for i in range(n_out))
    op = OpDesc(op_type, names, {out: outs}, attrs or {})
    with dygraph_mode():
        env = {k: paddle.to_tensor(np.asarray(v, dtype="float32")) for k, v in env.items()}
        rebuild._HANDLERS[op_type](op, env)
        res = [env[o].numpy() for o in outs]
    return res if n_out > 1 else res[0]


RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((2, 3, 4, 4)).astype("float32")
X3 = RNG.standard_normal((2, 3, 4)).astype("float32")


def _sig(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("op,inputs,attrs,want", [
    ("dropout", {"X": X3}, {"dropout_prob": 0.3}, X3 * 0.7),   # fluid's default: downgrade_in_infer
    ("dropout", {"X": X3}, {"dropout_prob": 0.3, "dropout_implementation": "upscale_in_train"}, X3),
    ("scale", {"X": X3}, {"scale": 2.0, "bias": 1.0, "bias_after_scale": True}, 2 * X3 + 1),
    ("scale", {"X": X3}, {"scale": 2.0, "bias": 1.0, "bias_after_scale": False}, 2 * (X3 + 1)),
    ("elementwise_add", {"X": X4, "Y": np.arange(3.0)}, {"axis": 1}, X4 + np.arange(3.0).reshape(1, 3, 1, 1)),
    ("elementwise_mul", {"X": X4, "Y": np.arange(6.0).reshape(2, 3)}, {"axis": 0},
     X4 * np.arange(6.0).reshape(2, 3, 1, 1)),
    ("elementwise_sub", {"X": X3, "Y": X3[0]}, {"axis": -1}, X3 - X3[0]),
    ("elementwise_div", {"X": X3, "Y": np.full(4, 2.0)}, {"axis": -1}, X3 / 2),
    ("relu6", {"X": X3 * 10}, {"threshold": 6.0}, np.clip(X3 * 10, 0, 6)),
    ("leaky_relu", {"X": X3}, {"alpha": 0.1}, np.where(X3 > 0, X3, 0.1 * X3)),
    ("hard_swish", {"X": X3 * 4}, {}, X3 * 4 * np.clip(X3 * 4 + 3, 0, 6) / 6),
    ("hard_sigmoid", {"X": X3}, {"slope": 0.2, "offset": 0.5}, np.clip(0.2 * X3 + 0.5, 0, 1)),
    ("swish", {"X": X3}, {"beta": 2.0}, X3 * _sig(2 * X3)),
    ("sigmoid", {"X": X3}, {}, _sig(X3)),
    ("tanh", {"X": X3}, {}, np.tanh(X3)),
    ("softmax", {"X": X3}, {"axis": 1}, np.exp(X3) / np.exp(X3).sum(1, keepdims=True)),
    ("flatten2", {"X": X4}, {"axis": 2}, X4.reshape(6, 16)),
    ("flatten2", {"X": X4}, {"axis": 0}, X4.reshape(1, -1)),
    ("flatten_contiguous_range", {"X": X4}, {"start_axis": 1, "stop_axis": 2}, X4.reshape(2, 12, 4)),
    ("reshape2", {"X": X4}, {"shape": [0, -1]}, X4.reshape(2, 48)),
    ("transpose2", {"X": X4}, {"axis": [0, 2, 3, 1]}, X4.transpose(0, 2, 3, 1)),
    ("squeeze2", {"X": X4[:, :1]}, {"axes": [1]}, X4[:, 0]),
    ("unsqueeze2", {"X": X3}, {"axes": [1]}, X3[:, None]),
    ("concat", {"X": [X3, X3 * 2]}, {"axis": 1}, np.concatenate([X3, X3 * 2], 1)),
    ("sum", {"X": [X3, X3, X3]}, {}, 3 * X3),
    ("mul", {"X": X3, "Y": np.ones((12, 5))}, {"x_num_col_dims": 1, "y_num_col_dims": 1},
     X3.reshape(2, 12) @ np.ones((12, 5))),
    ("mul", {"X": X3, "Y": np.ones((4, 5))}, {"x_num_col_dims": 2, "y_num_col_dims": 1},
     X3 @ np.ones((4, 5))),
    ("matmul", {"X": X3[0], "Y": X3[1]}, {"transpose_Y": True, "alpha": 2.0}, 2 * X3[0] @ X3[1].T),
    ("matmul_v2", {"X": X3[0].T, "Y": X3[1].T}, {"trans_x": True}, X3[0] @ X3[1].T),
    ("reduce_mean", {"X": X4}, {"dim": [2, 3], "keep_dim": True}, X4.mean((2, 3), keepdims=True)),
    ("reduce_mean", {"X": X4}, {"reduce_all": True}, X4.mean()),
    ("mean", {"X": X4}, {}, X4.mean()),
])
def test_op_semantics(op, inputs, attrs, want):
    got = _run(op, inputs, attrs)
    np.testing.assert_allclose(np.squeeze(got), np.squeeze(want), rtol=1e-5, atol=1e-5)


def test_fc_split_pool_conv_and_batch_norm():
    w, b = RNG.standard_normal((48, 5)), RNG.standard_normal(5)
    got = _run("fc", {"Input": X4, "W": w, "Bias": b}, {"in_num_col_dims": 1, "activation_type": "relu"})
    np.testing.assert_allclose(got, np.maximum(X4.reshape(2, 48) @ w + b, 0), rtol=1e-4, atol=1e-5)
    a, c = _run("split", {"X": X4}, {"sections": [1, 2], "axis": 1}, n_out=2)
    np.testing.assert_array_equal(a, X4[:, :1])
    np.testing.assert_array_equal(c, X4[:, 1:])
    ones = np.ones((1, 1, 4, 4), "float32")
    pool = dict(pooling_type="avg", ksize=[3, 3], strides=[1, 1], paddings=[1, 1])
    assert _run("pool2d", {"X": ones}, dict(pool, exclusive=True)).min() == 1.0
    np.testing.assert_allclose(_run("pool2d", {"X": ones}, dict(pool, exclusive=False))[0, 0, 0, 0], 4 / 9)
    x5 = RNG.standard_normal((1, 1, 5, 5)).astype("float32")
    mx = dict(pooling_type="max", ksize=[2, 2], strides=[2, 2], paddings=[0, 0])
    assert _run("pool2d", {"X": x5}, mx).shape[-1] == 2
    ceil = _run("pool2d", {"X": x5}, dict(mx, ceil_mode=True))
    assert ceil.shape[-1] == 3 and ceil[0, 0, 2, 2] == x5[0, 0, 4, 4]
    np.testing.assert_allclose(_run("pool2d", {"X": X4}, {"pooling_type": "avg", "global_pooling": True,
                                                          "ksize": [1, 1]}), X4.mean((2, 3), keepdims=True),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_run("pool2d", {"X": X4}, {"pooling_type": "avg", "adaptive": True,
                                                          "ksize": [2, 2]}),
                               X4.reshape(2, 3, 2, 2, 2, 2).mean((3, 5)), rtol=1e-5, atol=1e-6)
    # conv with 4-value paddings [top, bottom, left, right], against a pre-padded input
    wc = RNG.standard_normal((4, 3, 3, 3)).astype("float32")
    got = _run("conv2d", {"Input": X4, "Filter": wc}, {"paddings": [1, 0, 2, 0], "strides": [1, 1]}, "Output")
    ref = _run("conv2d", {"Input": np.pad(X4, ((0, 0), (0, 0), (1, 0), (2, 0))), "Filter": wc}, {}, "Output")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    dw = RNG.standard_normal((3, 1, 3, 3)).astype("float32")
    got = _run("depthwise_conv2d", {"Input": X4, "Filter": dw}, {"groups": 3, "paddings": [1, 1]}, "Output")
    assert got.shape == (2, 3, 4, 4)
    mean, var = RNG.standard_normal(3), RNG.uniform(0.5, 1.5, 3)
    scale, bias = RNG.uniform(0.5, 1.5, 3), RNG.standard_normal(3)
    got = _run("batch_norm", {"X": X4, "Mean": mean, "Variance": var, "Scale": scale, "Bias": bias},
               {"epsilon": 1e-5}, "Y")
    c = lambda v: v.reshape(1, 3, 1, 1)  # noqa: E731
    np.testing.assert_allclose(got, (X4 - c(mean)) / np.sqrt(c(var) + 1e-5) * c(scale) + c(bias),
                               rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ real programs, many ops
BROAD_NET = textwrap.dedent("""
    import sys
    import numpy as np
    from clsviz._paddle import paddle
    nn, F = paddle.nn, paddle.nn.functional


    class Broad(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 6, 3, padding=1)
            self.dw = nn.Conv2D(6, 6, 3, padding=[1, 0, 1, 0], groups=6)
            self.bn = nn.BatchNorm2D(6)
            self.drop = nn.Dropout(0.3, mode="downscale_in_infer")
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            y = F.hardswish(self.bn(self.dw(F.relu6(self.conv(x)))))
            y = F.hardsigmoid(y) * F.silu(y) - F.leaky_relu(y, 0.1) / 2.0
            a, b = paddle.split(y, [2, 4], axis=1)
            y = paddle.concat([b, a, a * 3.0], axis=1)
            y = F.avg_pool2d(y, 2, 2, ceil_mode=True, exclusive=False)
            y = F.adaptive_avg_pool2d(F.max_pool2d(y, 2, 1, padding=1), [2, 1])
            y = paddle.squeeze(paddle.unsqueeze(paddle.reshape(y, [0, -1]), 1), 1)
            y = F.relu(self.drop(paddle.scale(y, 2.0, bias=0.5)))
            y = self.fc(paddle.mean(paddle.reshape(y, [0, 2, 8]), axis=1))
            return F.softmax(paddle.transpose(paddle.unsqueeze(y, 2), [0, 2, 1]).squeeze(1))


    def build():
        paddle.seed(0)
        net = Broad()
        rng = np.random.default_rng(0)
        net.bn._mean.set_value(rng.normal(0, 0.1, 6).astype("float32"))
        net.bn._variance.set_value(rng.uniform(0.5, 1.5, 6).astype("float32"))
        net.eval()
        return net


    def save(prefix):
        spec = [paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")]
        paddle.jit.save(build(), prefix, input_spec=spec)


    if __name__ == "__main__":
        save(sys.argv[1])
""")


def test_real_programs_with_many_ops_rebuild_exactly(tmp_path):
    """Paddle writes the same network as a legacy .pdmodel (old IR) and a PIR .json; both rebuild."""
    (tmp_path / "broad_net.py").write_text(BROAD_NET)
    env = dict(os.environ, FLAGS_enable_pir_api="0", PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    p = subprocess.run([sys.executable, str(tmp_path / "broad_net.py"), str(tmp_path / "legacy" / "inference")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    sys.path.insert(0, str(tmp_path))
    try:
        import broad_net
    finally:
        sys.path.remove(str(tmp_path))
    from clsviz._paddle import paddle

    broad_net.save(str(tmp_path / "pir" / "inference"))
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype("float32")
    ref = broad_net.build()(paddle.to_tensor(x)).numpy()
    legacy = clsviz.inspect(tmp_path / "legacy")
    assert legacy.layout == "g" and {"split", "hard_swish", "depthwise_conv2d", "dropout"} <= set(dict(legacy.ops))
    for folder in ("legacy", "pir"):
        net, cfg = rebuild.program_to_layer(tmp_path / folder)
        np.testing.assert_allclose(net(paddle.to_tensor(x)).numpy(), ref, atol=1e-6)
        assert cfg.softmax and cfg.class_num == 5 and cfg.image_shape == (3, 8, 8)
    r = clsviz.migrate(tmp_path / "legacy", tmp_path / "migrated")
    assert r.route == "rebuild" and r.max_abs_diff <= TOL
    # oneDNN (the CPU default) is not used for the check: Paddle 3.3's oneDNN avg pool with
    # ceil_mode and exclusive=False disagrees with Paddle's own kernels (docs/formats.md)
    with clsviz.load(tmp_path / "migrated", enable_mkldnn=False) as clf:
        _close(clf.forward(x), ref)
