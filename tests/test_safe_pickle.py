"""clsviz.safe_pickle: real paddle.save output loads; hostile or foreign files do not."""
from __future__ import annotations

import collections
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clsviz import safe_pickle
from clsviz._paddle import paddle
from clsviz.errors import FormatError, UnsafeCheckpoint
from clsviz.safe_pickle import load_pdparams, sniff


# ---------------------------------------------------------------- helpers
class SmallNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3)
        self.bn = paddle.nn.BatchNorm2D(4)
        self.fc = paddle.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean(axis=[2, 3]))


def to_numpy(obj):
    """paddle.load results → numpy, for comparison."""
    if isinstance(obj, paddle.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    return obj


def assert_same(got, want, where="root"):
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert list(got) == list(want), where
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got)}"
        assert got.dtype == want.dtype and got.shape == want.shape, where
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        assert got == want and type(got) is type(want), where


@pytest.fixture(scope="module")
def small_net():
    paddle.seed(0)
    net = SmallNet()
    net.eval()  # BatchNorm in train mode warns on every forward
    return net


@pytest.fixture(scope="module")
def small_file(small_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "net.pdparams"
    paddle.save(small_net.state_dict(), str(path))
    return path


# ---------------------------------------------------------------- real paddle.save output
@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_dygraph_state_dict_matches_paddle_load(small_net, tmp_path, protocol):
    path = tmp_path / "net.pdparams"
    paddle.save(small_net.state_dict(), str(path), protocol=protocol)
    got = load_pdparams(path)
    want = to_numpy(paddle.load(str(path)))
    assert list(got) == list(small_net.state_dict())  # keys and order as saved
    assert_same(got, want)
    assert all(isinstance(v, np.ndarray) for v in got.values())


def test_resnet50_vd_state_dict(tmp_path):
    from clsviz.archs import get_model

    net = get_model("ResNet50_vd")
    path = tmp_path / "ResNet50_vd.pdparams"
    paddle.save(net.state_dict(), str(path))
    got = load_pdparams(path)
    want = to_numpy(paddle.load(str(path)))
    assert len(got) == len(net.state_dict()) and "fc.weight" in got
    assert_same(got, want)
    assert_same(load_pdparams(path, trust=True), want)


def _optimizer_state(net):
    opt = paddle.optimizer.Momentum(learning_rate=paddle.optimizer.lr.StepDecay(0.1, 2),
                                    parameters=net.parameters())
    net(paddle.randn([2, 3, 8, 8])).mean().backward()
    opt.step()
    return opt.state_dict()


def test_optimizer_state_keeps_its_nesting(small_net, tmp_path):
    path = tmp_path / "net.pdopt"
    paddle.save(_optimizer_state(small_net), str(path))
    got = load_pdparams(path)
    assert_same(got, to_numpy(paddle.load(str(path), return_numpy=True)))
    assert isinstance(got["LR_Scheduler"], dict) and got["LR_Scheduler"]["last_epoch"] == 0
    assert safe_pickle.NAME_TABLE_KEY not in got


@pytest.mark.parametrize("protocol", [2, 4])
def test_nested_dict_with_tensor_records(small_net, tmp_path, protocol):
    # Not a plain state dict, so Paddle pickles Tensors as ``tuple((name, ndarray))``
    # and a DenseTensor as ``eval("data", {"data": ndarray})``.
    dense = paddle.base.core.DenseTensor()
    dense.set(np.arange(6, dtype="float32").reshape(2, 3), paddle.CPUPlace())
    obj = {"model": small_net.state_dict(), "opt": _optimizer_state(small_net), "epoch": 3,
           "best": np.float32(0.5), "extra": [paddle.ones([2]), {"dense": dense}]}
    path = tmp_path / "bundle.pdparams"
    paddle.save(obj, str(path), protocol=protocol)
    raw = path.read_bytes()
    assert b"tuple" in raw and b"eval" in raw  # the records under test are really there

    got = load_pdparams(path)
    assert_same(got, to_numpy(paddle.load(str(path), return_numpy=True)))
    assert list(got["model"]) == list(small_net.state_dict())
    np.testing.assert_array_equal(got["extra"][1]["dense"], np.arange(6).reshape(2, 3))
    assert got["epoch"] == 3 and got["best"] == np.float32(0.5)
    assert_same(load_pdparams(path, trust=True), got)


def test_dtypes_incl_bfloat16_bits(tmp_path):
    sd = {"h": paddle.ones([2], dtype="float16"), "b": paddle.full([3], 1.5, dtype="bfloat16"),
          "i": paddle.arange(4), "m": paddle.ones([2]) > 0, "u": paddle.ones([1], dtype="uint8")}
    path = tmp_path / "dtypes.pdparams"
    paddle.save(sd, str(path))
    got = load_pdparams(path)
    assert {k: str(v.dtype) for k, v in got.items()} == {
        "h": "float16", "b": "uint16", "i": "int64", "m": "bool", "u": "uint8"}
    assert_same(got, to_numpy(paddle.load(str(path), return_numpy=True)))


_STATIC_SAVE = textwrap.dedent("""
    import sys
    from clsviz._paddle import paddle, static_mode
    with static_mode():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [None, 4], "float32")
            y = paddle.nn.BatchNorm1D(3)(paddle.static.nn.fc(x, 3))
        paddle.static.Executor(paddle.CPUPlace()).run(startup)
        paddle.static.save(main, sys.argv[1], protocol=int(sys.argv[2]))
""")


@pytest.mark.parametrize("pir,protocol", [("1", 4), ("0", 2)], ids=["pir", "legacy-ir"])
def test_static_save(tmp_path, pir, protocol):
    prefix = tmp_path / "static" / "model"
    env = dict(os.environ, FLAGS_enable_pir_api=pir)
    subprocess.run([sys.executable, "-c", _STATIC_SAVE, str(prefix), str(protocol)],
                   check=True, env=env, timeout=300, capture_output=True)
    params = prefix.with_suffix(".pdparams")
    got = load_pdparams(params)
    assert len(got) == 6 and all(isinstance(v, np.ndarray) for v in got.values())
    assert any(v.shape == (4, 3) for v in got.values())
    assert_same(got, to_numpy(paddle.load(str(params), return_numpy=True)))
    assert load_pdparams(prefix.with_suffix(".pdopt")) == {}
    program = prefix.with_suffix(".json" if pir == "1" else ".pdmodel")
    with pytest.raises(FormatError, match="Paddle program"):
        load_pdparams(program)


def _paddle_like_split(arrays: dict, limit: int) -> dict:
    """What ``_legacy_save`` writes at protocol 2/3 (``_build_saved_state_dict`` then
    ``_unpack_saved_dict``), with a limit of ``limit`` elements instead of 1 GiB."""
    out = dict(arrays)
    out[safe_pickle.NAME_TABLE_KEY] = {k: f"tensor_{k}" for k in arrays}
    info = {}
    for key, value in arrays.items():
        if value.size > limit:
            flat = out.pop(key).flatten()
            info[key] = {"OriginShape": value.shape, "slices": []}
            for i in range(0, flat.size, limit):
                name = f"{key}@@.{i // limit}"
                info[key]["slices"].append(name)
                out[name] = flat[i:i + limit]
    out[safe_pickle.BIG_PARAMS_KEY] = info
    return out


@pytest.mark.parametrize("protocol", [2, 3])
def test_big_params_split_at_protocol_2_and_3_are_joined(tmp_path, protocol):
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((7, 5)).astype("float32"), "b": np.arange(3.0),
              "c": rng.integers(0, 9, (4, 4, 3))}
    path = tmp_path / "split.pdparams"
    with open(path, "wb") as f:
        pickle.dump(_paddle_like_split(arrays, limit=10), f, protocol=protocol)
    got = load_pdparams(path)
    assert sorted(got) == ["a", "b", "c"]
    for k in arrays:
        assert_same(got[k], arrays[k])
    # paddle.load reads the same layout to the same arrays (so the layout is Paddle's)
    want = to_numpy(paddle.load(str(path), return_numpy=True))
    assert {k: want[k].tolist() for k in want} == {k: got[k].tolist() for k in got}


