"""Atomic export: an export killed with SIGKILL at any moment never leaves a partial bundle.

A helper process imports clsviz once and forks one child per export, so each kill hits a
real process mid-export without paying ``import paddle`` every time.  After each kill the
target must be absent, the complete old bundle, or the complete new one; loading it must
give exactly the old or the new model's outputs.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clsviz
from clsviz._paddle import paddle
from clsviz.errors import ExportError

ARCH = "ResNet18_vd_x0_25"
SHAPE = (3, 32, 32)
BUNDLE_FILES = {"inference.json", "inference.pdiparams", "inference.yml", "model.pdparams"}

SERVER = r'''
import importlib, json, os, signal, sys, time
import clsviz
ex = importlib.import_module("clsviz.export")  # the package's `export` attribute is the function

def child(job):
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    kind = job["kind"]
    if kind in ("kill_between_renames", "kill_after_exchange"):
        real_rename, real_rmtree = os.rename, ex.shutil.rmtree
        if kind == "kill_between_renames":
            ex._exchange = lambda a, b: False          # as on a file system without renameat2
            def rename(src, dst):
                real_rename(src, dst)
                if os.path.basename(str(dst)).startswith("." + os.path.basename(job["out"]) + ".old-"):
                    os.kill(os.getpid(), signal.SIGKILL)
            ex.os.rename = rename
        else:
            def rmtree(path, *a, **k):
                if ".tmp-" in os.path.basename(str(path)):
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_rmtree(path, *a, **k)
            ex.shutil.rmtree = rmtree
    clsviz.export(job["arch"], job["ckpt"], job["out"], image_shape=tuple(job["shape"]), force=True)

for line in sys.stdin:
    job = json.loads(line)
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            child(job)
            os._exit(0)
        except BaseException as e:
            sys.stderr.write(f"export failed: {type(e).__name__}: {e}\n")
            os._exit(1)
    killed = False
    if job.get("delay") is not None:
        end = t0 + job["delay"]
        while time.perf_counter() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.002)
        else:
            os.kill(pid, signal.SIGKILL)
            killed = True
            done = 0
        if done == 0:
            _, status = os.waitpid(pid, 0)
    else:
        _, status = os.waitpid(pid, 0)
    reply = {"seconds": time.perf_counter() - t0, "killed": killed,
             "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
             "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
'''


class Exporter:
    """Drives the fork server: one JSON job per line, one JSON reply per line."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, GLOG_minloglevel="3"))

    def run(self, ckpt, out, *, delay=None, kind="plain") -> dict:
        job = {"arch": ARCH, "ckpt": str(ckpt), "out": str(out), "shape": SHAPE, "delay": delay, "kind": kind}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the export server died"
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server():
    s = Exporter()
    yield s
    s.close()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    out = {}
    for name, seed in (("old", 1), ("new", 2)):
        paddle.seed(seed)
        p = d / f"{name}.pdparams"
        paddle.save(clsviz.get_model(ARCH, class_num=4).state_dict(), str(p))
        out[name] = p
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, ckpts):
    """Reference bundles (exported in-process) and their outputs on a fixed batch."""
    d = tmp_path_factory.mktemp("ref")
    batch = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype(np.float32)
    refs, dirs = {}, {}
    for name, p in ckpts.items():
        dirs[name] = d / name
        clsviz.export(ARCH, p, dirs[name], image_shape=SHAPE)
        with clsviz.load(dirs[name]) as clf:
            refs[name] = clf.forward(batch)
    return batch, refs, dirs


@pytest.fixture(scope="module")
def duration(server, ckpts, tmp_path_factory):
    """How long one export takes in a forked child (the kill delays are spread over it)."""
    out = tmp_path_factory.mktemp("calib") / "bundle"
    r = server.run(ckpts["new"], out)
    assert r["code"] == 0, r
    return r["seconds"]


def state_of(target: Path, outputs) -> str:
    """'absent', or which complete bundle is there; fails on anything partial or mixed."""
    if not target.exists():
        return "absent"
    assert target.is_dir()
    names = {f.name for f in target.iterdir()}
    assert names == BUNDLE_FILES, f"partial bundle: {sorted(names)}"
    batch, refs, _ = outputs
    with clsviz.load(target) as clf:
        got = clf.forward(batch)
    for name, ref in refs.items():
        if np.allclose(got, ref, atol=1e-5):
            return name
    raise AssertionError("the bundle is complete but matches neither the old nor the new model")


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.glob(f".{target.name}.*"))


