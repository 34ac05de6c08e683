"""``clsviz.evaluate(..., ray=...)`` on a real local Ray runtime: the same answers as a local run,
an actor killed mid-run, unreadable images, and clear errors when Ray is missing or far away.

One runtime serves the whole module (starting one takes seconds); it is shut down at the end.
"""
from __future__ import annotations

import json
import os
import signal
import time
import traceback

import numpy as np
import psutil
import pytest

import clsviz
from clsviz.demo import dataset
from clsviz.demo.run import export_demo
from clsviz.engines.base import default_threads
from clsviz.evaluate import Evaluation

from conftest import run_cli
from test_evaluate import _with_bad_images

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'clsviz[ray]' (make test installs it)")

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def ray_runtime():
    from clsviz.cluster import connect

    session = connect(True)  # the same call evaluate(ray=True) makes
    yield session
    ray.shutdown()


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    return export_demo(tmp_path_factory.mktemp("ray-bundle") / "bundle").out_dir


def _labelled(root, layout, n_per_class, seed):
    folder = root / f"val-{layout}"
    dataset.write_folder(folder, n_per_class, seed, layout=layout)
    bad = _with_bad_images(folder, layout)
    return folder, bad


def _assert_same(local: Evaluation, on_ray: Evaluation):
    assert on_ray.paths == local.paths and on_ray.y_true == local.y_true and on_ray.labels == local.labels
    assert list(on_ray.modes) == list(local.modes)
    for m, a in local.modes.items():
        b = on_ray.modes[m]
        assert b.y_pred == a.y_pred, m
        assert np.array_equal(b.topk_ids, a.topk_ids), m
        np.testing.assert_allclose(b.topk_probs, a.topk_probs, rtol=0, atol=1e-6, equal_nan=True)
        assert np.array_equal(b.confusion, a.confusion) and b.accuracy == a.accuracy
        assert b.per_class == a.per_class
        assert [e.path for e in b.misclassified] == [e.path for e in a.misclassified]
        assert [(u.path, u.error) for u in b.unreadable] == [(u.path, u.error) for u in a.unreadable]
    assert [(x.mode, x.top1_agree, x.differing) for x in on_ray.agreement] == \
        [(x.mode, x.top1_agree, x.differing) for x in local.agreement]


def test_the_local_runtime_is_sized_to_this_machine(ray_runtime):
    assert ray_runtime.started and ray_runtime.nodes == 1
    assert ray_runtime.cpus == default_threads()
    assert ray.is_initialized()
    # asking again reuses it; asking for another cluster while connected is refused, clearly
    from clsviz.cluster import connect

    assert connect(True).address == ray_runtime.address
    with pytest.raises(clsviz.OptionError, match="already connected"):
        connect("127.0.0.1:1")


def test_ray_gives_the_same_answers_as_a_local_run(ray_runtime, demo_bundle, tmp_path):
    folder, bad = _labelled(tmp_path, "labels_txt", 5, 31)
    local = clsviz.evaluate(folder, demo_bundle, modes="all", batch_size=4, progress=False)
    on_ray = clsviz.evaluate(folder, demo_bundle, modes="all", batch_size=4, progress=False, ray=True, workers=2)
    assert isinstance(on_ray, Evaluation)
    _assert_same(local, on_ray)
    # the unreadable images are recorded on the workers, not fatal
    for r in on_ray.modes.values():
        assert [u.path for u in r.unreadable] == [str(p) for p in bad] and r.scored == 40
    run = on_ray.run
    assert (run.backend, run.workers, run.threads_per_worker, run.batch_size) == ("ray", 2, 1, 4)
    assert run.address == ray_runtime.address and run.images == 42 and run.modes == 3
    assert 1 <= len(run.processes) and all(":" in p for p in run.processes)
    for r in on_ray.modes.values():  # worker-side spans: scoring starts after the actors are up
        assert 0 < r.scoring_seconds < r.seconds and 0 < r.busy_seconds <= 2 * r.scoring_seconds * 1.01
    assert os.getpid() not in {int(p.rsplit(":", 1)[1]) for p in run.processes}  # not the driver
    assert "ray at" in on_ray.to_text() and json.loads(json.dumps(on_ray.to_dict()))["run"]["backend"] == "ray"


def _map_workers(since: float) -> list[psutil.Process]:
    """This run's Ray Data actor processes (started after ``since``), busiest first."""
    found = []
    for p in psutil.process_iter(["cmdline", "create_time"]):
        try:
            title = " ".join(p.info["cmdline"] or [])
            if "MapWorker(MapBatches(_ScoreActor))" in title and p.info["create_time"] >= since:
                found.append((".submit" not in title, p))
        except psutil.Error:
            pass
    return [p for _, p in sorted(found, key=lambda t: t[0])]


