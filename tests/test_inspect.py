"""clsviz.inspect: every layout identified, unused files flagged, non-Paddle files named, compare."""
from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import clsviz
import fixtures_legacy as FX
from clsviz.errors import FormatError
from clsviz.formats.tensorfile import write_tensor_file
from conftest import run_cli

LETTER = {kind: letter for letter, kind in FX.LETTERS.items()}
_ONNX = b"\x08\x07" b"\x12\x04clsv" b"\x3a\x09\x12\x07graph_0" b"\x42\x02\x10\x0d"   # a ModelProto head


@pytest.fixture(scope="module")
def tiny():
    return FX.shared("tiny_cnn")


def test_inspect_is_a_callable_module_with_compare(tiny):
    import clsviz.inspect as mod

    assert mod is clsviz.inspect and callable(clsviz.inspect)
    assert "inspect" in clsviz.__all__ and "migrate" in clsviz.__all__
    r = clsviz.inspect(tiny["paddle3_inference"].path)
    assert isinstance(r, clsviz.InspectReport) and r.layout == "h"
    c = clsviz.inspect.compare(tiny["dygraph_pdparams"].path, tiny["paddle3_inference"].path)
    assert isinstance(c, clsviz.InspectComparison) and c.same_weights


@pytest.mark.parametrize("kind", FX.KINDS)
def test_every_layout_is_identified(tiny, kind):
    fx = tiny[kind]
    r = clsviz.inspect(fx.path)
    assert r.is_model and r.layout == LETTER[kind], r.to_text()
    assert r.tensors.count == 7 and r.tensors.params == sum(v.size for v in fx.weights().values())
    assert dict(r.tensors.dtypes) == {"float32": 7}
    assert not r.problems and not r.unused, r.to_text()
    assert [m.mode for m in r.modes] == ["predictor", "dygraph", "executor", "export", "migrate",
                                         "openvino", "onnxruntime"]
    if kind in ("fluid_checkpoint", "static_save", "dygraph_pdparams"):
        assert r.mode("predictor").status == "no" and "export it first" in r.mode("predictor").detail
        assert r.mode("dygraph").status == "needs" and "--arch" in r.mode("dygraph").detail
        assert not r.outputs   # e lists the training program's data input; no fetch anywhere
    else:
        assert r.inputs[0].shape == (-1, 3, 16, 16) and r.inputs[0].dtype == "float32"
        assert r.outputs[0].shape == (-1, 10)
        assert r.mode("predictor").available and r.mode("dygraph").available
        assert r.ops and dict(r.ops).get("conv2d") == 1
        assert any("softmax" in n for n in r.notes)
    # the same report as a file and as its folder (for folder layouts the path is the folder)
    assert clsviz.inspect(fx.files.get("model", fx.path)).layout == LETTER[kind]


def test_fluid_checkpoint_details():
    folder = FX.shared("ResNet18_vd")["fluid_checkpoint"].path
    r = clsviz.inspect(folder)
    assert r.tensors.count == 117 and r.tensors.optimizer_count == len(list(folder.iterdir())) - 117
    assert "ResNet18_vd" in r.mode("dygraph").detail
    opt = [f for f in r.files if f.name.endswith("_velocity_0")]
    assert opt and all(f.used and "optimizer" in f.role for f in opt)
    r = clsviz.inspect(FX.shared("ResNet18_vd")["static_save"].path)
    assert r.layout == "e" and r.program.startswith("training") and r.inputs[0].name == "image"
    assert {f.name for f in r.files} == {"model.pdparams", "model.pdopt", "model.pdmodel"}


def test_unused_files_are_flagged(tiny, tmp_path):
    loose = tmp_path / "loose"
    shutil.copytree(tiny["fluid_inference_loose"].path, loose)
    write_tensor_file(loose / "conv2d_9.w_0", np.ones((2, 2), "float32"))   # a stray variable
    (loose / "README.txt").write_text("exported in 2019\n")
    r = clsviz.inspect(loose)
    assert r.is_model and r.layout == "b"
    assert set(r.unused) == {"conv2d_9.w_0", "README.txt"}
    roles = {f.name: f.role for f in r.files}
    assert "does not reference" in roles["conv2d_9.w_0"]
    assert "not part of the model" in roles["README.txt"]
    assert r.tensors.count == 7  # the stray is not counted
    assert "UNUSED" in r.to_text() and "unused" in r._repr_html_()

    combined = tmp_path / "combined"
    shutil.copytree(tiny["fluid_inference_combined"].path, combined)
    write_tensor_file(combined / "fc_0.w_0", np.ones((512, 10), "float32"))  # loose next to __params__
    assert clsviz.inspect(combined).unused == ("fc_0.w_0",)


