"""Interactive widgets for notebooks and dashboards — the only clsviz module that imports ipywidgets.

    >>> from clsviz.widgets import Explorer
    >>> ex = Explorer()          # the bundled demo model and the sample images
    >>> ex                       # pick modes / options / images, press Run
    >>> ex.run()                 # …or run it from code; ex.value is the last Comparison

``Explorer``     a model + images + modes + engine options → top-k, latency and agreement
``ExportPanel``  checkpoint + architecture → inference bundle (:func:`clsviz.export`)
``FormatTour``   what kind of Paddle model a path is, what each file holds; two side by side
``FileChooser``  the small filesystem picker the three panels share

Each panel is an ``ipywidgets.VBox`` with a ``value`` trait (the last result), its
controls as attributes, and an ``output`` area where results and errors appear.
Work happens in the plain clsviz API; the widgets only collect arguments and show
results through their ``_repr_html_``.
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import tempfile
import weakref
from pathlib import Path

try:
    import ipywidgets as W
    import traitlets
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("clsviz.widgets needs ipywidgets: pip install 'clsviz[notebooks]'") from None

import re

from . import demo
from . import inspect as inspect_mod
from ._paddle import bf16_available
from .archs import list_models, model_info, model_spec
from .bundle import BundleConfig
from .compare import compare
from .demo import DEMO_CHECKPOINT
from .demo.train import DEMO_PREPROCESS
from .engines import ALL_MODES, MODE_HELP, MODES, EngineOptions, capabilities, load, load_config
from .engines.base import default_threads
from .errors import ClsvizError, OptionError
from .explain import report_section
from .export import export
from .formats import detect
from .recommend import CANDIDATES, recommend
from .render import agreement_badge, failed_list, latency_table, top1_table
from .render import short_name as _short
from .results import human_size
from .transforms import IMAGE_SUFFIXES, expand_images, image_name, load_image
from .viz import fig_to_data_uri, latency_bars, topk_bars

__all__ = ["Explorer", "ExportPanel", "FormatTour", "FileChooser", "show_error"]

MODEL_SUFFIXES, MODEL_NAMES = detect.MODEL_SUFFIXES, detect.MODEL_NAMES
FROM_BUNDLE = "(from the bundle)"
MAX_ENGINES = 6  # engines an Explorer keeps built; the least recently used is closed first
CSS = """
<style>
.clsviz-card{border:1px solid #e0e0e0;border-radius:6px;padding:6px 8px;background:#fff}
.clsviz-card h4{margin:0 0 2px 0;font-size:13px}
.clsviz-card small{color:#616161}
.clsviz-badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:600}
.clsviz-table{border-collapse:collapse;font-size:12px}
.clsviz-table td,.clsviz-table th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}
.clsviz-table td:first-child,.clsviz-table th:first-child{text-align:left}
.clsviz-table .badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;
  background:#dcfce7;color:#16a34a}
.clsviz-legend{margin:4px 0;color:#616161;max-width:560px}
</style>
"""


# -- small helpers -----------------------------------------------------------------------------
def _esc(x) -> str:
    return html.escape(str(x))


def _arch_info(name) -> str:
    """One line about a registered architecture: family, PaddleX name, parameters, FLOPs at 224."""
    if not name or name == FROM_BUNDLE:
        return ""
    try:
        i = model_info(name)
    except ClsvizError:
        return ""
    bits = [_esc(i.family)]
    if i.paddlex_name:
        bits.append(f"PaddleX <code>{_esc(i.paddlex_name)}</code>")
    if i.params is not None:
        bits.append(f"{i.params / 1e6:.2f} M params")
    if i.flops is not None:
        bits.append(f"{i.flops / 1e9:.2f} GFLOPs @224")
    return "<small>" + " · ".join(bits) + "</small>"


def _arch_dropdown(options, arch, value=None):
    """The architecture list (every registered network, both naming schemes accepted) + its info line."""
    kw = {} if value is None else {"value": value}
    dd = W.Dropdown(options=options, description="arch", layout=W.Layout(width="100%"), **kw)
    if arch is not None:
        dd.value = model_spec(arch).name if ":" not in arch else arch
    info = W.HTML(_arch_info(dd.value))
    dd.observe(lambda c: setattr(info, "value", _arch_info(c["new"])), names="value")
    return dd, info


def _html_outputs(*fragments: str) -> tuple:
    """Output-widget outputs for HTML fragments (works with and without a live kernel)."""
    return tuple(
        {"output_type": "display_data", "metadata": {}, "data": {"text/html": f, "text/plain": _plain(f)}}
        for f in fragments
    )


def _plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<style.*?</style>|<[^>]+>", " ", fragment, flags=re.S)).strip()[:2000]


def error_html(e: BaseException) -> str:
    """The HTML an error shows in a panel: a clsviz error's own ``_repr_html_``, else a plain box."""
    if isinstance(e, ClsvizError):
        return e._repr_html_()
    first = (str(e).strip().splitlines() or [""])[0]
    return (
        f'<div style="border-left:4px solid #c62828;padding:4px 8px;background:#fff5f5">'
        f"<b>unexpected {_esc(type(e).__name__)}</b>: {_esc(first)}"
        f"<br><small>this is not a clsviz error message; please report it</small></div>"
    )


def show_error(output: W.Output, e: BaseException) -> None:
    """Show ``e`` in ``output`` (replacing what was there)."""
    output.outputs = _html_outputs(error_html(e))


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _thumbnail(item, size: int) -> bytes:
    img = load_image(item).copy()
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _package_root() -> Path:
    return Path(__file__).resolve().parent


def demo_checkpoint() -> Path | None:
    """The bundled demo checkpoint, if this install has one."""
    return DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_file() else None


def sample_images_folder() -> Path | None:
    """``sample_images/`` of the working tree (cwd, its parent, or beside the package), if it has images."""
    for base in (Path.cwd(), Path.cwd().parent, _package_root().parent):
        p = base / "sample_images"
        if p.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()):
            return p
    return None


