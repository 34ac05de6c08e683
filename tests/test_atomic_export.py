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
from conftest import REPO, record, run_cli


def rec(case, result, message=""):
    record(case, result, message, group="delete")


def expect_export_error(match, fn, case):
    with pytest.raises(ExportError, match=match) as ei:
        fn()
    rec(case, type(ei.value).__name__, str(ei.value))
    return ei.value

ARCH = "ResNet18_vd_x0_25"
SHAPE = (3, 32, 32)
BUNDLE_FILES = {"inference.json", "inference.pdiparams", "inference.yml", "model.pdparams",
                ".clsviz-manifest.json"}

SERVER = r'''
import importlib, json, os, signal, sys, time
import clsviz
ex = importlib.import_module("clsviz.publish")

def child(job):
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    kind = job["kind"]
    if kind == "hold":                                  # wait for the test before publishing
        real_publish = ex.Target.publish
        def publish(self, fill, verify=None):
            def held_fill(tmp):
                out = fill(tmp)
                while not os.path.exists(job["release"]):
                    time.sleep(0.01)
                return out
            return real_publish(self, held_fill, verify)
        ex.Target.publish = publish
    if kind == "kill_mid_merge":                        # after the 2nd file of a file-by-file publish
        real_move, moved = ex._move_into, []
        def move(src, dst):
            real_move(src, dst)
            moved.append(dst)
            if len(moved) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        ex._move_into = move
    if kind in ("kill_between_renames", "kill_after_exchange"):
        real_rename = os.rename
        if kind == "kill_between_renames":
            ex._exchange = lambda a, b: False          # as on a file system without renameat2
            def rename(src, dst):
                real_rename(src, dst)
                if os.path.basename(str(dst)).startswith("." + os.path.basename(job["out"]) + ".old-"):
                    os.kill(os.getpid(), signal.SIGKILL)
            ex.os.rename = rename
        else:
            def retire(d, real):                        # right after the exchange
                os.kill(os.getpid(), signal.SIGKILL)
            ex._retire = retire
    clsviz.export(job["arch"], job["ckpt"], job["out"], image_shape=tuple(job["shape"]),
                  force=job.get("force", True))

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
            if job.get("errfile"):
                with open(job["errfile"], "w") as f:
                    f.write(f"{type(e).__name__}: {e}")
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

    def run(self, ckpt, out, *, delay=None, kind="plain", **extra) -> dict:
        self.start(ckpt, out, delay=delay, kind=kind, **extra)
        return self.finish()

    def start(self, ckpt, out, *, delay=None, kind="plain", **extra) -> None:
        job = {"arch": ARCH, "ckpt": str(ckpt), "out": str(out), "shape": SHAPE, "delay": delay, "kind": kind,
               **extra}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def finish(self) -> dict:
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
    rec("SIGKILL at 5 moments of an export to a new folder", "ok",
        "the target was absent or the complete new bundle every time")


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
    rec("SIGKILL at 10 moments of an export over a bundle (force)", "ok",
        "always the complete old or new bundle; the next export tidies up")


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
    rec("SIGKILL between the two renames of the fallback swap", "ok", "the next export puts the old bundle back")


def test_kill_after_the_exchange_leaves_the_new_bundle(tmp_path, server, ckpts, outputs):
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    r = server.run(ckpts["new"], target, kind="kill_after_exchange")
    assert r["signal"] == 9, r
    assert state_of(target, outputs) == "new"
    assert any(".tmp-" in n for n in leftovers(target))  # the old bundle, awaiting removal
    r = server.run(ckpts["old"], target)
    assert r["code"] == 0 and state_of(target, outputs) == "old" and leftovers(target) == []


def test_kill_during_a_file_by_file_publish_is_finished(tmp_path, server, ckpts, outputs):
    """A folder holding the user's files too is published file by file; a kill half-way is
    finished by the next export to it (before anything else), and the user's file stays."""
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    (target / "notes.txt").write_text("mine\n")
    r = server.run(ckpts["new"], target, kind="kill_mid_merge")
    assert r["signal"] == 9, r
    assert any(".pub-" in n for n in leftovers(target))
    with pytest.raises(ExportError, match="not empty"):
        clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE)  # repairs, then refuses
    assert (target / "notes.txt").read_text() == "mine\n"
    (target / "notes.txt").unlink()
    assert state_of(target, outputs) == "new" and leftovers(target) == []
    rec("SIGKILL half-way through a file-by-file publish (a folder with the user's files)", "ok",
        "the next export finishes it first; the user's file stays")


def test_failed_export_keeps_the_old_bundle(tmp_path, ckpts, outputs, monkeypatch):
    """paddle.jit.save failing half-way (as on a full disk): the old bundle stays, nothing is left."""
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)

    def broken_save(layer, path, **kw):
        Path(path + ".json").write_text("{half")  # something was written before it failed
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paddle.jit, "save", broken_save)
    err = expect_export_error("No space left", lambda: clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE,
                                                                       force=True),
                              "paddle.jit.save fails half-way (ENOSPC) over a bundle")
    assert "disk is full" in str(err)
    assert state_of(target, outputs) == "old" and leftovers(target) == []


def test_refuses_non_empty_folder_without_force(tmp_path, ckpts):
    target = tmp_path / "out"
    target.mkdir()
    (target / "inference.yml").write_text("x: 1\n")
    with pytest.raises(ExportError, match="not empty") as ei:
        clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE)
    assert str(target) in str(ei.value)
    assert (target / "inference.yml").read_text() == "x: 1\n"


# --------------------------------------------------------------------------- export safety
def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (hidden ones too) with its bytes, or '<dir>' / '-> target'."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = (f"-> {os.readlink(p)}" if p.is_symlink() else "<dir>" if p.is_dir() else p.read_bytes())
    return out


def user_files(folder: Path, ckpt: Path) -> dict:
    """What a user keeps beside a bundle: notes, logs, hidden files, folders, other checkpoints."""
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "logs" / "train.log").write_text("epoch 1 loss 2.3\n")
    (folder / "NOTES.md").write_text("# my notes\n")
    (folder / ".env").write_text("SECRET=1\n")
    (folder / "readme.txt").write_text("keep me\n")
    shutil.copy(ckpt, folder / "epoch_7.pdparams")
    (folder / "latest").symlink_to("epoch_7.pdparams")
    return {k: v for k, v in snapshot(folder).items() if k.split("/")[0] in
            ("logs", "NOTES.md", ".env", "readme.txt", "epoch_7.pdparams", "latest")}


def test_force_keeps_every_file_clsviz_did_not_write(tmp_path, ckpts, outputs):
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    mine = user_files(target, ckpts["old"])
    r = clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE, force=True, include_checkpoint=False)
    assert {k: v for k, v in snapshot(target).items() if k in mine} == mine
    assert not (target / "model.pdparams").exists()  # the old bundle's own file, not in the new one
    listed = json.loads((target / ".clsviz-manifest.json").read_text())["files"]
    assert set(listed) == {"inference.json", "inference.pdiparams", "inference.yml"} == {f.name for f in r.files}
    batch, refs, _ = outputs
    with clsviz.load(target) as clf:
        np.testing.assert_allclose(clf.forward(batch), refs["new"], atol=1e-5)
    assert leftovers(target) == []
    rec("--force over a bundle beside notes, logs/, .env, a link, another checkpoint", "ok",
        "all kept byte for byte; the old bundle's own model.pdparams removed")


def test_force_into_a_folder_of_checkpoints_adds_the_bundle(tmp_path, ckpts, outputs):
    """The report's case: `export -p ckpts/best.pdparams -o ckpts/ --force` wiped ckpts/."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    shutil.copy(ckpts["new"], folder / "best.pdparams")
    mine = user_files(folder, ckpts["old"])
    mine["best.pdparams"] = (folder / "best.pdparams").read_bytes()
    clsviz.export(ARCH, folder / "best.pdparams", folder, image_shape=SHAPE, force=True)
    assert {k: v for k, v in snapshot(folder).items() if k in mine} == mine
    assert state_of_files(folder) >= BUNDLE_FILES and leftovers(folder) == []
    rec("export -p ckpts/best.pdparams -o ckpts/ --force (the source's own folder)", "ok",
        "the bundle added; best.pdparams and every other file kept")


def state_of_files(folder: Path) -> set:
    return {f.name for f in folder.iterdir()}


def test_source_inside_what_would_be_replaced_is_refused(tmp_path, ckpts, outputs):
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    before = snapshot(target)
    expect_export_error("lies inside what this export would replace",
                        lambda: clsviz.export(ARCH, target / "model.pdparams", target, image_shape=SHAPE, force=True),
                        "export -p bundle/model.pdparams -o bundle/ --force")
    expect_export_error("is the output folder",
                        lambda: clsviz.export(ARCH, target, target, image_shape=SHAPE, force=True),
                        "export -p FOLDER -o FOLDER --force (a persistables folder as its own output)")
    with pytest.raises(clsviz.OptionError, match="dst is the source folder") as ei:
        clsviz.migrate(target / "model.pdparams", target, arch=ARCH, force=True)
    rec("migrate bundle/model.pdparams bundle/ --force", "OptionError", str(ei.value))
    assert snapshot(target) == before and leftovers(target) == []


def test_a_file_changed_since_export_is_not_replaced(tmp_path, ckpts, outputs):
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    with open(target / "inference.yml", "a") as f:
        f.write("# my edit\n")
    before = snapshot(target)
    expect_export_error(r"inference.yml \(changed since clsviz wrote it\)",
                        lambda: clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE, force=True),
                        "--force over a bundle whose inference.yml the user edited")
    assert snapshot(target) == before and leftovers(target) == []


def test_a_name_taken_by_a_user_file_is_not_replaced(tmp_path, ckpts):
    target = tmp_path / "work"
    target.mkdir()
    (target / "model.pdparams").write_bytes(b"the user's own checkpoint")
    (target / "inference.json").mkdir()
    expect_export_error(r"refusing to overwrite inference.json/, model.pdparams",
                        lambda: clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE, force=True),
                        "--force into a folder whose model.pdparams / inference.json/ are the user's")
    assert (target / "model.pdparams").read_bytes() == b"the user's own checkpoint"
    assert leftovers(target) == []


def test_bundle_written_before_manifests_is_still_replaceable(tmp_path, ckpts, outputs):
    """Older clsviz bundles have no manifest: their inference.yml (Global.clsviz) vouches for them."""
    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    (target / ".clsviz-manifest.json").unlink()
    (target / "NOTES.md").write_text("keep\n")
    clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE, force=True)
    assert (target / "NOTES.md").read_text() == "keep\n"
    (target / "NOTES.md").unlink()
    assert state_of(target, outputs) == "new"
    rec("--force over a bundle written before manifests (no .clsviz-manifest.json)", "ok",
        "recognised by its inference.yml; NOTES.md kept")


def test_symlinked_target_stays_a_symlink(tmp_path, ckpts, outputs):
    real = tmp_path / "store" / "bundle-v1"
    shutil.copytree(outputs[2]["old"], real)
    link = tmp_path / "current"
    link.symlink_to(real)
    clsviz.export(ARCH, ckpts["new"], link, image_shape=SHAPE, force=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert state_of(real, outputs) == "new" and leftovers(real) == [] and leftovers(link) == []
    dangling = tmp_path / "next"
    dangling.symlink_to(tmp_path / "store" / "bundle-v2")  # points at nothing yet
    clsviz.export(ARCH, ckpts["old"], dangling, image_shape=SHAPE)
    assert dangling.is_symlink() and state_of(tmp_path / "store" / "bundle-v2", outputs) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "next", "store"]
    rec("-o a symlink to a bundle (--force); -o a dangling symlink", "ok",
        "the links stay links; the folders they point to get the bundle; no temporary files")


def test_failures_leave_no_temporary_files(tmp_path, ckpts, outputs):
    parent = tmp_path / "out"
    parent.mkdir()
    with pytest.raises(clsviz.CheckpointMismatch):
        clsviz.export("ResNet34_vd", ckpts["new"], parent / "b", image_shape=SHAPE, class_num=4)
    with pytest.raises(clsviz.OptionError, match="does not accept inputs"):
        clsviz.export(ARCH, ckpts["new"], parent / "b", image_shape=(1, 32, 32))
    assert list(parent.iterdir()) == []
    rec("a failed export (checkpoint mismatch, wrong channels) into a new folder", "ok",
        "nothing left: no folder, no temporary folder, no lock file")


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    """Until ``path`` exists; a name with ``*`` waits for any match (e.g. the export's tmp folder)."""
    import time

    end = time.monotonic() + timeout
    while not (list(path.parent.glob(path.name)) if "*" in path.name else path.exists()):
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.005)


def test_concurrent_exports_to_one_target(tmp_path, server, ckpts, outputs):
    """Two exports at once: the second fails at once, before its work; the first succeeds."""
    import time

    target = tmp_path / "bundle"
    shutil.copytree(outputs[2]["old"], target)
    release = tmp_path / "release"
    server.start(ckpts["new"], target, kind="hold", release=str(release))  # holds the lock, then waits
    _wait_for(tmp_path / ".bundle.lock")
    t0 = time.perf_counter()
    expect_export_error(r"another clsviz export \(pid \d+\) is writing to this folder",
                        lambda: clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE, force=True),
                        "two exports to one folder at once (the second)")
    assert time.perf_counter() - t0 < 1.0  # refused before reading the checkpoint
    r = run_cli("export", "-m", ARCH, "-p", ckpts["old"], "-o", target, "--image_shape", *SHAPE, "--force")
    assert r.returncode == 1 and "another clsviz export" in r.stderr and "Traceback" not in r.stderr, r.stderr
    release.touch()
    assert server.finish()["code"] == 0
    assert state_of(target, outputs) == "new" and leftovers(target) == []


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_appearing_mid_export_is_kept(tmp_path, server, ckpts, outputs, force):
    target = tmp_path / "bundle"
    release = tmp_path / "release"
    errfile = tmp_path / "error.txt"
    server.start(ckpts["new"], target, kind="hold", release=str(release), force=force, errfile=str(errfile))
    _wait_for(tmp_path / ".bundle.tmp-*")  # past the first check: the export is writing its bundle
    target.mkdir()                       # someone's folder appears while the export runs
    (target / "notes.txt").write_text("mine\n")
    release.touch()
    r = server.finish()
    assert (target / "notes.txt").read_text() == "mine\n"
    assert leftovers(target) == []
    if force:
        assert r["code"] == 0, r
        (target / "notes.txt").unlink()
        assert state_of(target, outputs) == "new"
        rec("a folder with notes.txt appears at the target mid-export (--force)", "ok",
            "the bundle added beside notes.txt")
    else:
        assert r["code"] == 1, r
        message = errfile.read_text()
        assert message.startswith("ExportError: a folder appeared at the output path while exporting"), message
        assert state_of_files(target) == {"notes.txt"}
        rec("a folder with notes.txt appears at the target mid-export", "ExportError",
            message.split(": ", 1)[1])
        with pytest.raises(ExportError, match="not empty"):
            clsviz.export(ARCH, ckpts["new"], target, image_shape=SHAPE)


def test_full_disk_is_an_export_error(tmp_path, ckpts):
    """ENOSPC for real: a 1 MiB tmpfs in a private mount namespace (root, or user namespaces)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    disk = tmp_path / "small"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=1m tmpfs {disk} && {sys.executable} -m clsviz export -m {ARCH} "
              f"-p {ckpts['new']} -o {disk}/bundle --image_shape 3 32 32; echo rc=$?; ls -A {disk}")
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    r = subprocess.run(["unshare", *flags, "sh", "-c", script], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("clsviz: ExportError:"), r.stderr
    assert "No space left" in lines[0] and "Traceback" not in r.stderr
    # nothing left on the full disk: no bundle, no temporary folder, no lock file
    assert r.stdout.split() == ["rc=1"], r.stdout
    rec("export to a full disk (a 1 MiB tmpfs)", "ExportError", lines[0].split(": ", 2)[2])


def test_bundle_permissions_follow_the_umask(tmp_path, ckpts):
    """tempfile.mkdtemp makes 0700 folders; a renamed one would be private to its creator."""
    target = tmp_path / "shared"
    old = os.umask(0o022)
    try:
        clsviz.export(ARCH, ckpts["old"], target, image_shape=SHAPE)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