def test_kill_fresh_export_at_five_points(tmp_path, server, ckpts, outputs, duration):
    target = tmp_path / "fresh"
    seen = []
    for i in range(5):
        delay = duration * 1.2 * (i + 0.5) / 5  # past the end too: the last ones may finish
        r = server.run(ckpts["new"], target, delay=delay)
        state = state_of(target, outputs)
        assert state in ("absent", "new"), (delay, r, state)
        assert state == "new" or r["killed"], r
        seen.append((round(delay, 2), r["killed"], state))
        if state == "new":
            shutil.rmtree(target)
    print("fresh:", seen)
    assert any(s == "absent" for *_, s in seen), seen  # some kills did land mid-export


def test_kill_export_over_old_bundle_at_ten_points(tmp_path, server, ckpts, outputs, duration):
    """force=True over an existing bundle: the target is the old or the new bundle, never absent."""
    target = tmp_path / "bundle"
    pristine = outputs[2]["old"]
    seen = []
    for i in range(10):
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(pristine, target)
        delay = duration * (i + 0.5) / 10
        r = server.run(ckpts["new"], target, delay=delay)
        state = state_of(target, outputs)
        assert state in ("old", "new"), (delay, r, state)
        seen.append((round(delay, 2), r["killed"], state))
    print("over old:", seen)
    assert [s for *_, s in seen].count("old") >= 5, seen
    # a normal export afterwards succeeds and removes what the killed ones left behind
    r = server.run(ckpts["new"], target)
    assert r["code"] == 0 and state_of(target, outputs) == "new"
    assert leftovers(target) == []


def test_kill_between_the_fallback_renames_is_repaired(tmp_path, server, ckpts, outputs):
    """Without renameat2 the swap takes two renames; a kill between them is undone next time."""
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    r = server.run(ckpts["new"], target, kind="kill_between_renames")
    assert r["signal"] == 9, r
    assert not target.exists()
    old = [n for n in leftovers(target) if ".old-" in n]
    assert len(old) == 1
    # the next export (here one that fails verification early) first puts the old bundle back
    with pytest.raises(ExportError, match="not empty"):
        clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE)
    assert state_of(target, outputs) == "old"
    assert not any(".old-" in n for n in leftovers(target))


def test_kill_after_the_exchange_leaves_the_new_bundle(tmp_path, server, ckpts, outputs):
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    r = server.run(ckpts["new"], target, kind="kill_after_exchange")
    assert r["signal"] == 9, r
    assert state_of(target, outputs) == "new"
    assert any(".tmp-" in n for n in leftovers(target))  # the old bundle, awaiting removal
    r = server.run(ckpts["old"], target)
    assert r["code"] == 0 and state_of(target, outputs) == "old" and leftovers(target) == []


def test_failed_verification_keeps_the_old_bundle(tmp_path, ckpts, outputs, monkeypatch):
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    ex = importlib.import_module("clsviz.export")

    def broken_fill(*a, **k):
        raise ExportError("simulated failure while writing", path=target)

    real = ex.atomic_write_dir
    monkeypatch.setattr(ex, "atomic_write_dir", lambda out, force, fill, verify=None: real(out, force, broken_fill))
    with pytest.raises(ExportError, match="simulated"):
        clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE, force=True)
    assert state_of(target, outputs) == "old" and leftovers(target) == []


def test_refuses_non_empty_folder_without_force(tmp_path, ckpts):
    target = tmp_path / "out"
    target.mkdir()
    (target / "inference.yml").write_text("x: 1\n")
    with pytest.raises(ExportError, match="not empty") as ei:
        clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE)
    assert str(target) in str(ei.value)
    assert (target / "inference.yml").read_text() == "x: 1\n"


def test_force_replaces_bundles_only(tmp_path, ckpts):
    """force=True must not wipe a folder of someone's own files (a typo'd output path)."""
    home = tmp_path / "documents"
    (home / "photos").mkdir(parents=True)
    (home / "thesis.docx").write_bytes(b"precious")
    with pytest.raises(ExportError, match="not a model bundle") as ei:
        clsviz.export(ARCH, ckpts["old"], home, image_shape=SHAPE, force=True)
    assert "photos/" in str(ei.value) and "thesis.docx" in str(ei.value)
    assert (home / "thesis.docx").read_bytes() == b"precious"
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE, force=True)


def test_bundle_permissions_follow_the_umask(tmp_path, ckpts):
    """tempfile.mkdtemp makes 0700 folders; a renamed one would be private to its creator."""
    target = tmp_path / "shared"
    old = os.umask(0o022)
    try:
        clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