def _free_gib() -> float:
    import psutil

    return psutil.virtual_memory().available / 2 ** 30


@pytest.mark.slow
def test_real_split_of_a_1gib_tensor(tmp_path):
    if _free_gib() < 8:
        pytest.skip("needs ~8 GiB of free memory for a 1 GiB tensor at protocol 2")
    path = tmp_path / "big.pdparams"
    paddle.save({"big": paddle.zeros([2 ** 14, 2 ** 14]), "small": paddle.ones([2])},
                str(path), protocol=2)
    with open(path, "rb") as f:
        f.seek(-400, os.SEEK_END)
        assert safe_pickle.BIG_PARAMS_KEY.encode() in f.read()
    got = load_pdparams(path)
    assert sorted(got) == ["big", "small"] and got["big"].shape == (2 ** 14, 2 ** 14)


def test_safetensors_pdparams(tmp_path):
    pytest.importorskip("safetensors")
    sd = {"w": paddle.arange(6, dtype="float32").reshape([2, 3]),
          "b": paddle.full([2], 1.5, dtype="bfloat16")}
    path = tmp_path / "st.pdparams"
    paddle.save(sd, str(path), safetensors=True)
    assert sniff(path) == "a safetensors file"
    got = load_pdparams(path)
    assert_same(dict(sorted(got.items())), dict(sorted(to_numpy(sd).items())))


