"""Process-wide state clsviz touches is scoped and restored: fds 1/2, the device, the thread count."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import clsviz
from clsviz._paddle import native_threads, paddle, quiet, threads_scope


def _fd_identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def test_quiet_redirects_only_inside_and_restores_after_nesting_errors_and_threads():
    before = (_fd_identity(1), _fd_identity(2))
    null = os.stat(os.devnull)
    with quiet():
        assert _fd_identity(1) == (null.st_dev, null.st_ino)
        with quiet():
            assert _fd_identity(2) == (null.st_dev, null.st_ino)
        assert _fd_identity(1) == (null.st_dev, null.st_ino)  # the outer block still holds
    assert (_fd_identity(1), _fd_identity(2)) == before
    with pytest.raises(RuntimeError), quiet():
        raise RuntimeError("boom")
    assert (_fd_identity(1), _fd_identity(2)) == before

    # two threads whose blocks overlap, leaving in the order they did not enter
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():
        with quiet():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with quiet():
            b_in.set()
            a_out.wait(5)
    ts = [threading.Thread(target=f) for f in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert (_fd_identity(1), _fd_identity(2)) == before


def test_threads_scope_sets_and_puts_back():
    if native_threads() is None:
        pytest.skip("Paddle's OpenMP runtime cannot be asked here")
    start = native_threads()
    other = 2 if start != 2 else 1
    with threads_scope(other):
        assert native_threads() == other
    assert native_threads() == start


@pytest.mark.parametrize("mode", ["dygraph", "executor", "predictor"])
def test_an_engine_leaves_threads_and_device_as_it_found_them(resnet18_bundle, rng_image, mode):
    if native_threads() is None:
        pytest.skip("Paddle's OpenMP runtime cannot be asked here")
    from clsviz._paddle import _set_native_threads

    _set_native_threads(1)  # the caller's own choice; the engine asks for 2
    place = paddle.framework._current_expected_place_()
    dynamic = paddle.in_dynamic_mode()
    clf = clsviz.load(resnet18_bundle, mode=mode, cpu_threads=2)
    x = clf.preprocess([rng_image])
    out = clf.forward(x)
    assert native_threads() == 1
    assert paddle.framework._current_expected_place_() is place  # not even a new, equal Place
    assert paddle.in_dynamic_mode() == dynamic
    assert np.isfinite(out).all()
    clf.close()


def test_a_dygraph_forward_runs_with_the_engines_threads(resnet18_bundle, rng_image):
    if native_threads() is None:
        pytest.skip("Paddle's OpenMP runtime cannot be asked here")
    clf = clsviz.load(resnet18_bundle, mode="dygraph", cpu_threads=2)
    seen = []
    real = clf.net.forward
    clf.net.forward = lambda x: seen.append(native_threads()) or real(x)
    clf.forward(clf.preprocess([rng_image]))
    assert seen == [2]


def test_the_legacy_executor_runs_in_a_worker_and_results_say_so(tmp_path, rng_image):
    from fixtures_legacy import write_fixture

    fx = write_fixture(tmp_path, "paddle2_inference", "tiny_cnn")
    with clsviz.load(fx.path, mode="executor") as legacy, clsviz.load(fx.path, mode="predictor") as pred:
        assert legacy.isolation == "worker process" and pred.isolation == "in-process"
        assert legacy.raw_call() is None and pred.raw_call() is not None  # no in-process engine to call
        cmp = clsviz.compare(rng_image, [pred, legacy], repeats=2, warmup=1)
    assert cmp.modes["executor"].isolation == "worker process"
    assert cmp.to_dict()["modes"]["executor"]["isolation"] == "worker process"
    assert cmp.modes["predictor"].isolation == "in-process"


@pytest.mark.parametrize("mode", ["predictor", "dygraph", "executor"])
def test_the_raw_call_hook_computes_what_forward_does(resnet18_bundle, rng_image, mode):
    clf = clsviz.load(resnet18_bundle, mode=mode)
    x = np.ascontiguousarray(clf.preprocess([rng_image, rng_image]))
    rc = clf.raw_call()
    with rc.scope():
        raw = np.asarray(rc.fn(x))
    np.testing.assert_allclose(raw, clf.forward(x), atol=1e-5)
    assert paddle.in_dynamic_mode()  # the scope is left again


def test_default_threads_honour_a_cgroup_cpu_quota(tmp_path):
    """A container's CPU quota caps the default thread count (v2 ``cpu.max``, v1 ``cfs_quota_us``),
    rounded up; no quota, an unlimited one or unreadable files leave the affinity count."""
    from clsviz.engines.base import cpu_quota, default_threads

    def v2(text):
        d = tmp_path / f"v2-{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        (d / "cpu.max").write_text(text)
        return d

    def v1(quota, period="100000"):
        d = tmp_path / f"v1-{len(list(tmp_path.iterdir()))}"
        (d / "cpu").mkdir(parents=True)
        (d / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        (d / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
        return d

    assert cpu_quota(v2("200000 100000\n")) == 2
    assert cpu_quota(v2("150000 100000\n")) == 2  # 1.5 CPUs: two threads, not one
    assert cpu_quota(v2("50000 100000\n")) == 1
    assert cpu_quota(v2("max 100000\n")) is None
    assert cpu_quota(v2("garbage\n")) is None
    assert cpu_quota(v1(300000)) == 3 and cpu_quota(v1(-1)) is None
    assert cpu_quota(tmp_path / "nothing-here") is None
    assert 1 <= default_threads() <= len(os.sched_getaffinity(0))


def _cpu_cgroup(tmp_name: str):
    """A real cgroup limited to one CPU (v1 ``cpu`` or v2 ``cpu.max``), or None if this machine
    does not let the tests make one (not root, no cgroup filesystem, controller not delegated)."""
    name = f"{tmp_name}-{secrets.token_hex(3)}"
    for base, files in ((Path("/sys/fs/cgroup/cpu"), {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}),
                        (Path("/sys/fs/cgroup"), {"cpu.max": "100000 100000"})):
        g = base / name
        try:
            g.mkdir()
        except OSError:
            continue
        try:
            for f, v in files.items():
                (g / f).write_text(v)
            return g
        except OSError:
            g.rmdir()
    return None


def test_in_a_real_one_cpu_cgroup_every_engine_defaults_to_one_thread():
    """A process started inside a cgroup with a 1-CPU quota: clsviz's default is 1 thread, and
    the predictor and ONNX Runtime are built with it (ONNX Runtime then unpinned)."""
    g = _cpu_cgroup("clsviz-test")
    if g is None:
        pytest.skip("cannot create a cgroup with a CPU quota here")
    code = ("import json, clsviz\n"
            "from clsviz.demo.run import export_demo\n"
            "from clsviz.engines.base import default_threads\n"
            "import tempfile, pathlib\n"
            "b = export_demo(pathlib.Path(tempfile.mkdtemp()) / 'b').out_dir\n"
            "out = {'default': default_threads(), 'predictor': clsviz.load(b).options.threads}\n"
            "try:\n"
            "    out['onnxruntime'] = clsviz.load(b, mode='onnxruntime').describe()\n"
            "except clsviz.BackendUnavailable:\n"
            "    pass\n"
            "print(json.dumps(out))\n")
    try:
        r = subprocess.run(["sh", "-c", f'echo $$ > "{g}/cgroup.procs" && exec "$0" -c "$1"', sys.executable, code],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "CLSVIZ_CACHE_DIR": tempfile.mkdtemp(prefix="clsviz-cg-")})
    finally:
        for _ in range(50):  # the child has exited; the kernel may take a moment to empty the group
            try:
                g.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["default"] == 1 and got["predictor"] == 1, got
    if "onnxruntime" in got:
        assert "1 threads" in got["onnxruntime"] and "pinned" not in got["onnxruntime"], got