def _guarded(output, fn):
    """A widget callback that shows any error in ``output`` instead of losing it in the log."""

    def handler(*_):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every error is shown, none swallowed
            show_error(output, e)

    return handler


# -- FileChooser -------------------------------------------------------------------------------
class FileChooser(W.VBox):
    """Browse folders with a ``Select``; *Select* picks the highlighted entry or the folder itself.

    ``value`` is the picked path ('' until one is picked).  ``suffixes`` limits the files
    listed (folders are always listed); ``on_pick(path)`` is called after each pick.
    """

    value = traitlets.Unicode("")

    def __init__(self, start=None, *, suffixes=MODEL_SUFFIXES, names=MODEL_NAMES, on_pick=None, rows: int = 8):
        super().__init__()
        start = Path(start) if start is not None else Path.cwd()
        if start.is_file():
            start = start.parent
        self._suffixes = tuple(suffixes) if suffixes else None
        self._names = tuple(names or ())
        self._on_pick = on_pick
        self.folder = W.Dropdown(description="", layout=W.Layout(width="100%"))
        self.listing = W.Select(options=[], rows=rows, layout=W.Layout(width="100%"))
        self.show_all = W.Checkbox(value=False, description="all files", indent=False, layout=W.Layout(width="90px"))
        self.pick = W.Button(description="Select", icon="check", button_style="info", layout=W.Layout(width="100px"))
        self.note = W.HTML()
        self.children = [
            self.folder,
            self.listing,
            W.HBox([self.pick, self.show_all, self.note], layout=W.Layout(align_items="center")),
        ]
        self._cwd = start.resolve()
        self.folder.observe(self._folder_changed, names="value")
        self.listing.observe(self._entry_changed, names="value")
        self.show_all.observe(lambda _: self._refresh(), names="value")
        self.pick.on_click(lambda _: self.choose())
        self._refresh()

    @property
    def cwd(self) -> Path:
        return self._cwd

    def navigate(self, folder) -> None:
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise OptionError("not a folder", path=folder)
        self._cwd = folder
        self._refresh()

    def selected(self) -> Path:
        """The highlighted file, or the folder shown when none is highlighted."""
        v = self.listing.value
        return Path(v) if v else self._cwd

    def choose(self, path=None) -> Path:
        """Pick ``path`` (default: :meth:`selected`): sets ``value`` and calls ``on_pick``."""
        p = Path(path) if path is not None else self.selected()
        self.value = str(p)
        if self._on_pick is not None:
            self._on_pick(str(p))
        return p

    def _wanted(self, f: Path) -> bool:
        if self.show_all.value or self._suffixes is None:
            return True
        return f.suffix in self._suffixes or f.name in self._names

    def _refresh(self) -> None:
        cwd = self._cwd
        chain = [cwd, *cwd.parents]
        with self.hold_trait_notifications():
            self.folder.unobserve(self._folder_changed, names="value")
            self.folder.options = [(str(p), str(p)) for p in chain]
            self.folder.value = str(cwd)
            self.folder.observe(self._folder_changed, names="value")
        entries = []
        if cwd.parent != cwd:
            entries.append(("📁 ..", "dir:" + str(cwd.parent)))
        try:
            items = sorted(cwd.iterdir(), key=lambda f: (not f.is_dir(), f.name.lower()))
        except OSError as e:
            items = []
            self.note.value = f"<small style='color:#c62828'>{_esc(e.strerror or e)}</small>"
        for f in items:
            if f.name.startswith("."):
                continue
            if f.is_dir():
                mark = "📦" if detect.looks_like_model_folder(f) else "📁"
                entries.append((f"{mark} {f.name}/", "dir:" + str(f)))
            elif self._wanted(f):
                try:
                    size = human_size(f.stat().st_size)
                except OSError:
                    size = "?"
                entries.append((f"📄 {f.name}  ({size})", str(f)))
        self.listing.unobserve(self._entry_changed, names="value")
        self.listing.options = entries
        self.listing.value = None
        self.listing.observe(self._entry_changed, names="value")
        self.note.value = (
            "<small>📦 this folder is a model — <b>Select</b> uses it</small>"
            if detect.looks_like_model_folder(cwd)
            else ""
        )

    def _folder_changed(self, change) -> None:
        if change["new"]:
            self.navigate(change["new"])

    def _entry_changed(self, change) -> None:
        v = change["new"]
        if v and v.startswith("dir:"):
            self.navigate(v[4:])


