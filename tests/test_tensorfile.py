"""clsviz.formats.tensorfile: Paddle's LoDTensor files, without Paddle."""
from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fixtures_legacy as fl
from clsviz.errors import FormatError
from clsviz.formats import tensorfile as tf
from clsviz.formats.programdesc import read_program

# numpy dtype -> Paddle name the codec reports (uint16 is bf16 by convention)
DTYPES = {
    "float32": "float32", "float16": "float16", "float64": "float64", "int64": "int64",
    "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
    "uint16": "bfloat16",
}

arrays = st.sampled_from(sorted(DTYPES)).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                         max_side=5)))
lods = st.lists(st.lists(st.integers(0, 2**40), max_size=5).map(sorted), max_size=2)


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    # NaN-safe, bit-exact comparison
    assert a.tobytes() == b.tobytes()


# ------------------------------------------------------------------ round trips
@settings(max_examples=200, deadline=None)
@given(arr=arrays, lod=lods)
def test_round_trip_is_exact(arr, lod):
    blob = tf.tensor_bytes(arr, lod=lod)
    rec = tf.read_tensor_record(io.BytesIO(blob))
    _same(rec.array, arr)
    assert rec.dtype == DTYPES[arr.dtype.name]
    assert rec.lod == tuple(tuple(level) for level in lod)
    # re-serialising what was read gives the same bytes
    assert tf.tensor_bytes(rec.array, dtype=rec.dtype, lod=rec.lod) == blob


@settings(max_examples=50, deadline=None)
@given(items=st.lists(arrays, max_size=6))
def test_combined_round_trip(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("comb") / "params"
    tf.write_combined(path, items)
    back = tf.read_combined(path)
    assert len(back) == len(items)
    for a, b in zip(back, items):
        _same(a, b)
    infos = tf.scan_combined(path)
    assert [i.shape for i in infos] == [a.shape for a in items]
    assert sum(i.data_offset - i.offset + i.nbytes for i in infos) == os.path.getsize(path)


def test_combined_with_names_and_mapping_order(tmp_path):
    arrays = {"b": np.ones(2, "float32"), "a": np.zeros((1, 2), "int64")}
    tf.write_combined(tmp_path / "p", arrays)          # a mapping is written in sorted order
    got = tf.read_combined(tmp_path / "p", ["a", "b"])
    _same(got["a"], arrays["a"])
    _same(got["b"], arrays["b"])
    with pytest.raises(FormatError, match="holds 2 tensors but 3 names"):
        tf.read_combined(tmp_path / "p", ["a", "b", "c"])


def test_true_uint16_and_big_endian(tmp_path):
    a = np.arange(6, dtype="uint16").reshape(2, 3)
    rec = tf.read_tensor_record(io.BytesIO(tf.tensor_bytes(a, dtype="uint16")))
    assert rec.dtype == "uint16"
    _same(rec.array, a)
    big = np.arange(4, dtype=">f4")
    back = tf.read_tensor(io.BytesIO(tf.tensor_bytes(big)))
    assert back.dtype == np.float32 and (back == big).all()


def test_unsupported_dtype():
    with pytest.raises(FormatError, match="cannot be stored"):
        tf.tensor_bytes(np.array(["x"]))
    with pytest.raises(FormatError, match="unknown tensor dtype"):
        tf.tensor_bytes(np.zeros(2, "float32"), dtype="float8")


# ------------------------------------------------------------------ damage
def _two_tensor_file(tmp_path):
    path = tmp_path / "params"
    tf.write_combined(path, [np.arange(6, dtype="float32"), np.arange(4, dtype="int64")])
    return path, path.read_bytes()


def test_truncated_data_names_tensor_and_sizes(tmp_path):
    path, blob = _two_tensor_file(tmp_path)
    path.write_bytes(blob[:-5])
    with pytest.raises(FormatError, match=r"expected 32 bytes of data for tensor #1, found 27"):
        tf.read_combined(path)
    with pytest.raises(FormatError, match=r"tensor #1"):
        tf.scan_combined(path)


def test_every_cut_is_a_clean_error_or_a_record_boundary(tmp_path):
    path, blob = _two_tensor_file(tmp_path)
    first = len(tf.tensor_bytes(np.arange(6, dtype="float32")))
    for cut in range(len(blob)):
        path.write_bytes(blob[:cut])
        if cut in (0, first):
            assert len(tf.read_combined(path)) == (0 if cut == 0 else 1)
            continue
        with pytest.raises(FormatError, match="truncated|stray bytes"):
            tf.read_combined(path)


def test_not_a_tensor_file(tmp_path):
    p = tmp_path / "x.pdparams"
    p.write_bytes(pickle.dumps({"w": np.zeros(2)}))
    with pytest.raises(FormatError, match="version") as e:
        tf.read_tensor_file(p)
    assert "pickle" in str(e.value)
    assert not tf.is_tensor_file(p)
    bad = bytearray(tf.tensor_bytes(np.zeros(2, "float32")))
    bad[16:20] = (10 ** 6).to_bytes(4, "little")      # descriptor size
    p.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match="descriptor size"):
        tf.read_tensor_file(p)


def test_loose_file_must_hold_one_tensor(tmp_path):
    path, _ = _two_tensor_file(tmp_path)
    with pytest.raises(FormatError, match="more than one tensor"):
        tf.read_tensor_file(path)
    assert not tf.is_tensor_file(path)
    one = tmp_path / "w"
    tf.write_tensor_file(one, np.ones((2, 2), "float16"))
    assert tf.is_tensor_file(one)
    _same(tf.read_tensor_file(one), np.ones((2, 2), "float16"))


