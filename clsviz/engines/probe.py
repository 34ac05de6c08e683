"""Load safety for inference models: cheap checks in-process, a child-process probe when in doubt.

Paddle 3.3's ``create_predictor`` dies with SIGSEGV, taking the notebook kernel with it,
when a ``.pdmodel`` / ``__model__`` / ``model`` file is not a ``ProgramDesc`` with a
global block: text, JSON, PNG, a zip or pickle, a ``.pdiparams``, an ONNX model, random
bytes or zeros (docs/reliability.md lists what was tried).  Damaged PIR ``.json``
programs and damaged ``.pdiparams`` raise cleanly, but a ``.pdiparams`` cut short by
a few bytes, or one from another model, loads *silently* with wrong weights.

So before an engine builds, :func:`ensure_loadable`

1. rejects what it can prove is damaged, without Paddle: empty files; a params file
   whose tensor records do not end exactly at end of file; a params file whose tensor
   count or shapes differ from the parameters the program declares (both formats
   store them sorted by name);
2. confirms the program is well-formed: PIR JSON with ``base_code.magic == "pir"`` whose
   ops carry the keys Paddle reads and use only values defined before them,
   or a ``ProgramDesc`` that :mod:`clsviz.formats.programdesc` decodes, whose operators
   name only declared variables and use only the slots Paddle's op registry declares
   (one flipped byte in a variable or slot name can crash Paddle too);
3. only when step 2 cannot confirm it, builds the engine in a child process with the
   caller's mode and IR/oneDNN options and runs one zero batch through it (IR passes and
   the first run crash too; 3-8 s here, mostly ``import paddle``).  A crash there becomes a
   :class:`~clsviz.errors.FormatError`; a clean Paddle error becomes one too; success
   lets the in-process build go ahead (our decoder may be stricter than Paddle).

Steps 1-2 cost milliseconds (a JSON or protobuf parse and a walk over tensor headers).
``CLSVIZ_PROBE=always`` adds step 3 for every model, for those who would rather pay 3-8 s
per load than trust step 2 (fuzzing found no crash it lets through: docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .._translate import load_error
from ..errors import FormatError
from ..formats.pirjson import declared_params, load_json
from ..formats.programdesc import read_program
from ..formats.tensorfile import scan_combined, shape_fits
from ..safe_io import check_regular

__all__ = ["ensure_loadable", "check_files", "probe", "PROBE_TIMEOUT"]

PROBE_TIMEOUT = 180  # seconds; a probe that hangs is treated as a failure

_PROBE_SCRIPT = r"""
import json, os, sys, warnings
spec = json.loads(sys.argv[1])
os.environ.setdefault("GLOG_minloglevel", "2")
warnings.simplefilter("ignore")
import numpy as np
import paddle

def fail(e):
    sys.stderr.write("CLSVIZ-PROBE-ERROR " + str(e).replace("\n", " | ") + "\n")
    sys.exit(3)

try:  # build the engine as the caller will, on the CPU
    if spec["mode"] == "executor":
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        prog, feeds, fetches = paddle.static.load_inference_model(spec["prefix"], exe)
        def run(x):
            exe.run(prog, feed={feeds[0]: x}, fetch_list=fetches[:1])
    else:
        import paddle.inference as pi
        if spec["params"]:
            cfg = pi.Config(spec["model"], spec["params"])
        else:
            cfg = pi.Config(os.path.dirname(spec["model"]))
            if os.path.basename(spec["model"]) != "__model__":
                cfg.set_model(spec["model"], "")
        cfg.disable_gpu()
        cfg.switch_ir_optim(spec["ir_optim"])
        if spec["mkldnn"]:
            cfg.enable_onednn()
        else:
            cfg.disable_onednn()
        cfg.disable_glog_info()
        pred = pi.create_predictor(cfg)
        handle = pred.get_input_handle(pred.get_input_names()[0])
        def run(x):
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
            pred.run()
except BaseException as e:
    fail(e)
if spec["shape"]:  # Paddle 3.3 can also crash on the first run; a clean error here is the engine's
    try:
        run(np.zeros([1, *spec["shape"]], spec.get("dtype") or "float32"))
    except Exception:
        pass
