"""Score a labelled folder on a Ray cluster: the engine behind ``clsviz.evaluate(..., ray=...)``.

Ray Data reads the list of ``(index, path, label)`` rows; ``map_batches`` sends them to a pool
of actors, each of which builds its engine once (``clsviz.load``, any mode), reads and
preprocesses its images and sends back only the top-k class ids, probabilities and per-image
errors.  Decoded images never reach the driver, and the driver streams the answers in as
they come, so its memory does not grow with the folder.

Ray is optional (``pip install 'clsviz[ray]'``); nothing here imports it until asked.
``ray=True`` starts a local runtime sized to this machine, ``"auto"`` joins the cluster this
machine belongs to, ``"host:port"`` or ``"ray://host:port"`` joins that one.  The folder and
the bundle must be at the same path on every node (a shared file system; on one machine they are).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import errors as _errors
from ._paddle import quiet
from .engines import load
from .engines.base import default_threads
from .errors import BackendUnavailable, ClsvizError, EngineError, OptionError
from .timing import clock, spanned

__all__ = ["RaySession", "connect", "RayScorer", "import_ray"]

_VERBOSE = os.environ.get("CLSVIZ_VERBOSE", "") not in ("", "0")
_ADDRESS = re.compile(r"^(?:ray://)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):(?P<port>\d{1,5})$")
# A local runtime only moves paths in and predictions out; a small object store is plenty,
# and a small one keeps Ray Data's back-pressure (a share of the store) tight.
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20
CONNECT_TIMEOUT_S = 5.0
CLIENT_SERVER_ATTEMPTS = 3  # connections tried when the head's per-client server dies at start
CLIENT_SERVER_PAUSE_S = 1.0  # times the attempt number, between those tries
# Batches per Ray Data task.  A task's answers reach the driver when it ends, so this sets how
# smooth the progress is and how much a killed actor redoes, against the driver's cost per task.
BATCHES_PER_TASK = 4


def import_ray():
    """``ray`` and ``ray.data``, or a one-line :class:`BackendUnavailable` saying how to get them."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise BackendUnavailable(
            "evaluating on Ray needs the ray[data] package, which is not installed", hint="pip install 'clsviz[ray]'"
        ) from e
    return ray


@dataclass(frozen=True)
class RaySession:
    """The Ray runtime this process is connected to."""

    address: str
    cpus: float
    nodes: int
    started: bool  # clsviz started it (a local runtime) rather than joined one

    def describe(self) -> str:
        where = "local runtime" if self.started else "cluster"
        return f"{where} at {self.address} ({self.nodes} node{'s' * (self.nodes != 1)}, {self.cpus:g} CPUs)"


_joined: dict[str, str] = {}  # address asked for -> address of the runtime it led to


def parse_address(address) -> str | None:
    """``True`` → ``None`` (start a local runtime); ``"auto"``, ``"host:port"``, ``"ray://host:port"``
    are kept; anything else is an :class:`OptionError`."""
    if address is True:
        return None
    if isinstance(address, str):
        a = address.strip()
        if a == "auto" or _ADDRESS.match(a):
            return a
    raise OptionError(
        f"ray= must be True, 'auto', 'host:port' or 'ray://host:port', got {address!r}",
        hint="ray=True starts a local Ray runtime sized to this machine",
    )


def _check_reachable(address: str) -> None:
    """Fail in seconds, and say so plainly, when nothing listens at ``address``
    (Ray itself retries for a minute and then reports a GCS time-out)."""
    m = _ADDRESS.match(address)
    assert m is not None  # callers pass only addresses that match
    host, port = m.group("host").strip("[]"), int(m.group("port"))
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise BackendUnavailable(
            f"no Ray cluster answers at {address} ({e.strerror or e})",
            hint="start one with `ray start --head`, check the address and port, "
            "or pass --ray with no address for a local runtime",
        ) from e


def _quiet_ray_data(ray) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # clsviz shows one bar in images, per mode
    if not _VERBOSE:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)


# What Ray Client's head says when the server process it starts for a client died or never
# answered (ray/util/client/server/proxier.py); not a refusal, such as a runtime_env it cannot build
_SERVER_DIED = ("Starting Ray client server failed", "Proxy failed to Connect to backend")


