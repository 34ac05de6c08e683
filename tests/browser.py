"""Drive headless Chromium (Debian's ``chromium`` package) from tests; no extra Python dependency.

    from browser import chromium, probe_images, screenshot
    info = probe_images("out/report.html")        # every <img>: naturalWidth, …; page height
    screenshot("out/report.html", "test-artifacts/report.png", full_page=True)

Each call starts a fresh browser with its own throw-away profile.  A page is probed by
loading a copy of it with one inline script appended, which writes its findings into
the DOM after the ``load`` event; ``--dump-dom`` then returns that DOM.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio", "--disable-extensions", "--no-default-browser-check",
         "--force-device-scale-factor=1"]

_PROBE = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (im) {
    return {src: im.getAttribute('src').slice(0, 40), alt: im.alt, complete: im.complete,
            naturalWidth: im.naturalWidth, naturalHeight: im.naturalHeight,
            width: im.getBoundingClientRect().width, height: im.getBoundingClientRect().height};
  });
  var out = {title: document.title, images: imgs,
             height: Math.ceil(document.documentElement.scrollHeight),
             width: Math.ceil(document.documentElement.scrollWidth),
             external: Array.prototype.filter.call(
               document.querySelectorAll('link[href],script[src],img[src]'),
               function (e) { var u = e.getAttribute('href') || e.getAttribute('src');
                              return !/^data:/.test(u); }).length};
  var pre = document.createElement('pre');
  pre.id = '__probe__';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str | None:
    """Path of the Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def require_chromium() -> str:
    """The Chromium binary; skips the test (with the install command) when it is missing."""
    exe = chromium()
    if exe is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    return exe


def run_chromium(args, *, timeout: float = 90, window=(1280, 900)) -> subprocess.CompletedProcess:
    """Run Chromium once with the test flags, a fresh profile and ``args``."""
    exe = require_chromium()
    with tempfile.TemporaryDirectory(prefix="clsviz-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "HOME": profile})
    if p.returncode != 0:
        raise AssertionError(f"chromium failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return p


def dump_dom(page, *, budget_ms: int = 5000, timeout: float = 90) -> str:
    """The DOM of ``page`` (file path or URL) after load and ``budget_ms`` of virtual time."""
    url = page if re.match(r"^[a-z]+:", str(page)) else Path(page).resolve().as_uri()
    return run_chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout=timeout).stdout


def probe_images(html_path, *, budget_ms: int = 5000) -> dict:
    """Load ``html_path`` in Chromium and report every ``<img>`` plus the page size.

    Returns ``{"title", "images": [{src, alt, complete, naturalWidth, …}], "height",
    "width", "external"}``, where ``external`` counts resources that are not inline.
    """
    src = Path(html_path)
    text = src.read_text(encoding="utf-8")
    probe = text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE
    with tempfile.TemporaryDirectory(prefix="clsviz-probe-") as d:
        copy = Path(d) / src.name
        copy.write_text(probe, encoding="utf-8")
        dom = dump_dom(copy, budget_ms=budget_ms)
    m = re.search(r'<pre id="__probe__">(.*?)</pre>', dom, re.S)
    if not m:
        raise AssertionError(f"the probe script did not report (page did not load?)\n{dom[-2000:]}")
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(html_path, png_path, *, width: int = 1280, height: int | None = None,
               full_page: bool = True, max_height: int = 16000, budget_ms: int = 3000) -> Path:
    """Save a PNG of ``html_path``; ``full_page`` sizes the window to the page height first."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if height is None:
        height = min(max(probe_images(html_path)["height"], 200), max_height) if full_page else 900
    url = Path(html_path).resolve().as_uri()
    run_chromium([f"--virtual-time-budget={budget_ms}", f"--screenshot={png_path}", url],
                 window=(width, height))
    if not png_path.exists() or png_path.stat().st_size == 0:
        raise AssertionError(f"chromium wrote no screenshot to {png_path}")
    return png_path