def test_an_actor_killed_mid_run_is_retried_and_the_answer_is_identical(ray_runtime, demo_bundle, tmp_path):
    folder, _ = _labelled(tmp_path, "folders", 8, 47)
    local = clsviz.evaluate(folder, demo_bundle, batch_size=2, progress=False)
    killed = []
    since = time.time() - 1

    def kill_one_worker(done, total, mode):
        if not killed and done >= 2:  # answers are coming in; most batches are still to do
            victims = _map_workers(since)
            assert victims, "no Ray Data actor process found"
            victims[0].send_signal(signal.SIGKILL)
            victims[0].wait(timeout=30)
            killed.append((victims[0], done, total))

    on_ray = clsviz.evaluate(folder, demo_bundle, batch_size=2, ray=True, workers=2, progress=kill_one_worker)
    assert killed and killed[0][1] < killed[0][2] / 2, killed
    assert not killed[0][0].is_running()  # (pid, start time): pids recycle fast here
    _assert_same(local, on_ray)


def test_a_worker_error_is_the_same_clsviz_error_as_here(ray_runtime, demo_bundle, tmp_path):
    folder, _ = _labelled(tmp_path, "folders", 1, 5)
    kw = dict(modes="dygraph", precision="bf16", progress=False)  # the fp32-only mode refuses bf16
    with pytest.raises(clsviz.BackendUnavailable) as here:
        clsviz.evaluate(folder, demo_bundle, **kw)
    with pytest.raises(clsviz.BackendUnavailable) as there:
        clsviz.evaluate(folder, demo_bundle, ray=True, **kw)
    assert str(there.value) == str(here.value)
    # the runtime is still good for the next run
    assert clsviz.evaluate(folder, demo_bundle, ray=True, workers=1, progress=False).run.backend == "ray"


def test_bad_ray_options_are_option_errors(ray_runtime, demo_bundle, tmp_path):
    folder, _ = _labelled(tmp_path, "folders", 1, 6)
    for address in ("", "not an address", "ray://nohost", "http://x:1", 3):
        with pytest.raises(clsviz.OptionError, match="ray= must be"):
            clsviz.evaluate(folder, demo_bundle, ray=address, progress=False)
    for workers in (0, -1, 1.5, True):
        with pytest.raises(clsviz.OptionError, match="workers"):
            clsviz.evaluate(folder, demo_bundle, ray=True, workers=workers, progress=False)
    with pytest.raises(clsviz.OptionError, match="cpu_threads"):
        clsviz.evaluate(folder, demo_bundle, ray=True, cpu_threads=64, progress=False)


def test_cli_joins_a_running_cluster(ray_runtime, demo_bundle, tmp_path):
    folder, _ = _labelled(tmp_path, "labels_txt", 2, 8)
    out = tmp_path / "out"
    p = run_cli("evaluate", folder, "--bundle", demo_bundle, "--out", out, "--json", "--workers", "1",
                "--ray", ray_runtime.address)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["run"]["backend"] == "ray" and d["run"]["workers"] == 1 and d["run"]["address"] == ray_runtime.address
    assert d["images"] == 18 and len(d["unreadable"]) == 2 and (out / "evaluation.html").is_file()
    local = clsviz.evaluate(folder, demo_bundle, progress=False)
    assert d["modes"]["predictor"]["accuracy"] == round(local.accuracy["predictor"], 6)
    assert "Traceback" not in p.stderr and "core_worker" not in p.stderr  # quiet by default


def test_cli_says_plainly_when_no_cluster_answers(demo_bundle, tmp_path):
    folder, _ = _labelled(tmp_path, "folders", 1, 9)
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        p = run_cli("evaluate", folder, "--bundle", demo_bundle, "--ray", address)
        assert p.returncode == 1, p.stderr
        assert "BackendUnavailable" in p.stderr and "no Ray cluster answers at" in p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_cli("evaluate", folder, "--bundle", demo_bundle, "--ray", "not-an-address")
    assert p.returncode == 1 and "OptionError" in p.stderr and "ray= must be" in p.stderr