def test_missing_and_mismatched_parameters_are_problems(tiny, tmp_path):
    loose = tmp_path / "loose"
    shutil.copytree(tiny["fluid_inference_loose"].path, loose)
    (loose / "fc_0.b_0").unlink()
    r = clsviz.inspect(loose)
    assert any("missing" in p and "fc_0.b_0" in p for p in r.problems)
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny["fluid_inference_combined"].path, mixed)
    shutil.copyfile(FX.shared("ResNet18_vd")["fluid_inference_combined"].files["params"],
                    mixed / "__params__")
    r = clsviz.inspect(mixed)
    assert any("not from the same export" in p for p in r.problems), r.problems


def _torch_zip(path: Path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr("archive/version", "3\n")


def test_not_a_paddle_model(tmp_path, tiny):
    pt = tmp_path / "resnet50.pdparams"
    _torch_zip(pt)
    r = clsviz.inspect(pt)
    assert not r.is_model and r.kind == "not_a_model" and "PyTorch" in r.verdict
    assert all(m.status == "no" for m in r.modes) and any("X2Paddle" in n for n in r.notes)

    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(_ONNX)
    r = clsviz.inspect(onnx)
    assert not r.is_model and "ONNX" in r.verdict

    empty = tmp_path / "empty"
    empty.mkdir()
    r = clsviz.inspect(empty)
    assert not r.is_model and "empty folder" in r.verdict

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copyfile(onnx, mixed / "model.onnx")
    (mixed / "notes.txt").write_text("hello\n")
    r = clsviz.inspect(mixed)
    assert not r.is_model and "mixed folder" in r.verdict and set(r.unused) == {"model.onnx", "notes.txt"}

    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.pdparams", "b.pdparams"):
        shutil.copyfile(tiny["dygraph_pdparams"].path, two / name)
    r = clsviz.inspect(two)
    assert not r.is_model and "2 checkpoints" in r.verdict

    with pytest.raises(FormatError, match="not found"):
        clsviz.inspect(tmp_path / "nope")


def test_model_next_to_foreign_files(tiny, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(tiny["paddle3_inference"].path.parent, d)
    shutil.copyfile(tiny["dygraph_pdparams"].path, d / "other.pdparams")
    (d / "model.onnx").write_bytes(_ONNX)
    r = clsviz.inspect(d)
    assert r.layout == "h" and set(r.unused) == {"other.pdparams", "model.onnx"}


def test_cli_json_and_compare(tiny):
    fx = tiny["fluid_inference_combined"]
    p = run_cli("inspect", fx.path, "--json", check=True)
    d = json.loads(p.stdout)
    assert d["layout"] == "c" and d["kind"] == "fluid_inference" and d["is_model"]
    assert d["tensors"]["count"] == 7 and d["modes"]["executor"]["status"] == "ready"
    assert d["inputs"][0] == {"name": "image", "shape": [-1, 3, 16, 16], "dtype": "float32"}
    p = run_cli("inspect", fx.path, "--compare", tiny["paddle3_inference"].path, check=True)
    assert "tensors: 7 equal" in p.stdout and "(c)" in p.stdout


def test_html_repr(tiny, resnet18_bundle):
    html = clsviz.inspect(tiny["fluid_inference_loose"].path)._repr_html_()
    for text in ("__model__", "predictor", "dygraph", "image", "conv2d"):
        assert text in html
    html = clsviz.inspect(resnet18_bundle)._repr_html_()
    assert "inference.yml" in html and "bundle" in html


def test_compare_checkpoint_with_its_export(resnet18_ckpt, resnet18_bundle):
    c = clsviz.inspect.compare(resnet18_ckpt, resnet18_bundle)
    assert c.b.layout == "bundle" and c.a.layout == "f"
    assert c.same_weights and c.count("equal") == len(clsviz.load_state_dict(resnet18_ckpt))
    assert any(m.matched_by == "value" for m in c.matches)   # dygraph names vs jit.save names
    adds = " ".join(c.adds)
    assert "a program" in adds and "input x" in adds and "inference.yml" in adds
    assert "model.pdparams" in adds
    d = c.to_dict()
    assert d["counts"]["equal"] == c.count("equal") and d["same_weights"]
    assert "equal" in c.to_text() and "<table>" in c._repr_html_()


def test_compare_shows_folded_batchnorm_and_softmax(tiny, tmp_path):
    """An export that folded BN into the conv and appended a softmax: compare names both."""
    from clsviz._paddle import paddle

    w = tiny["dygraph_pdparams"].weights()
    scale = w["bn.weight"] / np.sqrt(w["bn._variance"] + 1e-5)
    conv_w = w["conv.weight"] * scale[:, None, None, None]
    conv_b = w["bn.bias"] - w["bn._mean"] * scale
    nn = paddle.nn

    class Folded(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 8, 3, padding=1)
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            y = nn.functional.max_pool2d(nn.functional.relu(self.conv(x)), 2, 2)
            return nn.functional.softmax(self.fc(paddle.flatten(y, 1)))

    net = Folded()
    net.set_state_dict({"conv.weight": conv_w, "conv.bias": conv_b, "fc.weight": w["fc.weight"],
                        "fc.bias": w["fc.bias"]})
    net.eval()
    x = tiny["dygraph_pdparams"].input
    np.testing.assert_allclose(net(paddle.to_tensor(x)).numpy(), tiny["dygraph_pdparams"].expected,
                               atol=1e-5)
    paddle.jit.save(net, str(tmp_path / "folded" / "inference"),
                    input_spec=[paddle.static.InputSpec([None, 3, 16, 16], "float32", "x")])
    c = clsviz.inspect.compare(tiny["dygraph_pdparams"].path, tmp_path / "folded")
    changes = " ".join(c.changes)
    assert "BatchNorm folded" in changes and "softmax" in changes
    assert c.count("equal") == 2          # the fc weight and bias
    assert c.count("different") == 1     # the conv weight (folded)
    assert c.count("only in a") == 4 and c.count("only in b") == 1   # BN stats / the conv bias


def test_a_file_that_is_part_of_a_model_is_told_apart_in_formats_detect():
    """``formats.detect.part_of`` (the one home for "what is this file") names each member file,
    and inspect sends the user to the model it belongs to."""
    from clsviz.formats import detect

    fx = FX.shared("tiny_cnn")
    static = fx["static_save"].path                         # model.pdparams (+ .pdopt, training .pdmodel)
    info = fx["paddle2_inference"].files["info"]
    loose = fx["fluid_inference_loose"].path
    member = loose / "__model__" if loose.is_dir() else loose
    tensor = next(f for f in member.parent.iterdir() if f.name != "__model__" and f.is_file()
                  and detect.what_is(f).kind == "tensors")
    cases = {info: detect.PARAMS_INFO, static.with_suffix(".pdopt"): detect.OPTIMIZER_STATE,
             tensor: detect.LOOSE_TENSOR, member: detect.FLUID_MEMBER,
             static.with_suffix(".pdmodel"): detect.STATIC_PROGRAM, static: None}
    for f, want in cases.items():
        assert detect.part_of(f) == want, (f.name, want)
    assert "pdiparams.info" in clsviz.inspect(info).verdict
    assert "(.pdopt)" in clsviz.inspect(static.with_suffix(".pdopt")).verdict
    assert "one Paddle tensor" in clsviz.inspect(tensor).verdict
    assert clsviz.inspect(member).layout == "b"
    assert clsviz.inspect(static.with_suffix(".pdmodel")).layout == "e"


def test_what_a_folder_or_an_export_source_is_is_decided_in_formats_detect(tmp_path):
    """``formats.detect.what_folder`` classifies a folder as a whole (inspect only renders it) and
    ``detect.source_kind`` tells export a checkpoint source from an inference model file."""
    from clsviz.formats import detect

    fx = FX.shared("tiny_cnn")
    (tmp_path / "empty").mkdir()
    (tmp_path / "subs" / "inner").mkdir(parents=True)
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.pdparams", "b.pdparams"):
        (two / name).write_bytes(pickle.dumps({"w": np.zeros(2, "float32")}, protocol=4))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("a\n")
    (mixed / "b.txt").write_text("b\n")
    one = tmp_path / "one"
    one.mkdir()
    (one / "notes.txt").write_text("hello\n")
    tensors = tmp_path / "tensors"
    tensors.mkdir()
    write_tensor_file(tensors / "conv1_weights", np.ones((2, 3), "float32"))
    (tensors / "README").write_text("mostly tensors\n")
    want = {tmp_path / "empty": detect.EMPTY_FOLDER, tmp_path / "subs": detect.ONLY_SUBFOLDERS,
            two: detect.MANY_CHECKPOINTS, mixed: detect.MIXED, one: detect.ONE_FOREIGN_FILE,
            tensors: detect.PERSISTABLES, fx["paddle2_inference"].path.parent: detect.A_MODEL}
    for folder, verdict in want.items():
        assert detect.what_folder(folder).verdict == verdict, folder.name
    found = detect.what_folder(tensors)
    assert [f.name for f in found.tensors] == ["conv1_weights"] and [f.name for f in found.others] == ["README"]
    assert detect.what_folder(two).checkpoints == ("a.pdparams", "b.pdparams")

    p2 = fx["paddle2_inference"].path
    assert detect.source_kind(p2) == detect.PADDLE2_INFERENCE
    assert detect.source_kind(p2.with_suffix(".pdiparams")) == detect.PADDLE2_INFERENCE
    assert detect.source_kind(two / "a.pdparams") == detect.DYGRAPH_CHECKPOINT
    assert detect.source_kind(fx["static_save"].path) == detect.STATIC_SAVE
    assert detect.source_kind(tensors) == detect.FLUID_PERSISTABLES
