"""One contract for every prediction path: preprocess → forward → postprocess.

Only :meth:`Classifier.forward` touches an engine; pre- and post-processing are
shared, so the three modes differ in exactly one place.
"""

from __future__ import annotations

import contextlib
import functools
import html
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .._paddle import gpu_available
from .._paddle import threads_scope as _threads_scope
from ..bundle import BundleConfig, with_default_labels
from ..errors import BackendUnavailable, EngineError, ImageError, OptionError
from ..results import Prediction, TopK
from ..timing import rss_mb
from ..transforms import Images, expand_images, image_name

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def default_threads() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (a
    container started with ``--cpus 2`` on a 64-core host gets 2, not 64 threads per engine)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n = os.cpu_count() or 1
    quota = _own_cpu_quota()
    return max(1, min(n, quota) if quota is not None else n)


@functools.lru_cache(maxsize=1)
def _own_cpu_quota() -> int | None:
    """:func:`cpu_quota` of this process, read once: the cgroup files cost ~0.1 ms, and every
    forward call of an engine on the default thread count asks for it (``threads_scope``)."""
    return cpu_quota()


def cpu_quota(root: str | os.PathLike = "/sys/fs/cgroup") -> int | None:
    """The CPU quota of this process's cgroup, rounded up to whole CPUs, or None if unlimited.

    cgroup v2: ``cpu.max`` ("200000 100000" = 2 CPUs, "max 100000" = none); v1:
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = none).  Read at the cgroup root as a
    container sees it, then at this process's own cgroup path.
    """
    root = Path(root)
    own = {"v2": "", "v1": ""}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                own["v2"] = path.lstrip("/")
            elif "cpu" in controllers.split(","):
                own["v1"] = path.lstrip("/")
    except (OSError, ValueError):
        pass

    def ratio(quota: str, period: str) -> int | None:
        try:
            q, p = int(quota), int(period)
        except ValueError:
            return None
        return max(1, -(-q // p)) if q > 0 and p > 0 else None

    for d in dict.fromkeys([root, root / own["v2"]]):
        try:
            got = ratio(*(d / "cpu.max").read_text().split()[:2])
        except (OSError, TypeError):
            continue
        if got is not None:
            return got
    for sub in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for d in dict.fromkeys([root / sub, root / sub / own["v1"]]):
            try:
                got = ratio((d / "cpu.cfs_quota_us").read_text().strip(), (d / "cpu.cfs_period_us").read_text().strip())
            except OSError:
                continue
            if got is not None:
                return got
    return None


def max_threads() -> int:
    """The most CPU threads an engine may be asked for: 4 per CPU of this machine (at least 16)."""
    return max(16, 4 * (os.cpu_count() or 1))


def require_fp32_engine_options(options, mode: str) -> None:
    """The training-engine modes (dygraph, executor) run fp32, without TensorRT; GPU only if present.

    Raises :class:`BackendUnavailable` rather than falling back silently.
    """
    if options.use_tensorrt:
        raise BackendUnavailable("use_tensorrt applies to the predictor mode only")
    if options.precision != "fp32":
        raise BackendUnavailable(
            f"the {mode} mode runs fp32 only (asked for {options.precision})",
            hint="use mode='predictor' for bf16/fp16/int8",
        )
    if options.use_gpu:
        ok, why = gpu_available()
        if not ok:
            raise BackendUnavailable(f"use_gpu requested but {why}")


def _bool(v, name):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "1", "yes", "false", "0", "no"):
        return v.lower() in ("true", "1", "yes")
    raise OptionError(f"{name} must be a boolean, got {v!r}")


@dataclass(frozen=True)
class RawCall:
    """The bare engine call of a built classifier, for measuring what clsviz adds around it.

    ``fn(x)`` maps the engine's native input (a C-contiguous NCHW array of the model's dtype)
    to its first raw output, with none of clsviz's checks, conversions or scoping: what a
    user's own loop on the same engine object would do.  Enter ``scope()`` once around a loop
    of calls: the state such a script sits in throughout (static mode for the executor).
    """

    fn: Callable[[np.ndarray], np.ndarray]
    scope: Callable[[], AbstractContextManager] = contextlib.nullcontext


@dataclass(frozen=True)
class EngineOptions:
    """Engine knobs; ``None`` means "clsviz picks the default for this machine"."""

    use_gpu: bool = False
    gpu_mem: int = 8000
    gpu_id: int = 0
    use_tensorrt: bool = False
    precision: str = "fp32"
    ir_optim: bool = True
    enable_mkldnn: bool | None = None
    cpu_threads: int | None = None
    batch_size: int = 1
    #: ONNX Runtime only: let its worker threads spin-wait for work (None = off). On is what a
    #: deployment running only ONNX Runtime should use (ONNX Runtime's own default: no wake-up
    #: per operator, faster on small models); off keeps it from slowing other engines in the
    #: same process (its spinning made the predictor 2× slower here). Other engines ignore it.
    spinning: bool | None = None

    def __post_init__(self):
        for f in ("use_gpu", "use_tensorrt", "ir_optim", "enable_mkldnn", "spinning"):
            object.__setattr__(self, f, _bool(getattr(self, f), f))
        if self.precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for f, lo in (("batch_size", 1), ("gpu_mem", 1), ("gpu_id", 0)):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise OptionError(f"{f} must be an integer ≥ {lo}, got {v!r}")
        if self.cpu_threads is not None and (
            not isinstance(self.cpu_threads, (int, np.integer))
            or isinstance(self.cpu_threads, bool)
            or self.cpu_threads < 1
        ):
            raise OptionError(f"cpu_threads must be an integer ≥ 1, got {self.cpu_threads!r}")
        if self.cpu_threads is not None and self.cpu_threads > max_threads():
            # Paddle starts that many threads at once: 100000 aborted the process (SIGABRT)
            raise OptionError(
                f"cpu_threads is {self.cpu_threads}; allowed: 1 to {max_threads()} "
                f"(4 × the {os.cpu_count() or 1} CPUs here)",
                hint="more threads than cores only slow the engines down",
            )

    @classmethod
    def from_kwargs(cls, **kw) -> EngineOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise OptionError(f"unknown engine option(s) {unknown}", hint=f"known options: {sorted(known)}")
        return cls(**{k: v for k, v in kw.items() if v is not None or k == "enable_mkldnn"})

    @property
    def threads(self) -> int:
        return self.cpu_threads or default_threads()

    @property
    def mkldnn(self) -> bool:
        """oneDNN defaults on for CPU runs (2x faster than plain CPU kernels here)."""
        return (not self.use_gpu) if self.enable_mkldnn is None else bool(self.enable_mkldnn)


def _check_top_k(top_k) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise OptionError(f"top_k must be an integer ≥ 1, got {top_k!r}")
    return int(top_k)


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """A built engine plus the bundle's preprocessing and labels.

    Subclasses implement :meth:`_build` and :meth:`forward`.
    """

    mode: str = "?"
    #: where the engine runs: ``"in-process"``, or ``"worker process"`` (each call is then a
    #: pipe round trip, and the engine's memory is the worker's, not this process's)
    isolation: str = "in-process"

    def __init__(self, config: BundleConfig, options: EngineOptions, *, source: str = ""):
        self.config = with_default_labels(config)  # a 1000-class model without labels: ImageNet-1k
        self.options = options
        self.source = source
        rss0 = rss_mb()
        t0 = time.perf_counter()
        self._build()
        self.build_seconds = time.perf_counter() - t0
        #: how much this process's RSS grew while the engine was built (MiB)
        self.build_rss_mb = rss_mb() - rss0

    # -- engine-specific ----------------------------------------------------------------
    def _build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """The bare engine call: NCHW float32 → [N, classes] float32."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.mode

    def raw_call(self) -> RawCall | None:
        """The engine's bare call (see :class:`RawCall`), or None where there is none in this
        process (an engine in a worker process: each call is a pipe round trip)."""
        return None

    def threads_scope(self):
        """A context in which Paddle's native CPU kernels use ``options.threads`` threads.

        Paddle's thread count is process-wide: the engines that run Paddle in this process enter
        this around each engine call, and the caller's count is put back afterwards; nothing is
        written when it already is right.
        """
        return _threads_scope(None if self.options.use_gpu else self.options.threads)

    def close(self) -> None:
        """Release engine resources (idempotent)."""

    # -- shared ---------------------------------------------------------------------------
    @property
    def class_num(self) -> int | None:
        return self.config.class_num

    @property
    def labels(self):
        return self.config.labels

    def preprocess(self, images: Images) -> np.ndarray:
        """Images (path, PIL, ndarray, bytes, or a list/folder of them) → NCHW float32."""
        items = expand_images(images)
        pre = self.config.preprocess
        return np.stack([pre(img) for img in items])

    def check_output(self, out: np.ndarray, n: int) -> np.ndarray:
        out = np.asarray(out)
        if out.ndim != 2 or out.shape[0] != n:
            raise EngineError(
                f"the network's output has shape {list(out.shape)}; expected a class vector [{n}, classes]",
                path=self.source,
                hint="is this an image classifier? detectors and segmenters are not supported",
            )
        if self.config.class_num and out.shape[1] != self.config.class_num:
            raise EngineError(
                f"the network outputs {out.shape[1]} classes but the config says {self.config.class_num}",
                path=self.source,
            )
        if not np.isfinite(out).all():  # NaN scores would still sort into a confident-looking top-k
            bad = int((~np.isfinite(out)).any(axis=1).sum())
            raise EngineError(
                f"the network produced NaN or infinite outputs for {bad} of {n} images",
                path=self.source,
                hint="are the weights damaged (NaN/inf values)?",
            )
        return out

    def topk(self, outputs: np.ndarray, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs [N, classes] → top-k ``(class ids [N, k], probabilities [N, k])``, best first."""
        outputs = np.asarray(outputs)
        k = min(_check_top_k(top_k), outputs.shape[-1])
        probs = outputs if self.config.softmax else softmax(outputs)
        idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        return idx, np.take_along_axis(probs, idx, axis=-1)

    def postprocess(self, outputs: np.ndarray, top_k: int = 5, names: Sequence[str] | None = None) -> list[Prediction]:
        """Raw outputs → top-k :class:`Prediction` per row (scores are probabilities)."""
        idx, probs = self.topk(outputs, top_k)
        names = names or [f"#{i}" for i in range(len(idx))]
        return [
            Prediction(
                image=names[r],
                mode=self.mode,
                topk=tuple(TopK(int(c), self.config.label(int(c)), float(p)) for c, p in zip(idx[r], probs[r])),
            )
            for r in range(len(idx))
        ]

    def run_batches(self, batch: np.ndarray) -> np.ndarray:
        """``forward`` in chunks of ``options.batch_size``."""
        bs = self.options.batch_size
        outs = [
            self.check_output(self.forward(batch[i : i + bs]), len(batch[i : i + bs])) for i in range(0, len(batch), bs)
        ]
        return np.concatenate(outs, axis=0)

    def iter_predict(self, images: Images, top_k: int = 5) -> Iterator[Prediction]:
        """:meth:`predict`, one image at a time: only ``options.batch_size`` images are decoded,
        preprocessed and run at once, so memory stays flat however many images there are."""
        items = expand_images(images)
        bs = self.options.batch_size
        for start in range(0, len(items), bs):
            chunk = items[start : start + bs]
            outputs = self.check_output(self.forward(self.preprocess(chunk)), len(chunk))
            yield from self.postprocess(outputs, top_k, [image_name(x, start + i) for i, x in enumerate(chunk)])

    def predict(self, images: Images, top_k: int = 5) -> list[Prediction]:
        """Top-k predictions for one image or many (streamed batch by batch; see :meth:`iter_predict`)."""
        return list(self.iter_predict(images, top_k))

    def explain(
        self,
        images: Images,
        *,
        method: str = "gradcam",
        target: int | Sequence[int | None] | None = None,
        layer: str | None = None,
        **options,
    ) -> list:
        """Saliency maps of ``images`` with this engine: :func:`clsviz.explain` (gradcam,
        gradcam++ in the dygraph mode; occlusion in every mode)."""
        from ..explain import explain  # noqa: PLC0415 - a task above the engines (see pyproject)

        return explain(self, images, method=method, target=target, layer=layer, **options)

    def score_batch(self, images: Images, top_k: int = 1) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """One batch of images → ``(class ids [N, k], probabilities [N, k], errors [N])``.

        The lean, array form of :meth:`predict` that ``clsviz.evaluate`` runs on a whole folder,
        locally and in each Ray actor.  An image that cannot be read does not stop the batch:
        its row holds ids -1, probabilities NaN and the :class:`ImageError` message.
        """
        _check_top_k(top_k)
        items = expand_images(images)
        pre = self.config.preprocess
        arrays: list[np.ndarray] = []
        errors: list[str | None] = []
        for item in items:
            try:
                arrays.append(pre(item))
                errors.append(None)
            except ImageError as e:
                errors.append(str(e))
        ok = [i for i, e in enumerate(errors) if e is None]
        if ok:
            idx, p = self.topk(self.run_batches(np.stack(arrays)), top_k)
            k = idx.shape[1]
        else:
            k = min(int(top_k), self.class_num or int(top_k))
        ids = np.full((len(items), k), -1, dtype=np.int64)
        probs = np.full((len(items), k), np.nan, dtype=np.float64)
        if ok:
            ids[ok], probs[ok] = idx, p
        return ids, probs, errors

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} mode={self.mode} model={self.config.model_name!r} "
            f"classes={self.config.class_num} build={self.build_seconds:.2f}s>"
        )

    def _repr_html_(self) -> str:
        o = self.options
        return (
            f"<div><b>{html.escape(self.mode)}</b> classifier · model "
            f"<code>{html.escape(str(self.config.model_name))}</code> · {self.config.class_num} classes"
            f" · built in {self.build_seconds:.2f}s<br><small>{html.escape(self.describe())} · "
            f"batch {o.batch_size}, threads {o.threads}</small>"
            + (f"<br><small>{html.escape(self.config.labels_note)}</small>" if self.config.labels_note else "")
            + "</div>"
        )
