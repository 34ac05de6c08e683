"""The deployment runtimes (modes ``openvino`` and ``onnxruntime``) on real engines and files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

import clsviz  # noqa: E402
from clsviz.demo.run import export_demo  # noqa: E402
from clsviz.bundle import clsviz_section  # noqa: E402
from clsviz.errors import BackendUnavailable, EngineError  # noqa: E402
from clsviz.publish import MANIFEST, owned_files  # noqa: E402

import fixtures_legacy as FX  # noqa: E402
from conftest import REPO, unprivileged  # noqa: E402

RUNTIMES = ("openvino", "onnxruntime")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test converts into its own cache folder (never the user's ~/.cache)."""
    monkeypatch.setenv("CLSVIZ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    return export_demo(tmp_path_factory.mktemp("rt-demo") / "bundle").out_dir


@pytest.fixture(scope="module")
def r50_bundle(tmp_path_factory):
    """A ResNet50_vd with random weights, at 64×64 (the network is the real one)."""
    from clsviz._paddle import paddle

    paddle.seed(3)
    state = clsviz.get_model("ResNet50_vd", class_num=1000).state_dict()
    out = tmp_path_factory.mktemp("rt-r50") / "bundle"
    clsviz.export("ResNet50_vd", state, out, image_shape=(3, 64, 64))
    return out


def _agrees(out, ref, rtol=1e-3):
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    scale = np.abs(ref).max()
    assert np.abs(out - ref).max() <= rtol * scale, (np.abs(out - ref).max(), scale)
    assert (out.argmax(1) == ref.argmax(1)).all()


def _inputs(clf, n=3, seed=0):
    return np.random.default_rng(seed).random((n, *clf.config.image_shape), dtype=np.float32)


@pytest.mark.parametrize("mode", RUNTIMES)
def test_demo_model_agrees_with_the_predictor(demo_bundle, mode):
    images = sorted((REPO / "sample_images").glob("*.jpg"))[:4]
    ref = clsviz.load(demo_bundle)
    clf = clsviz.load(demo_bundle, mode=mode)
    batch = ref.preprocess(images)
    _agrees(clf.forward(batch), ref.forward(batch))
    p, q = clf.predict(images, top_k=3), ref.predict(images, top_k=3)
    assert [x.topk[0].label for x in p] == [x.topk[0].label for x in q]
    assert p[0].mode == mode


def test_resnet50_vd_agrees_with_the_predictor(r50_bundle):
    ref = clsviz.load(r50_bundle)
    x = _inputs(ref, 2)
    want = ref.forward(x)
    for mode in RUNTIMES:
        _agrees(clsviz.load(r50_bundle, mode=mode, cpu_threads=2).forward(x), want)


def test_fp32_means_fp32_and_bf16_only_when_asked(demo_bundle):
    from clsviz.engines.openvino import bf16_available

    clf = clsviz.load(demo_bundle, mode="openvino")
    assert clf.precision == "f32"   # OpenVINO's default on this CPU would be bf16
    assert clf.compiled.get_property("INFERENCE_NUM_THREADS") == clf.options.threads
    if bf16_available()[0]:
        assert clsviz.load(demo_bundle, mode="openvino", precision="bf16").precision == "bf16"
    with pytest.raises(BackendUnavailable, match="fp32 only"):
        clsviz.load(demo_bundle, mode="onnxruntime", precision="bf16")


def test_the_onnx_is_kept_in_the_bundle_and_reused(tmp_path):
    b = export_demo(tmp_path / "b").out_dir   # fresh: no inference.onnx yet
    first = clsviz.load(b, mode="onnxruntime")
    assert not first.onnx.reused and first.onnx.location == "bundle"
    assert first.onnx.path == b / "inference.onnx"
    rec = clsviz_section(yaml.safe_load((b / "inference.yml").read_text()))["onnx"]
    assert rec["sha256"] == clsviz.bundle.sha256_file(b / "inference.onnx")
    assert set(rec["sources"]) == {"inference.json", "inference.pdiparams"}
    # clsviz's own files now: listed in the manifest, so a forced re-export may replace them
    listed = json.loads((b / MANIFEST).read_text())["files"]
    assert "inference.onnx" in listed and owned_files(b)[1] == set()
    stamp = (b / "inference.onnx").stat().st_mtime_ns
    again = clsviz.load(b, mode="openvino")   # the other runtime reads the same file
    assert again.onnx.reused and (b / "inference.onnx").stat().st_mtime_ns == stamp
    # the bundle still loads with the recorded checksums, in every mode
    clsviz.load(b, mode="predictor").close()


def test_the_onnx_is_made_again_when_the_weights_change(demo_bundle, tmp_path):
    from clsviz._paddle import paddle
    from clsviz.demo import DEMO_CHECKPOINT

    b = tmp_path / "b"
    shutil.copytree(demo_bundle, b)
    before = clsviz.load(b, mode="onnxruntime")
    x = _inputs(before)
    old = before.forward(x)
    # other weights for the same network, put in place by hand (the sidecar's checksums dropped,
    # as clsviz's hint for a deliberate replacement says)
    state = paddle.load(str(DEMO_CHECKPOINT))
    state = {k: (v * 0.5 if "fc" in k and v.ndim == 2 else v) for k, v in state.items()}
    paddle.save(state, str(tmp_path / "other.pdparams"))
    other = export_demo(tmp_path / "other", checkpoint=tmp_path / "other.pdparams").out_dir
    for name in ("inference.json", "inference.pdiparams"):  # a program and its weights go together
        shutil.copyfile(other / name, b / name)
    doc = yaml.safe_load((b / "inference.yml").read_text())
    del clsviz_section(doc)["sha256"]
    (b / "inference.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    after = clsviz.load(b, mode="onnxruntime")
    assert not after.onnx.reused
    new = after.forward(x)
    assert np.abs(new - old).max() > 1e-3
    _agrees(new, clsviz.load(b).forward(x))


def test_a_read_only_bundle_converts_into_the_cache(tmp_path):
    b = export_demo(tmp_path / "ro").out_dir
    cache = tmp_path / "cache-ro"
    cache.mkdir()
    os.chmod(b, 0o555)
    script = textwrap.dedent(f"""
        import clsviz, json
        out = []
        for _ in range(2):
            c = clsviz.load({str(b)!r}, mode="openvino")
            out.append([c.onnx.location, c.onnx.reused, str(c.onnx.path)])
        print(json.dumps(out))
    """)
    try:
        p = subprocess.run([*unprivileged(), sys.executable, "-c", script], capture_output=True, text=True,
                           env=dict(os.environ, CLSVIZ_CACHE_DIR=str(cache)), timeout=300)
    finally:
        os.chmod(b, 0o755)
    assert p.returncode == 0, p.stderr[-2000:]
    (loc1, reused1, path1), (loc2, reused2, path2) = json.loads(p.stdout.strip().splitlines()[-1])
    assert (loc1, reused1, loc2, reused2) == ("cache", False, "cache", True)
    assert path1 == path2 and path1.startswith(str(cache))
    assert not (b / "inference.onnx").exists()


def test_a_fluid_1x_program_reaches_both_runtimes(tmp_path):
    fx = FX.write_fixture(tmp_path / "fx", "fluid_inference_loose", "tiny_cnn")
    x = fx.input.astype(np.float32)
    for mode in RUNTIMES:
        clf = clsviz.load(fx.path, mode=mode)
        assert clf.onnx.location == "cache"
        _agrees(clf.forward(x), fx.expected, rtol=1e-4)
    assert clsviz.load(fx.path, mode="openvino").onnx.reused


def test_every_program_layout_the_table_promises_reaches_both_runtimes():
    """What ``capability`` says of the runtimes is true for every kind of program clsviz reads:
    fluid ``__model__`` (loose and combined), ``model``/``params``, Paddle 2 ``.pdmodel`` and
    Paddle 3 ``.json`` all run in both runtimes, each agreeing with the network's own output."""
    from clsviz.engines import capability
    from clsviz.formats import detect

    ran = []
    for kind, fx in FX.shared("tiny_cnn").items():
        files = detect.resolve(fx.path)
        if not files.has_program:
            continue
        for mode in RUNTIMES:
            assert capability(files, mode).available, (kind, mode)
            clf = clsviz.load(fx.path, mode=mode)
            _agrees(clf.forward(fx.input.astype(np.float32)), fx.expected, rtol=1e-4)
            clf.close()
            ran.append((kind, mode))
    kinds = {k for k, _ in ran}
    assert {"fluid_inference_loose", "fluid_inference_combined", "fluid_model_params",
            "paddle2_inference", "paddle3_inference"} <= kinds, kinds


def test_an_op_paddle2onnx_lacks_is_named(cumprod_model, demo_bundle):
    from clsviz.engines.convert import _unsupported_ops

    assert clsviz.load(cumprod_model, class_num=4).forward(np.ones((1, 3, 8, 8), np.float32)).shape == (1, 4)
    with pytest.raises(EngineError, match="unsupported op.*cumprod") as e:
        clsviz.load(cumprod_model, mode="onnxruntime", class_num=4)
    assert "matmul" not in str(e.value)  # listed by paddle2onnx under its fluid-era name, matmul_v2
    assert _unsupported_ops(cumprod_model) == ["cumprod"]
    assert _unsupported_ops(demo_bundle / "inference.json") == []  # add, flatten, matmul … all listed


def test_a_refusal_is_remembered_for_the_same_files_and_paddle2onnx(cumprod_model, tmp_path, monkeypatch):
    """paddle2onnx refuses the model once; later loads of the same files raise the same error
    without converting again, until the record is from another paddle2onnx or is deleted."""
    from clsviz.engines import convert

    with pytest.raises(EngineError, match="unsupported op.*cumprod") as first:
        clsviz.load(cumprod_model, mode="onnxruntime", class_num=4)
    assert "before" not in first.value.hint
    records = list((convert.cache_dir() / "onnx").glob("*/refused.json"))
    assert len(records) == 1

    model = tmp_path / "same-files" / "inference.json"  # keyed by content, not by place
    shutil.copytree(cumprod_model.parent, model.parent)
    real = convert._convert
    with monkeypatch.context() as m:
        def converted_again(*a, **k):
            raise AssertionError("paddle2onnx ran again")
        m.setattr(convert, "_convert", converted_again)
        with pytest.raises(EngineError) as second:
            clsviz.load(model, mode="onnxruntime", class_num=4)
    assert second.value.message == first.value.message and second.value.path == str(model)
    assert "refused these same files before" in second.value.hint and str(records[0]) in second.value.hint
    assert convert._convert is real

    rec = json.loads(records[0].read_text())
    records[0].write_text(json.dumps({**rec, "paddle2onnx": "0.0"}))  # another paddle2onnx: try again
    with pytest.raises(EngineError, match="cumprod") as again:
        clsviz.load(model, mode="onnxruntime", class_num=4)
    assert "before" not in again.value.hint and json.loads(records[0].read_text())["paddle2onnx"] != "0.0"
    records[0].unlink()
    with pytest.raises(EngineError, match="cumprod") as after_delete:
        clsviz.load(model, mode="onnxruntime", class_num=4)
    assert "before" not in after_delete.value.hint and records[0].is_file()


def test_what_paddle2onnx_says_of_an_op_is_passed_on(tmp_path):
    """A model paddle2onnx refuses for a reason other than a missing op (adaptive pooling on a
    dynamic input size): the error quotes paddle2onnx on that op, and blames no other."""
    import fixtures_wild as W

    m = W.write_pir(tmp_path, ["dynamic"])["dynamic"]
    with pytest.raises(EngineError, match=r"pool2d\] Adaptive only support static input shape") as e:
        clsviz.load(m.path, mode="onnxruntime")
    assert "unsupported op" not in str(e.value) and "fixed input size" in e.value.hint


def test_the_engine_table_answers_for_every_mode():
    from clsviz.engines import ENGINES, engine_available

    assert {"predictor", "dygraph", "executor", "openvino", "onnxruntime"} <= set(ENGINES)
    assert engine_available("openvino") == (True, "")
    assert ENGINES["openvino"].converts and not ENGINES["predictor"].converts
    ok, why = engine_available("nope")
    assert not ok and "unknown" in why


@pytest.fixture(scope="module")
def cumprod_model(tmp_path_factory):
    """A tiny PIR program with an op paddle2onnx 2.1 cannot convert (cumprod)."""
    from clsviz._paddle import dygraph_mode, paddle

    class Cumprod(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(paddle.cumprod(x, dim=2).mean(axis=[2, 3]))

    d = tmp_path_factory.mktemp("cumprod")
    with dygraph_mode():
        paddle.jit.save(Cumprod(), str(d / "inference"),
                        input_spec=[paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")])
    return d / "inference.json"


def test_compare_carries_on_and_shows_a_failed_mode(cumprod_model):
    from clsviz.compare import load_modes

    clfs = load_modes(cumprod_model, ["predictor", "executor", "onnxruntime"], class_num=4)
    assert isinstance(clfs["onnxruntime"], EngineError)
    x = np.random.default_rng(0).random((8, 8, 3))
    cmp = clsviz.compare([x], clfs, repeats=1, warmup=0, top_k=2)
    assert list(cmp.modes) == ["predictor", "executor"]
    assert "cumprod" in cmp.failed["onnxruntime"]
    assert "onnxruntime FAILED" in cmp.to_text() and "FAILED" in cmp._repr_html_()
    assert cmp.to_dict()["failed"]["onnxruntime"].startswith("EngineError")
    from clsviz.report import render_report

    assert "FAILED" in render_report(cmp)


def test_cli_runs_the_runtimes(demo_bundle, tmp_path):
    from conftest import run_cli

    env = {"CLSVIZ_CACHE_DIR": str(tmp_path / "cache")}
    img = sorted((REPO / "sample_images").glob("*.jpg"))[0]
    p = run_cli("compare", "--bundle", demo_bundle, "--image", img, "--modes", "predictor,openvino,onnxruntime",
                "--repeats", "2", "--warmup", "1", "--json", env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    assert set(d["modes"]) == {"predictor", "openvino", "onnxruntime"} and d["agreement"]["agree"]
    p = run_cli("predict", "-m", demo_bundle, "-i", img, "--mode", "openvino", "--json", env=env, check=True)
    assert json.loads(p.stdout)["predictions"][0]["mode"] == "openvino"


def test_evaluate_takes_the_runtime_modes(demo_bundle, tmp_path):
    from clsviz.demo import dataset

    folder = tmp_path / "val"
    dataset.write_folder(folder, 1, 5, layout="folders")
    ev = clsviz.evaluate(folder, demo_bundle, modes="predictor,openvino,onnxruntime", batch_size=4, progress=False)
    assert set(ev.accuracy) == {"predictor", "openvino", "onnxruntime"}
    assert len(set(ev.accuracy.values())) == 1   # same predictions, same accuracy


def test_recommend_picks_the_fastest_that_agrees(demo_bundle):
    images = sorted((REPO / "sample_images").glob("*.jpg"))[:2]
    rec = clsviz.recommend(demo_bundle, images, repeats=3, warmup=1, cpu_threads=2,
                           candidates=[("predictor", "fp32"), ("openvino", "fp32"), ("onnxruntime", "fp32"),
                                       ("onnxruntime", "fp32", {"spinning": True}), ("onnxruntime", "bf16")])
    ran = [c for c in rec.candidates if c.status != "unavailable"]
    assert {c.name for c in ran} == {"predictor fp32", "openvino fp32", "onnxruntime fp32",
                                     "onnxruntime fp32 spinning"}
    spin = next(c for c in ran if c.options)
    assert spin.to_dict()["options"] == {"spinning": True} and spin.status == "ok"
    assert rec.best is not None and rec.best.status == "ok"
    assert rec.best.p50_ms == min(c.p50_ms for c in ran if c.status == "ok")
    assert all(c.rel_diff <= 1e-3 and c.top1_agree == 1.0 for c in ran)
    bf16 = next(c for c in rec.candidates if c.name == "onnxruntime bf16")
    assert bf16.status == "unavailable" and "fp32 only" in bf16.detail
    from clsviz.engines import load_config

    assert rec.input_shape == tuple(load_config(demo_bundle).image_shape) and rec.inputs == "the given images"
    assert f"recommended: {rec.best.name}" in rec.to_text()
    assert "<img src='data:image/png" in rec._repr_html_()
    assert json.loads(json.dumps(rec.to_dict()))["best"]["mode"] == rec.mode
    assert clsviz.load(demo_bundle, **rec.options()).mode == rec.mode


SPIN = "session.intra_op.allow_spinning"


def test_onnxruntime_spins_only_when_asked(demo_bundle):
    """``spinning`` reaches the ONNX Runtime session; off by default, and the outputs do not change."""
    from clsviz.errors import OptionError

    off = clsviz.load(demo_bundle, mode="onnxruntime", cpu_threads=2)
    on = clsviz.load(demo_bundle, mode="onnxruntime", cpu_threads=2, spinning=True)
    no = clsviz.load(demo_bundle, mode="onnxruntime", cpu_threads=2, spinning=False)
    assert off.session.get_session_options().get_session_config_entry(SPIN) == "0"
    assert no.session.get_session_options().get_session_config_entry(SPIN) == "0"
    assert on.session.get_session_options().get_session_config_entry(SPIN) == "1"
    assert on.session.get_session_options().intra_op_num_threads == 2
    assert "no spinning" in off.describe() and "no spinning" not in on.describe()
    x = _inputs(off)
    _agrees(on.forward(x), off.forward(x), rtol=1e-6)
    best = clsviz.recommend(demo_bundle, repeats=2, warmup=0, cpu_threads=2,
                            candidates=[("predictor", "fp32"), ("onnxruntime", "fp32", {"spinning": True})])
    assert clsviz.load(demo_bundle, **best.options()).mode == best.mode
    with pytest.raises(OptionError, match="spinning must be a boolean"):
        clsviz.load(demo_bundle, mode="onnxruntime", spinning="sometimes")
    for c in (off, on, no):
        c.close()


def test_recommend_rejects_a_candidate_that_disagrees(demo_bundle):
    # a tolerance no engine but the reference itself can meet: the reference is the pick
    rec = clsviz.recommend(demo_bundle, repeats=2, warmup=0, rtol=1e-12,
                           candidates=[("predictor", "fp32"), ("onnxruntime", "fp32")])
    ort = next(c for c in rec.candidates if c.mode == "onnxruntime")
    assert ort.status == "disagrees" and "relative max|Δ|" in ort.detail
    assert rec.best.name == "predictor fp32" and rec.inputs.startswith("4 random inputs")


def test_cli_recommend(demo_bundle, tmp_path):
    from conftest import run_cli

    p = run_cli("recommend", "-m", demo_bundle, "--repeats", "2", "--json",
                env={"CLSVIZ_CACHE_DIR": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    assert d["best"]["status"] == "ok"
    assert {c["mode"] for c in d["candidates"]} >= {"predictor", "openvino", "onnxruntime"}


def test_explorer_runs_the_runtimes_and_recommends(demo_bundle):
    pytest.importorskip("ipywidgets")
    from clsviz.widgets import Explorer

    ex = Explorer(demo_bundle, REPO / "sample_images", selected=1)
    ex.repeats.value, ex.warmup.value = 2, 0
    for m in ("dygraph", "executor"):
        ex.modes[m].value = False
    ex.modes["openvino"].value = ex.modes["onnxruntime"].value = True
    ex.run_button.click()
    assert list(ex.value.modes) == ["predictor", "openvino", "onnxruntime"] and ex.value.agree
    ex.recommend_button.click()
    page = "\n".join(o["data"].get("text/html", "") for o in ex.output.outputs)
    assert "recommended:" in page and "onnxruntime fp32" in page, page[:2000]
    ex.close()


def test_a_missing_extra_is_a_one_line_hint(demo_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)   # as if `clsviz[runtimes]` were not installed
    from clsviz.engines import engine_available

    ok, why = engine_available("openvino")
    assert not ok and "pip install 'clsviz[runtimes]'" in why
    with pytest.raises(BackendUnavailable) as e:
        clsviz.load(demo_bundle, mode="openvino")
    assert e.value.hint == "pip install 'clsviz[runtimes]'" and "\n" not in str(e.value)


_PIN_PROBE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import clsviz

    def pinned():  # thread id -> its CPUs, for threads allowed fewer CPUs than the process
        out = {}
        for t in os.listdir("/proc/self/task"):
            cpus = os.sched_getaffinity(int(t))
            if cpus != os.sched_getaffinity(0):
                out[t] = sorted(cpus)
        return out

    res = {}
    for threads in (len(os.sched_getaffinity(0)), 1):
        before = pinned()
        clf = clsviz.load(sys.argv[1], mode="onnxruntime", cpu_threads=threads)
        clf.forward(np.zeros((1, *clf.config.image_shape), np.float32))
        res[threads] = {"new": sorted(v for k, v in pinned().items() if k not in before),
                        "describe": clf.describe()}
    print(json.dumps({"cpus": sorted(os.sched_getaffinity(0)), "runs": res}))
""")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 usable CPUs")
def test_onnxruntime_pins_pool_threads_like_its_own_default(demo_bundle, tmp_path):
    """With every usable CPU, the pool threads are pinned one per CPU (as ONNX Runtime does when it
    picks the count itself); the calling thread and a smaller count stay unpinned. Read from the OS."""
    from clsviz.engines.onnxruntime import thread_affinities

    r = subprocess.run([sys.executable, "-c", _PIN_PROBE, str(demo_bundle)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "CLSVIZ_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    cpus, runs = got["cpus"], got["runs"]
    assert runs[str(len(cpus))]["new"] == [[c] for c in cpus[1:]]  # one pool thread per CPU but the caller's
    assert ", pinned" in runs[str(len(cpus))]["describe"]
    assert runs["1"]["new"] == [] and "pinned" not in runs["1"]["describe"]
    assert thread_affinities(len(cpus) - 1) is None and thread_affinities(1) is None
    assert thread_affinities(len(cpus)) == ";".join(str(c + 1) for c in cpus[1:])


_LOAD_ONE = ("import json, sys, clsviz; c = clsviz.load(sys.argv[1], mode='onnxruntime'); "
             "print(json.dumps([c.onnx.reused, c.onnx.location, str(c.onnx.path)]))")


def test_processes_loading_one_model_at_once_convert_it_once(tmp_path):
    """Three processes start on a fresh fluid 1.x program and on a fresh bundle at the same time
    (Ray actors do): all three load, one converts, the others wait and reuse its ONNX."""
    fx = FX.write_fixture(tmp_path / "fx", "fluid_inference_loose", "tiny_cnn")
    bundle = export_demo(tmp_path / "demo").out_dir
    env = {**os.environ, "CLSVIZ_CACHE_DIR": str(tmp_path / "cache")}
    for model, where in ((fx.path, "cache"), (bundle, "bundle")):
        procs = [subprocess.Popen([sys.executable, "-c", _LOAD_ONE, str(model)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [e[-1500:] for _, e in outs]
        got = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
        assert sorted(r[0] for r in got) == [False, True, True], got
        assert {r[1] for r in got} == {where} and len({r[2] for r in got}) == 1


def test_models_from_the_wild_run_in_both_runtimes(tmp_path):
    """Grey, flat, NHWC, uint8, two-output and fluid models: each runtime is fed the model's own
    layout and dtype, scores the chosen output, and gives the predictor's top-k on a real photo."""
    import fixtures_wild as W

    jpeg = sorted((REPO / "sample_images").glob("*.jpg"))[0]
    for name, m in W.write_wild(tmp_path).items():
        if name == "dynamic":
            continue  # paddle2onnx refuses adaptive pooling on a dynamic size (tested above)
        with clsviz.load(m.path) as ref:
            want = ref.predict(jpeg, top_k=3)[0]
        for mode in RUNTIMES:
            with clsviz.load(m.path, mode=mode) as clf:
                got = clf.predict(jpeg, top_k=3)[0]
            assert [t.class_id for t in got.topk] == [t.class_id for t in want.topk], (name, mode)
            np.testing.assert_allclose([t.score for t in got.topk], [t.score for t in want.topk],
                                       atol=1e-5, err_msg=f"{name} {mode}")