# -- Explorer ----------------------------------------------------------------------------------
class _Tile(W.VBox):
    """One gallery image: thumbnail + toggle."""

    def __init__(self, key: str, item, thumb: bytes, selected: bool):
        self.key, self.item = key, item
        self.image = W.Image(
            value=thumb, format="png", layout=W.Layout(width="76px", height="76px", object_fit="contain")
        )
        name = Path(key).name if not key.startswith("<") else key
        self.toggle = W.ToggleButton(
            value=selected,
            description=name if len(name) <= 15 else name[:14] + "…",
            tooltip=key,
            icon="check" if selected else "",
            layout=W.Layout(width="112px"),
        )
        self.toggle.observe(self._restyle, names="value")
        self._restyle()
        super().__init__([self.image, self.toggle], layout=W.Layout(align_items="center", width="118px", margin="2px"))

    def _restyle(self, *_):
        self.toggle.icon = "check" if self.toggle.value else ""
        self.toggle.button_style = "success" if self.toggle.value else ""


class Explorer(W.VBox):
    """Run a model in every prediction mode on chosen images; see top-k, latency, agreement.

    ``model``: a bundle folder, an inference model file or a checkpoint (``None`` = the
    bundled demo checkpoint).  ``images``: a folder, or a list of image paths, for the
    gallery (``None`` = ``sample_images/``); ``selected`` ticks the first N of them, or
    the ones named.  ``value`` holds the last
    :class:`clsviz.Comparison`; :meth:`run` does what the Run button does, and raises.
    """

    value = traitlets.Any(None, allow_none=True)

    def __init__(
        self,
        model=None,
        images=None,
        *,
        arch: str | None = None,
        labels=None,
        preprocess=None,
        modes=MODES,
        top_k: int = 3,
        repeats: int = 5,
        warmup: int = 1,
        selected=3,
        chooser_start=None,
    ):
        super().__init__(layout=W.Layout(width="100%"))

        self._engines: dict = {}
        self._exports: dict = {}
        self._tmp = _TmpDir("clsviz-explorer-")
        self._run_items: list = []
        self._run_classifiers: dict = {}
        self._html_cache: dict = {}

        if model is None:
            model, demo_arch, demo_labels, demo_pre = _demo_model()
            arch = arch or demo_arch
            labels = labels or demo_labels
            preprocess = preprocess or demo_pre
        # a checkpoint's preprocessing is not on disk: keep what the caller said, for this path only
        self._preprocess = (str(model), preprocess) if preprocess is not None else None

        # model
        self.model_path = W.Text(
            value="" if model is None else str(model),
            description="model",
            placeholder="bundle folder, inference model file or .pdparams checkpoint",
            layout=W.Layout(width="100%"),
        )
        self.browse = W.ToggleButton(description="Browse…", icon="folder-open", layout=W.Layout(width="120px"))
        start = chooser_start or (Path(model).parent if model else None)
        self.chooser = FileChooser(start, on_pick=self._picked)
        self.chooser.layout.display = "none"
        self.browse.observe(
            lambda c: setattr(self.chooser.layout, "display", None if c["new"] else "none"), names="value"
        )
        self.arch, self.arch_info = _arch_dropdown([FROM_BUNDLE, *list_models()], arch, FROM_BUNDLE)
        self.labels = W.Text(
            value="" if labels is None else str(labels),
            description="labels",
            placeholder="labels.txt (optional, checkpoints only)",
            layout=W.Layout(width="100%"),
        )
        self.img_size = W.BoundedIntText(
            value=224, min=16, max=2048, step=16, description="image size", layout=W.Layout(width="190px")
        )
        self.model_info = W.HTML()
        self._ckpt_box = W.VBox([self.arch, self.arch_info, W.HBox([self.labels]), self.img_size])

        # modes and options
        self.modes = {
            m: W.Checkbox(
                value=m in modes, description=m, indent=False, tooltip=MODE_HELP[m], layout=W.Layout(width="110px")
            )
            for m in ALL_MODES
        }
        self.top_k = W.IntSlider(value=top_k, min=1, max=10, description="top-k", continuous_update=False)
        self.threads = W.BoundedIntText(
            value=default_threads(),
            min=1,
            max=max(64, default_threads()),
            description="threads",
            layout=W.Layout(width="170px"),
        )
        self.batch_size = W.BoundedIntText(value=1, min=1, max=64, description="batch", layout=W.Layout(width="170px"))
        self.precision = W.Dropdown(
            options=_precisions(), value="fp32", description="precision", layout=W.Layout(width="190px")
        )
        self.onednn = W.Checkbox(
            value=True,
            description="oneDNN",
            indent=False,
            tooltip="oneDNN CPU kernels (predictor mode)",
            layout=W.Layout(width="90px"),
        )
        self.ir_optim = W.Checkbox(
            value=True,
            description="IR optim",
            indent=False,
            tooltip="IR graph passes (predictor mode)",
            layout=W.Layout(width="90px"),
        )
        self.repeats = W.BoundedIntText(
            value=repeats, min=1, max=1000, description="repeats", layout=W.Layout(width="170px")
        )
        self.warmup = W.BoundedIntText(
            value=warmup, min=0, max=100, description="warm-up", layout=W.Layout(width="170px")
        )

        # images
        self.gallery = W.HBox(layout=W.Layout(flex_flow="row wrap", max_height="360px", overflow="auto"))
        self.upload = W.FileUpload(accept="image/*", multiple=True, description="Upload")
        self.select_all = W.Button(description="all", layout=W.Layout(width="60px"))
        self.select_none = W.Button(description="none", layout=W.Layout(width="60px"))

        # run
        self.run_button = W.Button(
            description="Run", icon="play", button_style="primary", layout=W.Layout(width="120px")
        )
        self.recommend_button = W.Button(
            description="Recommend",
            icon="trophy",
            tooltip="time every engine × precision on this model and the ticked images; the fastest that agrees",
            layout=W.Layout(width="130px"),
        )
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="260px"))
        self.status = W.HTML("<small>ready</small>")
        self.image_select = W.Dropdown(description="show", layout=W.Layout(width="360px"))
        self.image_count = W.HTML()
        self.explain = W.ToggleButton(
            value=False,
            description="explain",
            icon="eye",
            tooltip="where each mode looked: a saliency map per mode (Grad-CAM in dygraph, occlusion elsewhere)",
            layout=W.Layout(width="110px"),
        )
        self.results_head = W.HBox(
            [
                W.HTML("<b style='color:#37474f'>Results</b>", layout=W.Layout(width="90px")),
                self.image_select,
                self.explain,
            ],
            layout=W.Layout(display="none", align_items="center"),
        )
        self.output = W.Output(layout=W.Layout(width="100%"))

        self._layout()
        self.model_path.observe(lambda _: self._describe_model(), names="value")
        self.upload.observe(_guarded(self.output, self._uploaded), names="value")
        self.select_all.on_click(lambda _: self._select(True))
        self.select_none.on_click(lambda _: self._select(False))
        self.run_button.on_click(_guarded(self.output, self._clicked))
        self.recommend_button.on_click(_guarded(self.output, self._recommend_clicked))
        self.image_select.observe(_guarded(self.output, self._render), names="value")
        self.explain.observe(_guarded(self.output, self._render), names="value")
        self._describe_model()
        self.set_gallery(images if images is not None else sample_images_folder(), selected=selected)
        weakref.finalize(self, _cleanup, self._engines, self._tmp)

    # ---- layout -------------------------------------------------------------------------------
    def _layout(self):
        head = W.HTML(
            "<div style='font-size:18px;font-weight:600'>clsviz Explorer</div>"
            "<small>one model, three ways to run it: the same images through each mode, "
            "side by side</small>"
        )
        section = lambda t: W.HTML(f"<b style='color:#37474f'>{t}</b>")  # noqa: E731
        model_box = W.VBox(
            [section("Model"), W.HBox([self.model_path, self.browse]), self.chooser, self.model_info, self._ckpt_box]
        )
        opts_box = W.VBox(
            [
                section("Modes"),
                W.HBox(list(self.modes.values()), layout=W.Layout(flex_flow="row wrap")),
                section("Engine options"),
                W.HBox([self.threads, self.batch_size]),
                W.HBox([self.precision, self.onednn, self.ir_optim]),
                W.HBox([self.repeats, self.warmup]),
                self.top_k,
            ]
        )
        left = W.VBox(
            [model_box, opts_box],
            layout=W.Layout(width="470px", min_width="470px", flex="0 0 auto", margin="0 16px 0 0"),
        )
        right = W.VBox(
            [
                section("Images"),
                W.HBox(
                    [self.upload, self.select_all, self.select_none, self.image_count],
                    layout=W.Layout(align_items="center"),
                ),
                self.gallery,
            ],
            layout=W.Layout(flex="1 1 0", min_width="0"),
        )
        run_row = W.HBox(
            [self.run_button, self.recommend_button, self.progress, self.status],
            layout=W.Layout(align_items="center", margin="8px 0"),
        )
        self.children = [head, W.HBox([left, right]), run_row, self.results_head, self.output]

    # ---- model ----------------------------------------------------------------------------------
    def _picked(self, path: str):
        self.model_path.value = path
        self.browse.value = False

    def _describe_model(self):
        path = self.model_path.value.strip()
        if not path:
            self.model_info.value = "<small>choose a model</small>"
            return
        try:
            files = detect.resolve(path)
        except ClsvizError as e:
            self.model_info.value = f"<small style='color:#c62828'>{_esc(e)}</small>"
            return
        kind = files.kind.replace("_", " ")
        if files.config_file is not None:
            try:
                cfg = BundleConfig.read(files.config_file)
                kind += f" · {cfg.model_name or '?'} · {cfg.class_num or '?'} classes"
            except ClsvizError:
                kind += " · unreadable inference.yml"
        if files.has_program:
            self._ckpt_box.layout.display = "none"
            caps = capabilities(files)  # the one answer load gives too
            for c in caps:
                self.modes[c.mode].tooltip = c.detail + (f" ({c.hint})" if c.hint and not c.available else "")
            off = [c for c in caps if not c.available]
            extra = (
                "runs in every mode"
                if not off
                else "runs in "
                + ", ".join(c.mode for c in caps if c.available)
                + "; not "
                + "; ".join(f"{c.mode}: {c.detail}" for c in off)
            )
            self.model_info.value = f"<small>{_esc(kind)} · {_esc(extra)}</small>" + _images_line(path)
        else:
            self._ckpt_box.layout.display = None
            for m, cb in self.modes.items():  # exported on Run, then every mode runs it
                cb.tooltip = MODE_HELP[m]
            sib = Path(path).parent / "labels.txt" if Path(path).is_file() else None
            if not self.labels.value and sib is not None and sib.is_file():
                self.labels.value = str(sib)
            pre = self._preprocess[1] if self._preprocess and self._preprocess[0] == path else None
            self.img_size.disabled = pre is not None
            how = ""
            if pre is not None:
                self.img_size.value = pre.crop_hw[0]
                how = f" · resize {pre.resize_short}, crop {pre.crop_hw[0]}×{pre.crop_hw[1]}"
            self.model_info.value = (
                f"<small>{_esc(kind)}: weights only, the network comes from code "
                f"(arch){how}; exported to a temporary inference model on Run</small>"
            )

    def _bundle(self) -> Path:
        """The model as a bundle folder: itself, or a (cached) export of a checkpoint."""
        path = self.model_path.value.strip()
        if not path:
            raise OptionError("no model chosen", hint="type a path or use Browse…")
        files = detect.resolve(path)
        if files.has_program:
            return Path(path)
        arch = None if self.arch.value == FROM_BUNDLE else self.arch.value
        if arch is None:
            raise OptionError(
                "a checkpoint holds only weights; the network comes from code",
                path=path,
                hint="choose its architecture in the arch list",
            )
        labels = self.labels.value.strip() or None
        pre = self._preprocess[1] if self._preprocess and self._preprocess[0] == path else None
        size = pre.crop_hw if pre is not None else (int(self.img_size.value),) * 2
        key = (str(Path(path).resolve()), _stamp(Path(path)), arch, labels, size, pre)
        if key not in self._exports:
            out = self._tmp.path() / f"bundle{len(self._exports)}"
            self._status(f"exporting {Path(path).name} as {arch} …")
            res = export(arch, path, out, labels=labels, image_shape=(3, *size), preprocess=pre)
            self._exports[key] = res
            if res.labels_note:
                self.model_info.value += f"<br><small>{_esc(res.labels_note)}</small>"
        return self._exports[key].out_dir

    def engine_options(self, mode: str) -> dict:
        """The engine options the controls say, for ``mode`` (predictor-only knobs only there)."""
        o = {"cpu_threads": int(self.threads.value), "batch_size": int(self.batch_size.value)}
        if mode == "predictor":
            o.update(
                enable_mkldnn=bool(self.onednn.value),
                ir_optim=bool(self.ir_optim.value),
                precision=self.precision.value,
            )
        elif mode == "openvino":
            o.update(precision=self.precision.value)
        EngineOptions.from_kwargs(**o)  # validate before any engine is built
        return o

    def classifier(self, mode: str):
        """The engine for ``mode`` with the current model and options (built once, then cached)."""
        bundle = self._bundle()
        opts = self.engine_options(mode)
        key = (str(bundle.resolve()), _stamp(bundle), mode, tuple(sorted(opts.items())))
        clf = self._engines.pop(key, None)
        if clf is None:
            self._status(f"building {mode} …")
            clf = load(bundle, mode=mode, **opts)
        self._engines[key] = clf  # most recently used last
        while len(self._engines) > MAX_ENGINES:
            self._engines.pop(next(iter(self._engines))).close()
        return clf

    # ---- images ---------------------------------------------------------------------------------
    def set_gallery(self, images, *, selected=None):
        """Fill the gallery from a folder or a list of paths.

        ``selected``: how many to tick (the first N), or the file names to tick; ``None``: all.
        """
        tiles = []
        if images is not None:
            items = expand_images(images)
            for i, item in enumerate(items):
                key = image_name(item, i)
                if selected is None or isinstance(selected, int):
                    ticked = selected is None or i < selected
                else:
                    ticked = key in selected or Path(key).name in selected
                tiles.append(_Tile(key, item, _thumbnail(item, 96), ticked))
        for t in tiles:
            t.toggle.observe(lambda _: self._count(), names="value")
        self.gallery.children = tiles
        self._count()
        if not tiles:
            self.gallery.children = [W.HTML("<small>no images yet: upload some, or pass images=</small>")]

    @property
    def tiles(self) -> list:
        return [t for t in self.gallery.children if isinstance(t, _Tile)]

    def selected_images(self) -> list:
        """The ticked images, in gallery order (paths, or PIL images for uploads)."""
        return [t.item for t in self.tiles if t.toggle.value]

    def _count(self):
        n = sum(t.toggle.value for t in self.tiles)
        self.image_count.value = f"<small>&nbsp;{n} of {len(self.tiles)} ticked</small>"

    def _select(self, on: bool):
        for t in self.tiles:
            t.toggle.value = on

    def _uploaded(self, change=None):
        new = []
        for f in self.upload.value:
            name = f"<upload> {f['name']}"
            raw = bytes(f["content"])
            img = load_image(raw)
            img.filename = name  # type: ignore[attr-defined]  # how image_name() names it
            thumb = _thumbnail(img, 96)
            new.append(_Tile(name, img, thumb, True))
        if new:
            for t in new:
                t.toggle.observe(lambda _: self._count(), names="value")
            self.gallery.children = [*new, *self.tiles]
            self.upload.value = ()
            self._count()

    # ---- run ------------------------------------------------------------------------------------
    def _status(self, text: str):
        self.status.value = f"<small>{_esc(text)}</small>"

    def _clicked(self):
        self.run_button.disabled = True
        try:
            self.run()
        except Exception:
            self.progress.bar_style = "danger"
            self._status("failed — see below")
            raise
        finally:
            self.run_button.disabled = False

    def run(self):
        """Build (or reuse) the chosen engines, compare them on the ticked images, show the result.

        Returns the :class:`clsviz.Comparison` (also in ``value``).  Errors propagate.
        """
        modes = [m for m, cb in self.modes.items() if cb.value]
        if not modes:
            raise OptionError("no mode ticked", hint="tick at least one of " + ", ".join(ALL_MODES))
        images = self.selected_images()
        if not images:
            raise OptionError("no image ticked", hint="tick an image in the gallery or upload one")
        self.progress.bar_style = ""
        self.progress.value, self.progress.max = 0, len(modes) + 1
        classifiers = {}
        for i, m in enumerate(modes):
            try:
                classifiers[m] = self.classifier(m)
            except ClsvizError as e:  # compare runs the others and shows this one as FAILED
                classifiers[m] = e
            self.progress.value = i + 1
        if all(isinstance(c, BaseException) for c in classifiers.values()):
            raise next(iter(classifiers.values()))  # nothing to run: the (model's) error itself

        def progress(step, total, name):
            self.progress.max = len(modes) + total
            self.progress.value = len(modes) + step
            self._status(f"running {name} ({step}/{total})")

        cmp = compare(
            images,
            classifiers,
            top_k=int(self.top_k.value),
            repeats=int(self.repeats.value),
            warmup=int(self.warmup.value),
            progress=progress,
        )
        self._run_items = list(images)
        self._run_classifiers = classifiers
        self._html_cache = {}
        self.value = cmp
        self.progress.bar_style = "success"
        self._status(f"done: {len(images)} image(s) × {len(modes)} mode(s)")
        names = [_short(n) for n in cmp.images]
        self.image_select.options = [(n, i) for i, n in enumerate(names)]
        self.image_select.value = 0
        self.image_select.layout.visibility = "visible" if len(names) > 1 else "hidden"
        self.results_head.layout.display = None
        self._render()
        return cmp

    def _recommend_clicked(self):
        self.recommend_button.disabled = self.run_button.disabled = True
        try:
            self.recommend()
        except Exception:
            self.progress.bar_style = "danger"
            self._status("failed — see below")
            raise
        finally:
            self.recommend_button.disabled = self.run_button.disabled = False

    def recommend(self):
        """:func:`clsviz.recommend` on the current model and the ticked images (threads and batch
        from the controls); shows its table and plot below and returns the
        :class:`~clsviz.recommend.Recommendation`."""
        images = self.selected_images() or None
        self.progress.bar_style = ""
        self.progress.value, self.progress.max = 0, len(CANDIDATES) + 1

        def say(text):
            self.progress.value = min(self.progress.value + 1, self.progress.max)
            self._status(text)

        rec = recommend(
            self._bundle(),
            images,
            cpu_threads=int(self.threads.value),
            batch_size=int(self.batch_size.value),
            repeats=max(5, int(self.repeats.value)),
            progress=say,
        )
        self.progress.value, self.progress.bar_style = self.progress.max, "success"
        self._status(f"recommended: {rec.best.name}" if rec.best else "no engine agrees")
        self.results_head.layout.display = "none"
        self.output.outputs = _html_outputs(CSS + rec._repr_html_())
        return rec

    # ---- results --------------------------------------------------------------------------------
    def _render(self, *_):
        cmp = self.value
        if cmp is None:
            self.output.outputs = ()
            return
        i = self.image_select.value or 0
        why = self._explain_row(cmp, i) if self.explain.value else ""
        self.output.outputs = _html_outputs(
            CSS + agreement_badge(cmp) + failed_list(cmp),
            self._image_row(cmp, i),
            why,
            self._latency_block(cmp),
            _top1_details(cmp),
        )

    def _explain_row(self, cmp, i: int) -> str:
        """Saliency maps of image ``i``, one per mode of the last run (computed once, then cached)."""

        key = ("explain", i)
        if key not in self._html_cache:
            self._status("explaining …")
            clfs = {
                m: c for m, c in self._run_classifiers.items() if m in cmp.modes and not isinstance(c, BaseException)
            }
            self._html_cache[key] = (
                "<div class='clsviz-card clsviz-explain'>"
                + report_section([self._run_items[i]], clfs, captions=[f"<b>{_esc(_short(cmp.images[i]))}</b>"])
                + "</div>"
            )
            self._status(f"explained {_short(cmp.images[i])} in {len(clfs)} mode(s)")
        return self._html_cache[key]

    def _image_row(self, cmp, i: int) -> str:
        key = ("row", i)
        if key not in self._html_cache:
            name = cmp.images[i]
            thumb = _thumbnail(self._run_items[i], 160)
            cards = [
                f"<div class='clsviz-card'><h4>{_esc(_short(name))}</h4>"
                f"<img class='clsviz-input' src='{_png_uri(thumb)}' style='width:160px'></div>"
            ]
            for m, rep in cmp.modes.items():
                pred = rep.predictions[i]
                cards.append(
                    f"<div class='clsviz-card clsviz-mode' data-mode='{_esc(m)}' style='width:250px'>"
                    f"{_topk_chart(pred)}<br><small>{_esc(rep.description)}</small></div>"
                )
            self._html_cache[key] = (
                "<div class='clsviz-row' style='display:flex;flex-wrap:wrap;gap:10px;"
                "align-items:flex-start;margin:8px 0'>" + "".join(cards) + "</div>"
            )
        return self._html_cache[key]

    def _latency_block(self, cmp) -> str:
        if "latency" not in self._html_cache:
            chart = _latency_chart(cmp)
            self._html_cache["latency"] = (
                "<div class='clsviz-card clsviz-latency' style='display:flex;gap:16px;flex-wrap:wrap;"
                "align-items:flex-start'>" + chart + "<div>" + latency_table(cmp) + "</div></div>"
            )
        return self._html_cache["latency"]

    def close(self):
        """Release the engines and the temporary export folder, then close the widgets."""
        _cleanup(self._engines, self._tmp)
        super().close()