def test_a_failure_the_head_reports_is_named_by_its_last_line():
    """Ray Client puts the head's whole traceback after "Initialization failure from server:";
    the one-line error keeps that line and the traceback's last, which says what failed.  Only a
    per-client server that died is tried again, not a refusal."""
    from clsviz.cluster import _first_words, _server_failed

    said = "Starting Ray client server failed. See x.err"
    tb = "".join(traceback.format_exception(RuntimeError(said)))
    e = ConnectionAbortedError(f"Initialization failure from server:\n{tb}")
    assert _server_failed(e) and not _server_failed(ConnectionError(str(e)))
    refused = "Call to `ray.init()` on the server failed with: runtime_env cannot be built"
    assert not _server_failed(ConnectionAbortedError(f"Initialization failure from server:\n{refused}"))
    assert _first_words(e) == f"Initialization failure from server: RuntimeError: {said}"
    assert _first_words(TimeoutError("GCS did not answer\nin 60 s")) == "GCS did not answer"
    assert _first_words(ValueError()) == "ValueError"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_runs_through_a_ray_client_address(demo_bundle, tmp_path):
    """``--ray ray://host:port``: a real head started with ``ray start``, joined through Ray Client
    (where Ray Data cannot run its executor, so it runs on the cluster and the answers are pulled)."""
    import subprocess
    import sys

    gcs, client = _free_port(), _free_port()
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    # The head starts one server process per client.  The sitecustomize below makes the next
    # `deaths` of them die as they start, as one now and then did on a loaded CI machine (there it
    # died before exec, so the head said "Starting Ray client server failed"; here it dies in
    # Python, and the head says "Proxy failed to Connect to backend" after 30 s).  clsviz retries.
    site, deaths = tmp_path / "site", tmp_path / "deaths"
    site.mkdir()
    deaths.write_text("1")
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if '--mode=specific-server' in sys.argv:\n"
        f"    with open({str(deaths)!r}, 'r+') as f:\n"
        "        n = int(f.read())\n"
        "        if n > 0:\n"
        "            f.seek(0); f.truncate(); f.write(str(n - 1)); f.close(); os._exit(1)\n"
    )
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=path)
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
                             f"--ray-client-server-port={client}", "--include-dashboard=false",
                             "--disable-usage-stats"],
                            env=env, stdout=open(tmp_path / "head.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        folder, bad = _labelled(tmp_path, "labels_txt", 2, 12)

        deadline = time.time() + 300  # a loaded 2-core machine can take minutes
        while time.time() < deadline:  # the client server answers once the head is up
            p = run_cli("evaluate", folder, "--bundle", demo_bundle, "--json", "--out", tmp_path / "out",
                        "--workers", "1", "--ray", f"ray://127.0.0.1:{client}",
                        # a failed connection is dropped after Ray's grace period (30 s by default)
                        env={"RAY_AUTH_MODE": "disabled", "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "5"})
            if p.returncode == 0 or "no Ray cluster answers" not in p.stderr:
                break
            time.sleep(3)
        assert p.returncode == 0, p.stderr + (tmp_path / "head.log").read_text()[-3000:]
        assert deaths.read_text() == "0" and "could not start a server for this client" in p.stderr
        assert "trying again, 2 of 3" in p.stderr and "Traceback" not in p.stderr, p.stderr
        d = json.loads(p.stdout)
        assert d["run"]["backend"] == "ray" and d["run"]["address"].endswith(f":{gcs}")
        assert [u["path"] for u in d["unreadable"]] == [str(b) for b in bad]
        local = clsviz.evaluate(folder, demo_bundle, progress=False)
        assert d["modes"]["predictor"]["accuracy"] == round(local.accuracy["predictor"], 6)
        assert [e["path"] for e in d["modes"]["predictor"]["misclassified"]] == \
            [e.path for e in local.modes["predictor"].misclassified]
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def test_the_deployment_runtimes_run_on_ray_too(ray_runtime, demo_bundle, tmp_path):
    """modes openvino + onnxruntime on two actors: each actor loads a fresh copy of the bundle
    (its ONNX made once, by whichever actor came first) and the answers equal a local run's."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(demo_bundle, bundle, ignore=shutil.ignore_patterns("inference.onnx"))
    folder, bad = _labelled(tmp_path, "labels_txt", 3, 7)
    modes = ["openvino", "onnxruntime"]
    on_ray = clsviz.evaluate(folder, bundle, modes=modes, batch_size=4, progress=False, ray=True, workers=2)
    local = clsviz.evaluate(folder, bundle, modes=modes, batch_size=4, progress=False)
    _assert_same(local, on_ray)
    assert (bundle / "inference.onnx").is_file() and on_ray.run.backend == "ray"
    for r in on_ray.modes.values():
        assert [u.path for u in r.unreadable] == [str(p) for p in bad] and r.scored == 24