def _server_failed(e: BaseException) -> bool:
    """Ray Client's head could not start this client's own server process."""
    said = str(e)
    return (
        isinstance(e, ConnectionAbortedError)
        and "Initialization failure from server" in said
        and any(s in said for s in _SERVER_DIED)
    )


def _join(ray, target: str, kwargs: dict) -> None:
    """``ray.init`` on a running cluster.

    Through Ray Client (``ray://``) the head starts one server process per connection.  That
    process now and then dies as it starts (seen on a loaded 2-core head, about one connection in
    eight); the head then answers "Initialization failure from server", and a new connection gets
    a new process.  So that failure is tried again, a few times, with a short pause.
    """
    for attempt in range(1, CLIENT_SERVER_ATTEMPTS + 1):
        try:
            with quiet():
                ray.init(address=target, **kwargs)
            return
        except Exception as e:
            if not _server_failed(e) or attempt == CLIENT_SERVER_ATTEMPTS:
                raise
            # Ray has already dropped the failed connection (which takes it ~30 s: the head's
            # reconnect grace period), so say why the wait, then connect afresh
            logging.getLogger(__name__).warning(
                "clsviz: the Ray head could not start a server for this client (%s); trying again, %d of %d",
                _first_words(e).removeprefix("Initialization failure from server: "),
                attempt + 1,
                CLIENT_SERVER_ATTEMPTS,
            )
            time.sleep(CLIENT_SERVER_PAUSE_S * attempt)