"""


def ensure_loadable(files, *, mode: str = "predictor", options=None, image_shape=None, dtype: str = "float32") -> None:
    """Raise :class:`FormatError` unless ``files`` (a ``ModelFiles``) can be given to Paddle safely.

    ``mode``, ``options`` (``EngineOptions``), ``image_shape`` (one input without N, as the
    program takes it: ``Preprocess.item_shape``) and ``dtype`` make a probe build and run the
    engine as the caller will.  ``CLSVIZ_PROBE=always`` probes every model.
    """
    confirmed = check_files(files)
    if not confirmed or os.environ.get("CLSVIZ_PROBE", "").lower() == "always":
        probe(files, mode=mode, options=options, image_shape=image_shape, dtype=dtype)


def check_files(files) -> bool:
    """Cheap checks.  Raise for proven damage; return whether the program is confirmed well-formed."""
    model = Path(files.model_file)
    params = None if files.params_file is None else Path(files.params_file)
    for f, what in ((model, "model file"), (params, "parameters file")):
        if f is not None and check_regular(f, what=what).st_size == 0:
            raise FormatError(
                f"{what} is empty (0 bytes)", path=f, hint="the file was cut short (interrupted download or copy?)"
            )
    if model.suffix == ".json":
        declared, confirmed = _pir_params(model)
    else:
        declared, confirmed = _legacy_params(model)
    if params is not None:
        _check_params(params, declared, model)
    return confirmed


def _pir_params(model: Path):
    """``([(name, shape)], confirmed)`` for a PIR JSON program; raise if it is not JSON at all."""
    return declared_params(load_json(model))


def _legacy_params(model: Path):
    try:
        program = read_program(model)
        names = program.persistable_names()
        declared = [(n, tuple(program.vars[n].shape or ())) for n in names]
    except Exception:  # noqa: BLE001 - any decoder failure means "not confirmed": probe it
        return None, False
    return declared, _references_resolve(program) and _ops_match_registry(program)


def _references_resolve(program) -> bool:
    """Every operator argument names a variable of its block or an enclosing one.

    Paddle 3.3 segfaults on a dangling name (one flipped byte in ``conv2d_12.w_0``
    was enough), so a program that fails this is probed in a child process.
    """
    blocks = {b.idx: b for b in program.blocks}
    for block in program.blocks:
        known: set[str] = set()
        seen: set[int] = set()
        b = block
        while b is not None and b.idx not in seen:
            seen.add(b.idx)
            known.update(v.name for v in b.vars)
            b = blocks.get(b.parent_idx)
        for op in block.ops:
            for name in (*op.input_names(), *op.output_names()):
                if name and name != "@EMPTY@" and name not in known:
                    return False
    return True


def _ops_match_registry(program) -> bool:
    """Every operator is one this Paddle registers, uses only the slots its proto declares, and
    binds every required input (a misspelt slot helped crash Paddle 3.3 in fuzzing)."""
    try:
        from paddle.base.framework import OpProtoHolder

        protos = OpProtoHolder.instance().op_proto_map
    except Exception:  # noqa: BLE001 - no registry to compare with: the other checks decide
        return True
    for block in program.blocks:
        for op in block.ops:
            proto = protos.get(op.type)
            if proto is None:
                return False
            ins = {i.name: i for i in proto.inputs}
            if not set(op.inputs) <= set(ins) or not set(op.outputs) <= {o.name for o in proto.outputs}:
                return False
            if any(not i.dispensable and not op.inputs.get(n) for n, i in ins.items()):
                return False
    return True


def _check_params(params: Path, declared, model: Path) -> None:
    try:
        infos = scan_combined(params)
    except FormatError:
        raise  # already names the file and what is wrong with it
    except Exception as e:
        raise FormatError(
            f"damaged parameters file ({type(e).__name__} reading its headers)",
            path=params,
            hint="export the model again",
        ) from e
    if not declared:
        return
    hint = f"the parameters must come from the same export as {model.name}"
    if len(infos) != len(declared):
        raise FormatError(
            f"the parameters file holds {len(infos)} tensors but the program {model.name} declares {len(declared)}",
            path=params,
            hint=hint,
        )
    for (name, want), info in zip(sorted(declared, key=lambda t: t[0].encode("utf-8")), infos):
        got = tuple(info.shape)
        if not shape_fits(want, got):
            raise FormatError(
                f"the parameters do not belong to this program: {name} is "
                f"{list(want)} in {model.name} but tensor #{info.index} in the "
                f"parameters file is {list(got)}",
                path=params,
                hint=hint,
            )


def probe(
    files,
    *,
    mode: str = "predictor",
    options=None,
    image_shape=None,
    dtype: str = "float32",
    timeout: float = PROBE_TIMEOUT,
) -> None:
    """Build the engine from ``files`` in a child process and run one zero batch through it
    (IR passes and the first run can crash too); raise :class:`FormatError` if that fails."""
    model = Path(files.model_file)
    spec = {
        "mode": "executor" if mode == "executor" else "predictor",
        "model": str(model.absolute()),
        "params": "" if files.params_file is None else str(Path(files.params_file).absolute()),
        "prefix": str(model.absolute().with_suffix("")),
        "ir_optim": bool(getattr(options, "ir_optim", True)),
        "mkldnn": bool(getattr(options, "mkldnn", True)),
        "shape": [int(v) for v in image_shape] if image_shape else None,
        "dtype": str(dtype),
    }
    env = dict(os.environ, GLOG_minloglevel="2")
    if options is not None:
        env["OMP_NUM_THREADS"] = str(options.threads)
    try:
        p = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise FormatError(
            f"Paddle did not finish reading this model within {timeout:.0f} s (tried in a separate process)",
            path=model,
            hint="the file is probably damaged or not a Paddle program",
        ) from e
    if p.returncode == 0:
        return
    if p.returncode < 0:
        try:
            sig = signal.Signals(-p.returncode).name
        except ValueError:
            sig = f"signal {-p.returncode}"
        raise FormatError(
            f"not a Paddle program: Paddle crashed ({sig}) reading it; clsviz "
            "tried it in a separate process first, so this session is unaffected",
            path=model,
            hint="a .pdmodel/__model__/model file must be a ProgramDesc written by Paddle; is this another format?",
        )
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("CLSVIZ-PROBE-ERROR ")]
    text = lines[-1][len("CLSVIZ-PROBE-ERROR ") :].replace(" | ", "\n") if lines else p.stderr[-2000:]
    err = load_error(RuntimeError(text), files)
    if isinstance(err, FormatError):
        raise err
    raise FormatError(f"Paddle cannot read this model: {err}", path=model)