# ------------------------------------------------------------------ Paddle-written files
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64", "int64", "int32",
                                   "int8", "uint8", "bool"])
def test_bytes_equal_paddle_save_binary(tmp_path, dtype):
    from clsviz._paddle import paddle

    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32") * 5
    t = paddle.to_tensor(x).astype(dtype)
    p = tmp_path / "t.bin"
    paddle.save(t, str(p), use_binary_format=True)
    rec = tf.read_tensor_record(open(p, "rb"))
    assert rec.dtype == dtype
    expect = t.view("uint16").numpy() if dtype == "bfloat16" else t.numpy()
    _same(rec.array, expect)
    assert tf.tensor_bytes(rec.array, dtype=rec.dtype) == p.read_bytes()


def test_bytes_equal_paddle_lod_tensor(tmp_path):
    from clsviz._paddle import paddle

    core = paddle.base.core
    t = (core.DenseTensor if hasattr(core, "DenseTensor") else core.LoDTensor)()
    t.set(np.arange(10, dtype="float32").reshape(5, 2), paddle.CPUPlace())
    t.set_lod([[0, 2, 5]])
    p = tmp_path / "lod.bin"
    paddle.save(t, str(p), use_binary_format=True)
    rec = tf.read_tensor_record(open(p, "rb"))
    assert rec.lod == ((0, 2, 5),)
    assert tf.tensor_bytes(rec.array, lod=rec.lod) == p.read_bytes()


@pytest.fixture(scope="module", params=sorted(fl.MODELS))
def fixtures(request):
    return fl.shared(request.param)


def test_loose_files_written_by_paddle(fixtures):
    """save_vars / save_inference_model(separate_parameters) loose files, byte for byte."""
    for kind in ("fluid_checkpoint", "fluid_inference_loose"):
        folder = fixtures[kind].files["params_dir"]
        for f in sorted(folder.iterdir()):
            if f.name == "__model__":
                continue
            assert tf.is_tensor_file(f), f
            arr = tf.read_tensor_file(f)
            assert tf.tensor_bytes(arr) == f.read_bytes(), f


def test_codec_and_name_map_reproduce_paddle_files(fixtures, tmp_path):
    """Dygraph weights -> static names -> our writer == what Paddle wrote."""
    fx = fixtures["fluid_inference_loose"]
    weights = fx.weights()
    names = fl.static_names(fx.model, weights)
    for dy, arr in weights.items():
        ours = tmp_path / names[dy]
        tf.write_tensor_file(ours, arr)
        for kind in ("fluid_inference_loose", "fluid_checkpoint"):
            theirs = fixtures[kind].path / names[dy]
            assert ours.read_bytes() == theirs.read_bytes(), (kind, dy)


@pytest.mark.parametrize("kind", ["fluid_inference_combined", "fluid_model_params",
                                  "paddle2_inference", "paddle3_inference"])
def test_combined_files_written_by_paddle(fixtures, kind, tmp_path):
    fx = fixtures[kind]
    params = fx.files["params"]
    arrays = tf.read_combined(params)
    tf.write_combined(tmp_path / "again", arrays)
    assert (tmp_path / "again").read_bytes() == params.read_bytes()
    # same tensors as the weights the fixture was made from
    weights = fx.weights()
    assert sorted(a.tobytes() for a in arrays) == sorted(w.tobytes() for w in weights.values())


def test_combined_order_is_sorted_persistables(fixtures):
    """``__params__`` holds the program's persistables sorted by name: same data as loose files."""
    loose = fixtures["fluid_inference_loose"].path
    fx = fixtures["fluid_inference_combined"]
    names = read_program(fx.files["model"]).persistable_names()
    got = tf.read_combined(fx.files["params"], names)
    for name, arr in got.items():
        _same(arr, tf.read_tensor_file(loose / name))


def test_pdiparams_info_names_structured_weights(fixtures):
    """Paddle 2.x .pdiparams + .pdiparams.info give the dygraph state dict back."""
    fx = fixtures["paddle2_inference"]
    names = read_program(fx.files["model"]).persistable_names()
    by_name = tf.read_combined(fx.files["params"], names)
    with open(fx.files["info"], "rb") as f:
        info = pickle.load(f)
    state = {info[n]["structured_name"]: a for n, a in by_name.items()}
    weights = fx.weights()
    assert set(state) == set(weights)
    for k, v in weights.items():
        _same(state[k], v)


def test_damaged_shape_does_not_allocate(tmp_path):
    blob = bytearray(tf.tensor_bytes(np.zeros(3, "float32")))
    desc = tf.encode_tensor_desc(5, [2**40])
    blob = blob[:16] + len(desc).to_bytes(4, "little") + desc + blob[-12:]
    p = tmp_path / "w"
    p.write_bytes(bytes(blob))
    with pytest.raises(FormatError, match=r"expected 4398046511104 bytes of data for tensor #0, "
                                          r"found 12"):
        tf.read_tensor_file(p)
    with pytest.raises(FormatError, match="found 12"):
        tf.read_tensor(io.BytesIO(bytes(blob)))


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        tf.read_combined(tmp_path / "nope")
    with pytest.raises(FormatError, match="cannot read"):
        tf.read_tensor_file(tmp_path)