def _demo_model():
    """(checkpoint, arch, labels, preprocessing) of the bundled demo; Nones where missing."""
    if not demo.DEMO_CHECKPOINT.is_file():
        return None, None, None, None
    pre = DEMO_PREPROCESS
    labels = demo.DEMO_LABELS if demo.DEMO_LABELS.is_file() else None
    return demo.DEMO_CHECKPOINT, demo.DEMO_ARCH, labels, pre


def _precisions() -> list[str]:
    return ["fp32", "bf16"] if bf16_available()[0] else ["fp32"]


def _images_line(path) -> str:
    """What an image goes through for the program at ``path`` (its input signature's
    ``Preprocess``), or why a real image cannot be fed to it."""

    try:
        pre = load_config(path).preprocess
    except ClsvizError as e:
        return f"<br><small style='color:#c62828'>images: {_esc(e)}</small>"
    return f"<br><small>images: {_esc(pre.describe())} ({_esc(pre.backend)})</small>"


def _stamp(p: Path) -> float:
    """Latest modification time under ``p`` (so a re-export is not served from the cache)."""
    try:
        if p.is_dir():
            # not the ONNX form the runtimes add (converting must not look like a re-export)
            return max(
                [
                    *(
                        f.stat().st_mtime
                        for f in p.iterdir()
                        if not f.name.startswith(".") and f.name != "inference.onnx"
                    )
                ],
                default=0.0,
            )
        return p.stat().st_mtime
    except OSError:
        return 0.0