# ---------------------------------------------------------------- hostile pickles
def _payloads(marker):
    """(name the error must show, pickle bytes that would create ``marker``)."""

    class Reduce:
        def __init__(self, fn, args):
            self.fn, self.args = fn, args

        def __reduce__(self):
            return self.fn, self.args

    cmd = f"touch '{marker}'"
    code = f"open({str(marker)!r}, 'w').close()"
    state = collections.OrderedDict([("conv.weight", np.ones((2, 2), "float32")),
                                     ("evil", Reduce(os.system, (cmd,)))])
    return {
        "os.system": ("posix.system", pickle.dumps({"w": Reduce(os.system, (cmd,))}, protocol=4)),
        "os.system-p2": ("posix.system", pickle.dumps(Reduce(os.system, (cmd,)), protocol=2)),
        # Paddle-shaped DenseTensor record, but with another expression
        "eval": ("builtins.eval", pickle.dumps(
            {"w": Reduce(eval, (code, {"data": np.zeros(1)}))}, protocol=4)),
        "eval-p2": ("builtins.eval", pickle.dumps(Reduce(eval, (code,)), protocol=2)),
        "exec": ("builtins.exec", pickle.dumps({"w": Reduce(exec, (code,))}, protocol=3)),
        "popen": ("subprocess.Popen", pickle.dumps(
            {"w": Reduce(subprocess.Popen, (["touch", str(marker)],))}, protocol=4)),
        "nested-ordereddict": ("posix.system", pickle.dumps({"model": state}, protocol=4)),
        # protocol 0 by hand: getattr(__import__('os'), 'system')(cmd)
        "getattr-p0": ("builtins.getattr", (
            "cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR"
            f"(V{cmd}\ntR.").encode()),
    }


@pytest.mark.parametrize("variant", list(_payloads("m")))
def test_hostile_pickle_is_refused_and_never_runs(tmp_path, variant):
    marker = tmp_path / "pwned"
    offending, data = _payloads(marker)[variant]
    path = tmp_path / "evil.pdparams"
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpoint) as info:
        load_pdparams(path)
    message = str(info.value)
    assert offending in message and str(path) in message
    assert "trust=True" in message and "--trust" in message
    assert isinstance(info.value, FormatError)
    assert not marker.exists()


