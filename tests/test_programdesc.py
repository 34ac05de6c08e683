"""clsviz.formats.programdesc: legacy ProgramDesc files read without protobuf."""
from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings, strategies as st

import fixtures_legacy as fl
from clsviz.errors import FormatError
from clsviz.formats import tensorfile as tf
from clsviz.formats.programdesc import parse_program, read_program

PROGRAM_KINDS = ("fluid_inference_loose", "fluid_inference_combined", "fluid_model_params",
                 "paddle2_inference")


@pytest.fixture(scope="module", params=sorted(fl.MODELS))
def fixtures(request):
    return fl.shared(request.param)


@pytest.mark.parametrize("kind", PROGRAM_KINDS)
def test_inference_programs(fixtures, kind):
    fx = fixtures[kind]
    prog = read_program(fx.files["model"])
    assert prog.feed_targets() == [fx.feed_name]
    assert len(prog.fetch_targets()) == 1
    feed = prog.vars[fx.feed_name]
    assert feed.shape == (-1,) + fx.input.shape[1:] and feed.dtype == "float32"
    hist = prog.op_histogram()
    n_conv = 1 if fx.model == "tiny_cnn" else 23
    assert hist["conv2d"] == n_conv and hist["batch_norm"] == n_conv
    assert hist["feed"] == 1 and hist["fetch"] == 1
    assert list(hist.values()) == sorted(hist.values(), reverse=True)
    # every persistable is a float32 weight whose shape matches the stored tensor
    names = prog.persistable_names()
    arrays = tf.read_combined(fx.files["params"], names) if "params" in fx.files else \
        {n: tf.read_tensor_file(fx.files["params_dir"] / n) for n in names}
    for n in names:
        v = prog.vars[n]
        assert v.kind == "LOD_TENSOR" and v.dtype == "float32"
        assert v.shape == arrays[n].shape, n
    assert "feed" in prog.vars and prog.vars["feed"].kind == "FEED_MINIBATCH"
    assert "feed" not in names and "fetch" not in names


def test_loose_folder_holds_exactly_the_persistables(fixtures):
    fx = fixtures["fluid_inference_loose"]
    prog = read_program(fx.files["model"])
    on_disk = sorted(p.name for p in fx.path.iterdir() if p.name != "__model__")
    assert prog.persistable_names() == on_disk


def test_training_program_and_checkpoint_folder(fixtures):
    """(e)'s model.pdmodel is the training program; (a) saved its persistables."""
    prog = read_program(fixtures["static_save"].files["model"])
    assert prog.feed_targets() == []       # no feed/fetch ops in a training program
    hist = prog.op_histogram()
    assert hist["conv2d_grad"] == hist["conv2d"] and hist["momentum"] > 0
    folder = fixtures["fluid_checkpoint"].path
    assert prog.persistable_names() == sorted(p.name for p in folder.iterdir())
    # static.save splits them: parameters (BN statistics included) vs optimizer state
    with open(fixtures["static_save"].files["pdparams"], "rb") as f:
        params = pickle.load(f)
    with open(fixtures["static_save"].files["opt"], "rb") as f:
        opt = pickle.load(f)
    assert set(params) == {n for n, v in prog.vars.items() if v.is_parameter}
    assert sorted(set(params) | set(opt)) == prog.persistable_names()
    assert "learning_rate_0" in opt


def test_op_details(fixtures):
    prog = read_program(fixtures["fluid_inference_combined"].files["model"])
    conv = next(op for op in prog.ops if op.type == "conv2d")
    assert conv.attrs["strides"] in ([1, 1], [2, 2]) and conv.attr_types["strides"] == "INTS"
    assert conv.attrs["data_format"] == "NCHW"
    assert conv.input("Filter")[0] in prog.persistable_names()
    bn = next(op for op in prog.ops if op.type == "batch_norm")
    assert bn.attrs["is_test"] is True
    assert isinstance(bn.attrs["epsilon"], float) and abs(bn.attrs["epsilon"] - 1e-5) < 1e-9
    assert set(bn.inputs) >= {"X", "Scale", "Bias", "Mean", "Variance"}
    producers = prog.producers()
    assert producers[prog.fetch_targets()[0]].type in ("softmax", "elementwise_add")
    assert "ProgramDesc" in prog.summary()


