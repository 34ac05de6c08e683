"""Worker process for legacy (ProgramDesc) programs in the ``executor`` mode.

Under Paddle 3's PIR, ``paddle.static.load_inference_model`` cannot read
``.pdmodel`` / ``__model__`` / ``model`` programs, and the switch
(``FLAGS_enable_pir_api=0``) only works if set before ``import paddle``.
So the parent starts this module in a child process with that flag and talks
to it over pipes: one JSON line per request/reply, arrays as ``.npy`` bytes.
An abort inside Paddle kills only this child; the parent raises an error.
"""

from __future__ import annotations

import io
import json
import os
import sys


def _send(out, header: dict, payload: bytes = b""):
    header = dict(header, nbytes=len(payload))
    out.write((json.dumps(header) + "\n").encode())
    if payload:
        out.write(payload)
    out.flush()


def _recv(inp):
    line = inp.readline()
    if not line:
        return None, b""
    header = json.loads(line)
    n = int(header.get("nbytes", 0))
    payload = inp.read(n) if n else b""
    return header, payload


def main():
    # Keep the protocol channel private: Paddle's C++ code may print to fd 1.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle
    paddle.enable_static()
    state: dict = {}
    while True:
        header, payload = _recv(inp)
        if header is None or header.get("cmd") == "exit":
            break
        try:
            if header["cmd"] == "load":
                place = paddle.CUDAPlace(header.get("gpu_id", 0)) if header.get("use_gpu") else paddle.CPUPlace()
                exe = paddle.static.Executor(place)
                scope = paddle.static.Scope()
                with paddle.static.scope_guard(scope):
                    # passing model_filename at all (even None) switches Paddle to the
                    # fluid folder layout, so only pass the names the parent gave
                    kw = {k: header[k] for k in ("model_filename", "params_filename") if k in header}
                    prog, feeds, fetches = paddle.static.load_inference_model(header["path"], exe, **kw)
                state.update(exe=exe, scope=scope, prog=prog, feeds=feeds, fetches=fetches)
                _send(proto_out, {"ok": True, "feeds": list(feeds), "fetches": [v.name for v in fetches]})
            elif header["cmd"] == "run":
                x = np.load(io.BytesIO(payload), allow_pickle=False)
                with paddle.static.scope_guard(state["scope"]):
                    i = int(header.get("fetch", 0))
                    (out,) = state["exe"].run(
                        state["prog"], feed={state["feeds"][0]: x}, fetch_list=[state["fetches"][i]]
                    )
                buf = io.BytesIO()
                np.save(buf, np.asarray(out), allow_pickle=False)
                _send(proto_out, {"ok": True}, buf.getvalue())
            else:
                _send(proto_out, {"ok": False, "error": f"unknown command {header['cmd']!r}"})
        except Exception as e:  # noqa: BLE001 - reported to the parent, which translates it
            _send(proto_out, {"ok": False, "type": type(e).__name__, "error": str(e)[-4000:]})


if __name__ == "__main__":
    main()