class _TmpDir:
    """A temporary folder made on first use and removed by :meth:`remove`."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._path: Path | None = None

    def path(self) -> Path:
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix=self.prefix))
        return self._path

    def remove(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


def _cleanup(engines: dict, tmp: _TmpDir) -> None:
    for clf in engines.values():
        try:
            clf.close()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
    engines.clear()
    tmp.remove()


# -- result HTML: the pure renderers live in clsviz.render --------------------------------------
def _top1_details(cmp) -> str:
    return f"<details class='clsviz-top1'><summary>top-1 of every image</summary>{top1_table(cmp)}</details>"


def _figure_img(fig, cls: str, width: int) -> str:
    return f"<img class='clsviz-chart {cls}' src='{fig_to_data_uri(fig)}' style='width:{width}px'>"


def _topk_chart(pred) -> str:
    return _figure_img(topk_bars(pred, width=2.4), "clsviz-topk", 250)


def _latency_chart(cmp) -> str:
    return _figure_img(latency_bars(cmp), "clsviz-latency-chart", 560)


# -- ExportPanel -------------------------------------------------------------------------------
class ExportPanel(W.VBox):
    """Checkpoint + architecture → inference bundle, with the files it wrote and their roles.

    ``value`` holds the last :class:`clsviz.ExportResult`; :meth:`export` does what the
    button does, and raises.
    """

    value = traitlets.Any(None, allow_none=True)

    def __init__(
        self,
        checkpoint=None,
        arch: str | None = None,
        out_dir=None,
        *,
        labels=None,
        class_num: int | None = None,
        img_size: int = 224,
        force: bool = False,
    ):
        super().__init__(layout=W.Layout(width="100%"))

        self.checkpoint = W.Text(
            value="" if checkpoint is None else str(checkpoint),
            description="checkpoint",
            placeholder="model.pdparams or a fluid persistables folder",
            layout=W.Layout(width="100%"),
        )
        self.browse = W.ToggleButton(description="Browse…", icon="folder-open", layout=W.Layout(width="110px"))
        self.chooser = FileChooser(
            Path(checkpoint).parent if checkpoint else None, suffixes=(".pdparams",), names=(), on_pick=self._picked
        )
        self.chooser.layout.display = "none"
        self.browse.observe(
            lambda c: setattr(self.chooser.layout, "display", None if c["new"] else "none"), names="value"
        )
        # PP-LCNet_x1_0 is what PaddleX's docs train and PaddleClas's configs use most
        self.arch, self.arch_info = _arch_dropdown(list_models(), arch, "PPLCNet_x1_0")
        self.class_num = W.BoundedIntText(
            value=class_num or 0,
            min=0,
            max=1_000_000,
            description="classes",
            tooltip="0 = read it from the checkpoint",
            layout=W.Layout(width="200px"),
        )
        self.labels = W.Text(
            value="" if labels is None else str(labels),
            description="labels",
            placeholder="labels.txt (optional)",
            layout=W.Layout(width="100%"),
        )
        self.img_size = W.BoundedIntText(
            value=img_size, min=16, max=2048, step=16, description="image size", layout=W.Layout(width="200px")
        )
        self.out_dir = W.Text(
            value="" if out_dir is None else str(out_dir),
            description="output",
            placeholder="folder for the inference bundle",
            layout=W.Layout(width="100%"),
        )
        self.force = W.Checkbox(value=force, description="replace a non-empty output folder", indent=False)
        self.export_button = W.Button(description="Export", icon="download", button_style="primary")
        self.output = W.Output(layout=W.Layout(width="100%"))
        self.export_button.on_click(_guarded(self.output, self._clicked))
        self.children = [
            W.HTML(
                "<div style='font-size:16px;font-weight:600'>Export a checkpoint</div>"
                "<small>rebuild the network from code, load the weights strictly, save an inference "
                "model + sidecar, verify it against the network</small>"
            ),
            W.HBox([self.checkpoint, self.browse]),
            self.chooser,
            self.arch,
            self.arch_info,
            W.HBox([self.class_num, self.img_size]),
            self.labels,
            self.out_dir,
            self.force,
            self.export_button,
            self.output,
        ]

    def _picked(self, path: str):
        self.checkpoint.value = path
        self.browse.value = False

    def _clicked(self):
        self.export_button.disabled = True
        try:
            self.export()
        finally:
            self.export_button.disabled = False

    def export(self):
        """Export with the current settings; shows and returns the :class:`clsviz.ExportResult`."""
        ckpt = self.checkpoint.value.strip()
        out = self.out_dir.value.strip()
        if not ckpt:
            raise OptionError("no checkpoint chosen", hint="type a path or use Browse…")
        if not out:
            raise OptionError("no output folder given", hint="type where the bundle should go")
        size = int(self.img_size.value)
        self.output.outputs = _html_outputs("<small>exporting …</small>")
        res = export(
            self.arch.value,
            ckpt,
            out,
            class_num=int(self.class_num.value) or None,
            labels=self.labels.value.strip() or None,
            image_shape=(3, size, size),
            force=bool(self.force.value),
        )
        self.value = res
        self.output.outputs = _html_outputs(res._repr_html_())
        return res


# -- FormatTour --------------------------------------------------------------------------------
class FormatTour(W.VBox):
    """Path → what kind of Paddle model it is and what each file holds (:func:`clsviz.inspect`).

    With a second path in ``compare_with`` it puts the two side by side
    (:func:`clsviz.inspect.compare`).  ``value`` holds the last report.
    """

    value = traitlets.Any(None, allow_none=True)

    def __init__(self, path=None, *, compare_with=None):
        super().__init__(layout=W.Layout(width="100%"))
        self.path = W.Text(
            value="" if path is None else str(path),
            description="path",
            placeholder="a model file or folder",
            layout=W.Layout(width="100%"),
        )
        self.compare_with = W.Text(
            value="" if compare_with is None else str(compare_with),
            description="compare",
            placeholder="optional: a second model to set beside it",
            layout=W.Layout(width="100%"),
        )
        self.browse = W.ToggleButton(description="Browse…", icon="folder-open", layout=W.Layout(width="120px"))
        self.chooser = FileChooser(Path(path).parent if path else None, on_pick=self._picked)
        self.chooser.layout.display = "none"
        self.browse.observe(
            lambda c: setattr(self.chooser.layout, "display", None if c["new"] else "none"), names="value"
        )
        self.inspect_button = W.Button(description="Inspect", icon="search", button_style="primary")
        self.output = W.Output(layout=W.Layout(width="100%"))
        self.inspect_button.on_click(_guarded(self.output, self.inspect))
        self.children = [
            W.HTML(
                "<div style='font-size:16px;font-weight:600'>What is this model?</div>"
                "<small>checkpoint or inference model, which Paddle generation wrote it, what each file "
                "holds, which modes can run it</small>"
            ),
            W.HBox([self.path, self.browse]),
            self.chooser,
            self.compare_with,
            self.inspect_button,
            self.output,
        ]
        if path is not None:
            _guarded(self.output, self.inspect)()

    def _picked(self, path: str):
        self.path.value = path
        self.browse.value = False
        _guarded(self.output, self.inspect)()

    def inspect(self):
        """Inspect the current path (against ``compare_with`` if given); shows and returns the report."""
        p = self.path.value.strip()
        if not p:
            raise OptionError("no path given", hint="type a path or use Browse…")
        other = self.compare_with.value.strip()
        report = inspect_mod.compare(p, other) if other else inspect_mod.inspect(p)
        self.value = report
        self.output.outputs = _html_outputs(report._repr_html_())
        return report