def test_hostile_payload_is_live(tmp_path):
    """Control: the same bytes do run under plain pickle, so the test above means something."""
    marker = tmp_path / "pwned"
    pickle.loads(_payloads(marker)["os.system"][1])
    assert marker.exists()


def test_reconstruct_with_a_foreign_class_is_refused(tmp_path):
    data = (b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncsubprocess\nPopen\n"
            b"K\x00\x85C\x01b\x87R.")
    path = tmp_path / "evil.pdparams"
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpoint, match="subprocess.Popen"):
        load_pdparams(path)
    # even when the class is on the list, _reconstruct only builds plain ndarrays
    path.write_bytes(data.replace(b"subprocess\nPopen", b"collections\nOrderedDict"))
    with pytest.raises(UnsafeCheckpoint, match="_reconstruct"):
        load_pdparams(path)


def test_shared_references_stay_shared(tmp_path):
    # "billion laughs": 2**64 leaves by reference in a few hundred bytes
    level = [np.ones(2, "float32")]
    for _ in range(64):
        level = [level, level]
    cyclic = []
    cyclic.append(cyclic)
    path = tmp_path / "laughs.pdparams"
    path.write_bytes(pickle.dumps({"x": level, "c": cyclic}, protocol=4))
    got = load_pdparams(path)
    assert got["x"][0] is got["x"][1]
    assert got["c"][0] is got["c"]


def test_trust_runs_paddle_load(small_file):
    assert_same(load_pdparams(small_file, trust=True), load_pdparams(small_file))


# ---------------------------------------------------------------- not a Paddle pickle
def _torch_zip(path, inner="archive"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{inner}/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr(f"{inner}/version", "3\n")
        zf.writestr(f"{inner}/data/0", b"\0" * 16)


@pytest.mark.parametrize("inner", ["archive", "resnet50"])
def test_pytorch_zip(tmp_path, inner):
    path = tmp_path / "resnet50.pdparams"
    _torch_zip(path, inner)
    for trust in (False, True):
        with pytest.raises(FormatError, match="this is a PyTorch checkpoint, not Paddle"):
            load_pdparams(path, trust=trust)


def test_pytorch_legacy_pickle(tmp_path):
    path = tmp_path / "old_torch.pdparams"
    magic = 0x1950A86A20F9469CFC6C
    path.write_bytes(pickle.dumps(magic, protocol=2) + pickle.dumps(1001, protocol=2))
    with pytest.raises(FormatError, match="PyTorch checkpoint"):
        load_pdparams(path)
    # a torch pickle without the magic still names PyTorch, not "unsafe"
    path.write_bytes(b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n.")
    with pytest.raises(FormatError, match="PyTorch checkpoint") as info:
        load_pdparams(path)
    assert not isinstance(info.value, UnsafeCheckpoint)


def test_onnx(tmp_path):
    path = tmp_path / "model.pdparams"
    # ModelProto: ir_version=8, producer_name="paddle2onnx", producer_version, graph ...
    path.write_bytes(b"\x08\x08\x12\x0bpaddle2onnx\x1a\x051.2.3:\x04\x12\x02g1B\x02\x10\x0d")
    with pytest.raises(FormatError, match="this is an ONNX model"):
        load_pdparams(path)
    assert "paddle2onnx" in sniff(path)


def test_empty(tmp_path):
    path = tmp_path / "empty.pdparams"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        load_pdparams(path)


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.999])
def test_truncated(small_file, tmp_path, fraction):
    data = small_file.read_bytes()
    path = tmp_path / "cut.pdparams"
    path.write_bytes(data[:max(1, int(len(data) * fraction))])
    with pytest.raises(FormatError, match="truncated") as info:
        load_pdparams(path)
    assert not isinstance(info.value, UnsafeCheckpoint)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=10 ** 9), protocol=st.sampled_from([2, 4]))
