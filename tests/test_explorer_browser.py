"""The Explorer in a real browser: Voilà serves a page, headless Chromium clicks Run.

Driven over the Chrome DevTools Protocol with ``websocket-client``; no browser download.
Run by hand to refresh the screenshot in the docs::

    .venv/bin/python tests/test_explorer_browser.py docs/explorer.png
"""
from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]

pytestmark = pytest.mark.browser


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc=None) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:  # it answered (a redirect to a login page, a 404): it is up
            return
        except Exception:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process group we started (the server and its kernels, or Chromium and its helpers)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


APP_SOURCE = """\
from clsviz.widgets import Explorer
explorer = Explorer({model!r}, {images!r}, selected={selected!r})
explorer
"""


@contextlib.contextmanager
def voila_app(model, images, *, selected=3, workdir: Path):
    """Voilà serving a one-cell notebook that shows an Explorer; yields the page URL."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(APP_SOURCE.format(model=None if model is None else str(model),
                                                            images=str(images), selected=selected))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    page = workdir / "explorer_app.ipynb"
    nbformat.write(nb, page)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    log = open(workdir / "voila.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", str(page), "--no-browser", f"--port={port}", f"--token={token}",
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True", "--theme=light"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/voila/static/", 90, proc)
        yield f"{base}/?token={token}"
    finally:
        _stop(proc)
        log.close()


class Browser:
    """Headless Chromium and one page, spoken to over the DevTools Protocol."""

    def __init__(self, url: str, *, width: int = 1360, height: int = 900, workdir: Path):
        import websocket  # websocket-client

        self.profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
        self.proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(workdir / "chromium.log", "wb"), start_new_session=True)
        port = self._devtools_port(60)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        self.send("Page.navigate", url=url)

    def _devtools_port(self, timeout: float) -> int:
        f = self.profile / "DevToolsActivePort"
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if f.is_file() and f.read_text().strip():
                return int(f.read_text().split()[0])
            time.sleep(0.2)
        raise TimeoutError("chromium did not open its DevTools port")

    def send(self, method: str, **params):
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS error: {r['exceptionDetails'].get('text')} in {expression[:80]}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            v = self.js(expression)
            if v:
                return v
            time.sleep(0.5)
        raise TimeoutError(f"waited {timeout:.0f}s for {what}")

    def click(self, selector_js: str) -> None:
        """A real mouse click at the centre of the element ``selector_js`` evaluates to."""
        box = self.js(f"(() => {{ const e = {selector_js}; e.scrollIntoView({{block: 'center'}}); "
                      f"const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        if full_page:
            # Voilà scrolls an inner container, not the document: take the tallest scroll height
            h = int(self.js("Math.ceil(Math.max(...[...document.querySelectorAll('body, body *')]"
                            ".map(e => e.scrollHeight)))")) + 16
            w = int(self.js("document.documentElement.clientWidth"))
            self.send("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False)
            time.sleep(0.5)
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        _stop(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)


RUN_BUTTON = "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Run')"
RESULTS_READY = ("document.querySelectorAll('.clsviz-mode').length >= 3 && "
                 "[...document.querySelectorAll('img.clsviz-chart')].every(i => i.complete && i.naturalWidth > 0)"
                 " && !!document.querySelector('.clsviz-agreement')")


EXPLAIN_BUTTON = "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'explain')"
EXPLAIN_READY = ("document.querySelectorAll('.clsviz-explain .explain-row img').length >= 3 && "
                 "[...document.querySelectorAll('.clsviz-explain img')].every(i => i.complete && i.naturalWidth > 0)")


def drive_explorer(model, images, shot: Path, *, workdir: Path, selected=3, explain: bool = True) -> dict:
    """Serve an Explorer, click Run in Chromium, wait for the results (then toggle "explain" and
    wait for the saliency overlays), screenshot; return what it saw."""
    with voila_app(model, images, selected=selected, workdir=workdir) as url:
        b = Browser(url, workdir=workdir)
        try:
            b.wait_for(f"!!({RUN_BUTTON})", 180, "the Explorer to render (Run button)")
            b.wait_for("document.querySelectorAll('.widget-toggle-button.mod-success').length >= 1", 60,
                       "the image gallery")
            b.click(RUN_BUTTON)
            b.wait_for(RESULTS_READY, 240, "per-mode results and charts")
            if explain:
                b.click(EXPLAIN_BUTTON)
                b.wait_for(EXPLAIN_READY, 240, "a saliency overlay per mode")
            b.js("window.scrollTo(0, 0)")
            seen = b.js("""(() => ({
                explain: [...document.querySelectorAll('.clsviz-explain figcaption')].map(e => e.innerText),
                overlays: [...document.querySelectorAll('.clsviz-explain img')].map(i => [i.naturalWidth, i.naturalHeight]),
                modes: [...document.querySelectorAll('.clsviz-mode')].map(e => e.dataset.mode),
                charts: document.querySelectorAll('img.clsviz-chart').length,
                badge: document.querySelector('.clsviz-agreement').innerText,
                agree: document.querySelector('.clsviz-agreement').dataset.agree,
                progress: document.querySelector('.widget-inline-hbox .progress-bar')?.style.width || '',
            }))()""")
            b.screenshot(shot)
            return seen
        except Exception:
            with contextlib.suppress(Exception):
                b.screenshot(shot.with_name(shot.stem + "-failed.png"), full_page=False)
            raise
        finally:
            b.close()


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    """The demo model (``None``: the Explorer's default) and sample images if the checkout has
    them, else a small random model."""
    from clsviz.widgets import demo_checkpoint, sample_images_folder

    ckpt, imgs = demo_checkpoint(), sample_images_folder()
    if ckpt is not None and imgs is not None and any(imgs.iterdir()):
        return None, imgs
    import numpy as np
    from PIL import Image

    import clsviz
    from clsviz._paddle import paddle

    d = tmp_path_factory.mktemp("browser_model")
    paddle.seed(0)
    net = clsviz.get_model("ResNet18_vd_x0_25", class_num=4)
    paddle.save(net.state_dict(), str(d / "m.pdparams"))
    bundle = d / "bundle"
    clsviz.export("ResNet18_vd_x0_25", d / "m.pdparams", bundle, image_shape=(3, 64, 64),
                  labels=["circle", "square", "triangle", "star"])
    (d / "imgs").mkdir()
    for i in range(4):
        arr = (np.random.default_rng(i).random((96, 96, 3)) * 255).astype("uint8")
        Image.fromarray(arr).save(d / "imgs" / f"img{i}.png")
    return bundle, d / "imgs"


@pytest.mark.timeout(600)
def test_explorer_runs_in_chromium(demo_inputs, tmp_path):
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("websocket", reason="pip install websocket-client")
    pytest.importorskip("voila", reason="pip install voila")
    model, images = demo_inputs
    shot = ARTIFACTS / "explorer.png"
    seen = drive_explorer(model, images, shot, workdir=tmp_path)
    assert seen["modes"][:3] == ["predictor", "dygraph", "executor"], seen
    assert seen["charts"] >= 4, seen  # a top-k chart per mode + the latency chart
    assert "modes agree" in seen["badge"] and seen["agree"] == "true", seen
    # the explain toggle: one saliency overlay per mode, side by side
    assert len(seen["overlays"]) == 3 and all(w > 0 and h > 0 for w, h in seen["overlays"]), seen
    for m in ("predictor", "dygraph", "executor"):
        assert sum(c.startswith(("gradcam · " + m, "occlusion · " + m)) for c in seen["explain"]) == 1, seen
    assert shot.stat().st_size > 10_000


SHOWCASE = ("ring_1920x1080.jpg", "star_rgba.png", "arrow_exif6.jpg", "hard_two_shapes.png")


def main(argv) -> int:
    """``python tests/test_explorer_browser.py OUT.png``: refresh the docs screenshot."""
    from PIL import Image

    out = Path(argv[1]) if len(argv) > 1 else REPO / "docs" / "explorer.png"
    from clsviz.widgets import sample_images_folder

    model, images = None, sample_images_folder()
    if len(argv) > 3:
        model, images = argv[2], argv[3]
    picks = [n for n in SHOWCASE if (Path(images) / n).is_file()]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.png"
        seen = drive_explorer(model, images, raw, workdir=Path(tmp), selected=picks if len(picks) >= 3 else 3,
                              explain=False)
        img = Image.open(raw).convert("RGB")
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(seen, out, f"{out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