def test_legacy_format_programs_carry_an_old_version(fixtures):
    old = read_program(fixtures["fluid_inference_combined"].files["model"])
    new = read_program(fixtures["paddle2_inference"].files["model"])
    assert old.version is not None and new.version is not None
    assert "conv2d" in new.op_versions


def test_matches_paddles_own_protobuf(fixtures):
    pb2 = pytest.importorskip("paddle.base.proto.framework_pb2")
    for kind in PROGRAM_KINDS + ("static_save",):
        path = fixtures[kind].files["model"]
        ref = pb2.ProgramDesc()
        ref.ParseFromString(path.read_bytes())
        prog = read_program(path)
        assert len(prog.blocks) == len(ref.blocks)
        for block, rblock in zip(prog.blocks, ref.blocks):
            assert [v.name for v in block.vars] == [v.name for v in rblock.vars]
            for v, rv in zip(block.vars, rblock.vars):
                assert v.persistable == rv.persistable
                if rv.type.HasField("dense_tensor"):
                    assert v.shape == tuple(rv.type.dense_tensor.tensor.dims)
            assert [op.type for op in block.ops] == [op.type for op in rblock.ops]
            for op, rop in zip(block.ops, rblock.ops):
                assert op.inputs == {i.parameter: tuple(i.arguments) for i in rop.inputs}
                assert op.outputs == {o.parameter: tuple(o.arguments) for o in rop.outputs}
                for a in rop.attrs:
                    field = {0: "i", 1: "f", 2: "s", 3: "ints", 4: "floats", 5: "strings",
                             6: "b", 7: "bools", 8: "block_idx", 9: "l", 10: "blocks_idx",
                             11: "longs", 12: "float64s", 13: "var_name", 14: "vars_name",
                             15: "float64"}.get(a.type)
                    if field is None:
                        continue
                    want = getattr(a, field)
                    want = list(want) if not isinstance(want, (int, float, str, bool)) else want
                    assert op.attrs[a.name] == want, (op.type, a.name)


# ------------------------------------------------------------------ not a program
def test_pir_json_and_pickles_are_refused(fixtures, tmp_path):
    with pytest.raises(FormatError, match="PIR JSON"):
        read_program(fixtures["paddle3_inference"].files["model"])
    with pytest.raises(FormatError, match="pickle"):
        read_program(fixtures["dygraph_pdparams"].path)
    with pytest.raises(FormatError, match="not a Paddle ProgramDesc"):
        read_program(fixtures["fluid_inference_combined"].files["params"])
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        read_program(tmp_path / "empty")
    with pytest.raises(FormatError, match="cannot read"):
        read_program(tmp_path / "missing")


@pytest.fixture(scope="module")
def tiny_program_bytes():
    return fl.shared("tiny_cnn")["fluid_inference_combined"].files["model"].read_bytes()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_programs_fail_cleanly(tiny_program_bytes, data):
    """A cut or flipped byte gives a Program or a FormatError, never another exception."""
    blob = bytearray(tiny_program_bytes)
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    else:
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    try:
        parse_program(bytes(blob))
    except FormatError:
        pass


def test_parse_program_accepts_bytes(tiny_program_bytes):
    prog = parse_program(tiny_program_bytes)
    assert prog.path is None and prog.persistable_names()[0] == "batch_norm_0.b_0"


@pytest.mark.parametrize("kind", PROGRAM_KINDS + ("paddle3_inference",))
def test_fixture_programs_run_in_the_predictor(fixtures, kind):
    """The fixtures are sound: Paddle Inference reproduces the dygraph reference."""
    import numpy as np

    fx = fixtures[kind]
    out = fl.run_predictor(fx.files["model"], fx.files.get("params"), fx.input)
    np.testing.assert_allclose(out, fx.expected, rtol=1e-4, atol=1e-4)
    if fx.static_output is not None:
        np.testing.assert_allclose(fx.static_output, fx.expected, rtol=1e-5, atol=1e-5)