def test_every_prefix_is_reported_truncated(small_net, tmp_path, cut, protocol):
    path = tmp_path / f"net{protocol}.pdparams"
    if not path.exists():
        paddle.save(small_net.state_dict(), str(path), protocol=protocol)
    data = path.read_bytes()
    cut_path = tmp_path / "cut.pdparams"
    cut_path.write_bytes(data[:cut % len(data) or 1])
    with pytest.raises(FormatError, match="truncated"):
        load_pdparams(cut_path)


def test_inference_params_file(small_net, tmp_path):
    prefix = tmp_path / "infer" / "inference"
    paddle.jit.save(small_net, str(prefix),
                    input_spec=[paddle.static.InputSpec([None, 3, 8, 8], "float32")])
    params = prefix.with_suffix(".pdiparams")
    assert "inference params file (8 tensors" in sniff(params)
    for trust in (False, True):
        with pytest.raises(FormatError, match="inference params file.*pass the model file too"):
            load_pdparams(params, trust=trust)
    model = next(p for p in prefix.parent.iterdir() if p.suffix in (".json", ".pdmodel"))
    with pytest.raises(FormatError, match="Paddle program"):
        load_pdparams(model)


def test_binary_format_tensor(tmp_path):
    path = tmp_path / "t.pdparams"
    paddle.save(paddle.ones([2, 3]), str(path), use_binary_format=True)
    assert sniff(path).startswith("a Paddle binary tensor file (1 tensor, float32 [2, 3]")
    with pytest.raises(FormatError, match="use_binary_format=True"):
        load_pdparams(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "t.pdtensor"
    paddle.save(paddle.ones([2, 2]), str(path))
    with pytest.raises(FormatError, match="expected a state dict.*single tensor"):
        load_pdparams(path)


@pytest.mark.parametrize("content,words", [
    (b"\xde\xad\xbe\xef" * 8, "not a valid pickle"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "NumPy"),
    (struct.pack("<Q", 10 ** 9) + b"{garbage", "not a valid pickle"),
])
def test_other_content(tmp_path, content, words):
    path = tmp_path / "x.pdparams"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=words):
        load_pdparams(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        load_pdparams(tmp_path / "nope.pdparams")
    with pytest.raises(FormatError, match="directory"):
        load_pdparams(tmp_path)


def test_sniff_names_files(small_file, tmp_path):
    assert sniff(small_file) == "a pickle (protocol 4)"
    zip_path = tmp_path / "t.pdparams"
    _torch_zip(zip_path)
    assert sniff(zip_path).startswith("a PyTorch checkpoint")
    np.savez(tmp_path / "a.npz", x=np.ones(2))
    assert sniff(tmp_path / "a.npz") == "a NumPy .npz archive (1 arrays)"
    assert sniff(tmp_path / "nope") == "no such file"


# ---------------------------------------------------------------- property: plain pickles of arrays
_DTYPES = ["bool", "int8", "uint8", "int16", "int32", "int64", "float16", "float32",
           "float64", "complex64"]


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(_DTYPES))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    raw = draw(st.binary(min_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                         max_size=int(np.prod(shape)) * np.dtype(dtype).itemsize))
    arr = np.frombuffer(raw, dtype).reshape(shape).copy()
    return np.asfortranarray(arr) if draw(st.booleans()) else arr


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.dictionaries(st.text(min_size=1, max_size=12), arrays(), max_size=5),
       protocol=st.integers(0, 5), ordered=st.booleans())
def test_any_dict_of_arrays_round_trips(tmp_path, state, protocol, ordered):
    path = tmp_path / "h.pdparams"
    obj = collections.OrderedDict(state) if ordered else state
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = load_pdparams(path)
    assert list(got) == list(state)
    for k, v in state.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        assert got[k].tobytes() == v.tobytes()  # bitwise (NaN payloads included)
