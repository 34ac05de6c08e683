"""Process-wide state clsviz touches is scoped and restored: fds 1/2, the device, the thread count."""
from __future__ import annotations

import os
import threading

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