def _first_words(e: BaseException) -> str:
    """An exception's first line; when that line only introduces what follows (the head's traceback
    after "Initialization failure from server:"), its last line too, which says what went wrong."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [type(e).__name__]
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[-1]}"
    return lines[0]


def _current(ray, *, started: bool) -> RaySession:
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    ctx = ray.get_runtime_context()
    address = getattr(ctx, "gcs_address", None) or "?"
    return RaySession(address=address, cpus=float(res.get("CPU", 0.0)), nodes=nodes, started=started)


def connect(address=True) -> RaySession:
    """Connect this process to Ray: start a local runtime (``True``) or join a cluster.

    A connection made earlier in this process (by clsviz or by ``ray.init``) is reused when it
    fits the request; asking for a different cluster raises :class:`OptionError`.
    """
    target = parse_address(address)
    ray = import_ray()
    if ray.is_initialized():
        session = _current(ray, started=False)
        session = replace(session, started=_joined.get("local") == session.address)
        if target is None or target == "auto" or _joined.get(target) == session.address or target == session.address:
            _quiet_ray_data(ray)
            return session
        raise OptionError(
            f"this process is already connected to the Ray runtime at {session.address}, not {target}",
            hint="call ray.shutdown() first, or pass ray=True to use it",
        )

    kwargs = {} if _VERBOSE else {"logging_level": logging.ERROR, "log_to_driver": False}
    if not _VERBOSE:
        # Ray's C++ core logs an error line for every actor Ray Data starts (ray-project/ray#53727,
        # harmless); only what the user has not set.  The level is read, and announced, at init.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        if target is None:
            with quiet():
                ray.init(
                    address="local",
                    num_cpus=default_threads(),
                    include_dashboard=False,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    **kwargs,
                )
        else:
            if target != "auto":
                _check_reachable(target)
            _join(ray, target, kwargs)
    except ClsvizError:
        raise
    except Exception as e:  # ConnectionError, TimeoutError, RuntimeError, ValueError from ray.init
        what = "start a local Ray runtime" if target is None else f"join the Ray cluster at {target}"
        first = _first_words(e)
        if target == "auto":
            hint = "is a cluster running here? `ray start --head` starts one; or pass ray=True for a local runtime"
        elif _server_failed(e):
            hint = (
                f"the head answered but could not start this client's server, {CLIENT_SERVER_ATTEMPTS} times; "
                "its logs say why: ray_client_server*.err under /tmp/ray/session_latest/logs on the head"
            )
        elif target is not None and target.startswith("ray://"):
            hint = (
                "is the head's client server on that port? A cluster with token authentication (Ray's "
                "default since 2.5x) also needs RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN) here"
            )
        else:
            hint = "see `ray status`; rerun with CLSVIZ_VERBOSE=1 for Ray's own logs"
        raise BackendUnavailable(f"could not {what}: {first}", hint=hint) from e
    session = _current(ray, started=target is None)
    _joined["local" if target is None else target] = session.address
    _quiet_ray_data(ray)
    return session


class _ScoreActor:
    """The callable class Ray Data runs in each actor: builds the engine once, then scores batches.

    Errors travel back as data (a type name and a message) rather than as exceptions, which
    Ray would flatten into a trace: the driver raises the same clsviz error a local run would.
    """

    def __init__(self, bundle: str, mode: str, options: dict, top_k: int):
        self.where = f"{socket.gethostname()}:{os.getpid()}"
        self.top_k = top_k
        t0 = clock()
        self.clf, self.fatal = None, None
        try:
            self.clf = load(bundle, mode=mode, **options)
        except Exception as e:  # noqa: BLE001 - carried to the driver, see the class docstring
            self.fatal = e
        self.build_seconds = clock() - t0

    def __call__(self, batch: dict) -> dict:
        out, span = spanned(lambda: self._score(batch))
        out["span"] = np.tile(span, (len(batch["index"]), 1))  # wall clock: spans from many workers line up
        return out

    def _score(self, batch: dict) -> dict:
        n = len(batch["index"])
        ids = np.full((n, self.top_k), -1, dtype=np.int64)
        probs = np.full((n, self.top_k), np.nan, dtype=np.float64)
        errors = [""] * n
        fatal = self.fatal
        if fatal is None:
            assert self.clf is not None  # built, since nothing failed
            try:
                got_ids, got_probs, got_errors = self.clf.score_batch([str(p) for p in batch["path"]], top_k=self.top_k)
                k = got_ids.shape[1]
                ids[:, :k], probs[:, :k] = got_ids, got_probs
                errors = [e or "" for e in got_errors]
            except Exception as e:  # noqa: BLE001
                fatal = e
        return {
            "index": batch["index"],
            "ids": ids,
            "probs": probs,
            "error": np.asarray(errors, dtype=object),
            "fatal_type": np.asarray([type(fatal).__name__ if fatal else ""] * n, dtype=object),
            "fatal": np.asarray([str(fatal) if fatal else ""] * n, dtype=object),
            "where": np.asarray([self.where] * n, dtype=object),
            "build_seconds": np.full(n, self.build_seconds),
        }


def _raise_fatal(type_name: str, message: str, where: str):
    cls = getattr(_errors, type_name, None)
    if isinstance(cls, type) and issubclass(cls, ClsvizError):
        raise cls(message)
    raise EngineError(
        f"a Ray worker ({where}) failed: {type_name}: {message}",
        hint="rerun without ray= to see the trace, or with CLSVIZ_VERBOSE=1 for Ray's logs",
    )


def _answers(ray, rows, *, bundle, mode, options, top_k, batch_size, workers, threads) -> Iterator[dict]:
    """The Ray Data pipeline: rows of (index, path, label) → an actor pool → answers, as they come."""
    n = len(rows)
    per_task = batch_size * BATCHES_PER_TASK
    blocks = max(1, min(n, max(-(-n // per_task), 2 * workers)))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(
        _ScoreActor,
        fn_constructor_kwargs={"bundle": bundle, "mode": mode, "options": options, "top_k": top_k},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads,
    )
    return ds.iter_batches(batch_size=None, batch_format="numpy")


def _is_client(ray) -> bool:
    try:
        return bool(ray.util.client.ray.is_connected())
    except Exception:  # noqa: BLE001 - no client support in this ray build: not a client
        return False


class _ClientRelay:
    """Runs :func:`_answers` on the cluster for a Ray Client (``ray://``) driver, which pulls the
    answers in chunks: Ray Data cannot run its executor in a client process."""

    def __init__(self, rows, spec):
        import ray

        _quiet_ray_data(ray)
        self.it = iter(_answers(ray, rows, **spec))

    def take(self):
        try:
            return next(self.it)
        except StopIteration:
            return None


def _pull(ray, relay) -> Iterator[dict]:
    while True:
        out = ray.get(relay.take.remote())
        if out is None:
            return
        yield out


class RayScorer:
    """Runs one mode at a time over a list of images on a pool of Ray actors.

    ``score(mode, paths, labels)`` yields ``(indices, ids [n, k], probs [n, k], errors)`` per
    batch, in whatever order the actors finish.
    """

    backend = "ray"

    def __init__(
        self,
        bundle,
        *,
        address=True,
        workers: int | None = None,
        batch_size: int = 8,
        top_k: int = 5,
        options: dict | None = None,
    ):
        self.session = connect(address)
        self.ray = import_ray()
        options = dict(options or {})
        self.threads = int(options.get("cpu_threads") or 1)
        if self.threads > max(1.0, self.session.cpus):
            raise OptionError(
                f"cpu_threads={self.threads} is more than the {self.session.cpus:g} CPUs "
                f"of the Ray {('runtime' if self.session.started else 'cluster')}"
            )
        if workers is None:
            workers = max(1, int(self.session.cpus // self.threads))
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise OptionError(f"workers must be an integer ≥ 1, got {workers!r}")
        self.workers = workers
        self.batch_size = batch_size
        self.top_k = top_k
        options.update(cpu_threads=self.threads, batch_size=batch_size)
        for key in ("params", "config", "labels"):  # workers do not share the driver's working folder
            v = options.get(key)
            if isinstance(v, (str, os.PathLike)) and os.path.exists(v):
                options[key] = str(Path(v).resolve())
        self.options = options
        self.bundle = str(Path(bundle).resolve())
        self.processes: set[str] = set()
        self._build: dict[str, float] = {}

    @property
    def address(self) -> str:
        return self.session.address

    def build_seconds(self, mode: str) -> float:
        return self._build.get(mode, float("nan"))

    def score(self, mode: str, paths: Sequence, labels: Sequence[int]) -> Iterator[tuple]:
        ray = self.ray
        # absolute: workers do not share the driver's working folder (abspath: no file-system calls)
        rows = [
            {"index": i, "path": os.path.abspath(p), "label": int(y)} for i, (p, y) in enumerate(zip(paths, labels))
        ]
        spec = {
            "bundle": self.bundle,
            "mode": mode,
            "options": self.options,
            "top_k": self.top_k,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "threads": self.threads,
        }
        relay = None
        if _is_client(ray):  # Ray Data needs a driver with a core worker; a ray:// client has none
            relay = ray.remote(num_cpus=0)(_ClientRelay).remote(rows, spec)
            outputs = _pull(ray, relay)
        else:
            outputs = _answers(ray, rows, **spec)
        del rows
        try:
            for out in outputs:
                if len(out["index"]) == 0:
                    continue
                bad = np.flatnonzero(out["fatal_type"] != "")
                if bad.size:
                    i = int(bad[0])
                    _raise_fatal(str(out["fatal_type"][i]), str(out["fatal"][i]), str(out["where"][i]))
                self.processes.update(str(w) for w in np.unique(out["where"]))
                self._build[mode] = max(self._build.get(mode, 0.0), float(np.max(out["build_seconds"])))
                # a task's batches arrive together; each keeps the span its worker scored it in
                index, spans = np.asarray(out["index"], dtype=np.int64), np.asarray(out["span"])
                keys, group = np.unique(spans, axis=0, return_inverse=True)
                for g, key in enumerate(keys):
                    same = np.flatnonzero(group.ravel() == g)
                    yield (
                        index[same],
                        out["ids"][same],
                        out["probs"][same],
                        [str(out["error"][i]) or None for i in same],
                        (float(key[0]), float(key[1])),
                    )
        except ClsvizError:
            raise
        except ray.exceptions.RayError as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise EngineError(
                f"the Ray run of mode {mode!r} failed: {first}",
                hint="see `ray status` and the Ray logs (CLSVIZ_VERBOSE=1 shows them here)",
            ) from e
        finally:
            close = getattr(outputs, "close", None)
            if close is not None:
                close()
            if relay is not None:
                ray.kill(relay)

    def close(self) -> None:
        """Nothing to release: Ray Data stops each mode's actors when its pass ends, and a runtime
        clsviz started stays up for the next call (``ray.shutdown()`` stops it)."""
