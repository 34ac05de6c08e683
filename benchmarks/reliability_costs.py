"""What the round-2 reliability checks cost, measured side by side (docs/reliability.md §5).

    python benchmarks/reliability_costs.py [--json out/reliability_costs.json]

1. Peak memory of preprocessing a 172 KB 16-bit 9400 x 9400 PNG (88 Mpx, just under Pillow's
   guard): clsviz's banded uint16 conversion against the float64 conversion it replaced, each
   in a fresh child process (``ru_maxrss``).
2. Reading a 100 MB ``.pdparams``: the opcode prescan (declared sizes checked before the C
   unpickler allocates) against the whole safe load.
3. Export ownership bookkeeping for a 100 MB bundle: writing the manifest and checking which
   files are clsviz's (both hash every file) against copying the bundle once.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

CHILD = r'''
import resource, sys, time
import numpy as np
from PIL import Image
from clsviz.transforms import Preprocess  # imported before the baseline: only the image counts
path, how = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if how == "clsviz":
    x = Preprocess()(path)
else:  # what clsviz did before: the whole image as float64, then /257, rint, clip
    img = Image.open(path); img.load()
    arr = np.asarray(img, dtype=np.float64)
    scaled = arr / 257.0
    rgb = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8)).convert("RGB")
    pre = Preprocess()
    x = pre.normalize(np.asarray(pre.resize_crop(rgb)))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - base) / 1024:.0f} {peak / 1024:.0f} {time.perf_counter() - t0:.2f}")
'''


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_zeros(path: Path, side: int) -> None:
    row = b"\0" * (1 + 2 * side)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0))
                     + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))


def best_of(fn, n=3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import numpy as np

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="clsviz-costs-") as tmp:
        tmp = Path(tmp)
        png = tmp / "big16.png"
        png16_zeros(png, 9400)
        out["png_bytes"] = png.stat().st_size
        for how in ("before", "clsviz"):
            r = subprocess.run([sys.executable, "-c", CHILD, str(png), how], capture_output=True, text=True,
                               env=dict(os.environ, GLOG_minloglevel="3"), check=True)
            growth, peak, secs = r.stdout.split()[-3:]
            out[f"png16_{how}"] = {"peak_growth_mb": float(growth), "peak_rss_mb": float(peak),
                                   "seconds": float(secs)}

        from clsviz.safe_pickle import _prescan, load_pdparams
        from clsviz.publish import owned_files, write_manifest
        from clsviz._paddle import paddle

        rng = np.random.default_rng(0)
        state = {f"layer{i}.weight": paddle.to_tensor(rng.standard_normal(250_000).astype(np.float32))
                 for i in range(100)}
        pd = tmp / "big.pdparams"
        paddle.save(state, str(pd))
        size = pd.stat().st_size

        def prescan():
            with open(pd, "rb") as f:
                _prescan(f, size)

        out["pdparams_mb"] = round(size / 2 ** 20, 1)
        out["prescan_s"] = best_of(prescan)
        out["safe_load_s"] = best_of(lambda: load_pdparams(pd))

        bundle = tmp / "bundle"
        bundle.mkdir()
        (bundle / "inference.pdiparams").write_bytes(rng.bytes(50 << 20))
        (bundle / "model.pdparams").write_bytes(rng.bytes(50 << 20))
        (bundle / "inference.json").write_bytes(rng.bytes(200_000))
        (bundle / "inference.yml").write_text("Global: {clsviz: {}}\n")
        out["bundle_mb"] = 100
        out["manifest_s"] = best_of(lambda: write_manifest(bundle))
        out["owned_files_s"] = best_of(lambda: owned_files(bundle))
        copy = tmp / "copy"
        out["copy_s"] = best_of(lambda: (shutil.rmtree(copy, ignore_errors=True), shutil.copytree(bundle, copy)))

    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
