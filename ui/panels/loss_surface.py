"""Loss-surface panel: a 2-D slice of the real loss around the current weights.

The engine evaluates L(θ + α·d₁ + β·d₂) on a grid, with d₁, d₂ random directions rescaled by filter
normalization (Li et al. 2018), and sends a `LandscapeResult`. Computing it costs one forward pass
per grid point, so it only happens on request: the Compute button (shortcut L), or automatically
every K steps. The engine runs it as a background job (regsim.analyses.jobs) between training
chunks: its events move the progress bar, its coarse preview (a partial result) is drawn at once,
then the full grid replaces it. Cancel (Esc) drops the job; nothing of it reaches the screen.

Losses across a slice span orders of magnitude (a diverged corner can be 10⁶ × the centre), so the
colours default to log₁₀ loss; non-finite points are clipped to the worst finite value for display.
Plot items are created once; drawing only feeds them new data.

Compare mode (two or more runs, `set_runs`): one small map per run, side by side, each titled in its
run's colour with the settings that differ and drawn with its own optimizer path. Compute asks for one
landscape job per run, addressed to that run (the engine's "analyze" command names it), so a newer
request for a run supersedes only that run's older one. Each map is its own run's plane (d₁, d₂ from
that run's path), but the colours share one scale and one set of contour levels, so a wider or deeper
basin reads as such from map to map. With one run the panel is the single-run view above, unchanged.
"""

from __future__ import annotations

import itertools
import textwrap
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from regsim.analyses.jobs import JobEvent
from regsim.analyses.landscape import LandscapeResult
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import set_title as _set_title
from ui.panels.style import style_legend as _style_legend
from ui.panels.style import style_plot_item as _style_plot
from ui.run_colors import run_color, run_settings_text
from ui.theme import Theme
from ui.widgets import LiveLabel, MathLabel, drawable_text

CONTOUR_QUANTILES = (0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)  # contour levels as grid quantiles
PENDING_TIMEOUT_S = 300.0  # a request unanswered this long is presumed lost, so auto mode resumes
_JOB_IDS = itertools.count(1)  # job ids, unique in this process (several panels may ask)
MAX_RUN_MAPS = 4  # Compare mode: one map per run (a comparison holds at most 4, regsim.runs.MAX_RUNS)
RUN_CONTOURS = (0.1, 0.35, 0.7)  # Compare mode: contour levels as quantiles of all runs' maps pooled

SURFACE_TIP = (
    "A slice through the network's loss around its current weights θ: the colour at (α, β) is\n"
    "the objective at θ + α·d₁ + β·d₂, a plane through θ spanned by two directions d₁, d₂.\n"
    "Click for the full explanation."
)

HELP_HTML = """
<h3>What this slice shows</h3>
<p>The network has thousands of weights, so its loss lives in thousands of dimensions. The map shows
a 2-D plane through the current weights θ (the ★): the colour at (α, β) is the objective at
<b>θ + α·d₁ + β·d₂</b>, measured on up to 512 training examples with dropout off.</p>
<p><b>Directions.</b> <i>PCA</i>: d₁, d₂ are the top two principal directions of the recent weight
path (the last ≤ 300 recorded weights, relative to θ), so the plane follows where training went.
<i>Random</i>: Gaussian directions (used while the path is too short for PCA).
Both are <b>filter-normalized</b> (Li et al. 2018): each row of a direction (one neuron's incoming
weights) is rescaled to the norm of the same row of θ; biases and norm parameters get no direction.
So α = 1 is a step as large as the weights themselves, in every layer, and slices of networks with
and without decay are on the same scale.</p>
<p><b>Objective.</b> With weight decay the optimizer does not minimize the data loss L, so ★ need not
sit at a minimum of L. Tick <i>+ decay term</i> to colour by the objective it does minimize:
in L2 mode <b>L(θ) + λ/2·‖θ‖²</b> over exactly the parameters the optimizer decays (the weight
matrices; biases and norms only with “also decay biases and norms”). Decoupled decay is no term of the loss:
with plain SGD it is the same update as L2, so the same objective is shown; with momentum μ (SGDW) its
fixed points are those of L + (1−μ)·λ/2·‖θ‖²; with Adam (AdamW) those of L + λ/2·Σ(√v̂ᵢ+ε)θᵢ², with
Adam's current second moments v̂ held fixed. The panel says which one is shown.</p>
<p><b>Path.</b> The line is the optimizer's recent path projected onto the plane, ending at ★. The
real path also moves off the plane (always in the biases, which have no direction): the readout gives
its distance from the plane, in units of the α axis, and the share of the path the plane holds.
So the path need not follow the slice's valleys.</p>
<p><b>Cross-sections</b> (right): the same values along β = 0 and α = 0, the basin's width along
each direction. Colours are log₁₀ by default, because a slice spans orders of magnitude.</p>
"""


def display_values(loss: np.ndarray, log: bool) -> tuple[np.ndarray, int]:
    """(values to colour, number of non-finite points): log₁₀ or linear, always finite.

    Non-finite losses (a diverged corner) are shown as the worst finite loss, and in log mode
    losses ≤ 0 as the smallest positive one, so one bad point can't blank the whole map.
    """
    loss = np.asarray(loss, dtype=np.float64)
    finite = np.isfinite(loss)
    bad = int(loss.size - finite.sum())
    if not finite.any():
        return np.zeros_like(loss), bad
    values = loss.copy()
    if log:
        positive = finite & (loss > 0)
        floor = float(loss[positive].min()) if positive.any() else 1e-12
        values = np.log10(np.where(finite, np.maximum(values, floor), floor))
    worst = float(values[finite].max())
    best = float(values[finite].min())
    values = np.where(np.isnan(loss) | (loss == np.inf), worst, values)
    values = np.where(loss == -np.inf, best, values)
    return values, bad


def _pixel_rect(alphas: np.ndarray, betas: np.ndarray) -> QRectF:
    """The image rectangle whose pixel centres sit on the grid's α and β values."""
    def extent(v: np.ndarray) -> tuple[float, float]:
        if v.size < 2:
            c = float(v[0]) if v.size else 0.0
            return c - 0.5, 1.0
        step = (float(v[-1]) - float(v[0])) / (v.size - 1)
        return float(v[0]) - step / 2, step * v.size
    x0, w = extent(np.asarray(alphas, dtype=np.float64))
    y0, h = extent(np.asarray(betas, dtype=np.float64))
    return QRectF(x0, y0, w, h)


def _wrapped() -> QLabel:
    label = MathLabel("")  # the objective's formula has v̂ in it (AdamW)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def direction_words(directions: str) -> tuple[str, str, str]:
    """(title part, α-axis label, β-axis label) for how d₁, d₂ were chosen, so the title and the
    axes always name the same directions."""
    kind = (directions or "pca").split(" ")[0]
    if kind == "pca":
        return ("PCA of the path, filter-normalized", "α along d₁ = PC1 of the path (filter-normalized)",
                "β along d₂ = PC2 (filter-normalized)")
    why = " (path too short for PCA)" if "short" in directions else ""
    return (f"random directions{why}, filter-normalized", "α along d₁ (random, filter-normalized)",
            "β along d₂ (random, filter-normalized)")


class LossSurfacePanel(Panel):
    """Colour map, contours and optimizer path on a filter-normalized 2-D slice of the loss."""

    key = "landscape"
    title = "Loss surface"

    EMPTY_HINT = "Press L (or Compute) to compute the loss surface\naround the current weights."

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.result: LandscapeResult | None = None  # the grid shown (a preview until a full one)
        self._pending = False  # a request is in flight (until a full result arrives)
        self._job_id: str | None = None  # the job of the request in flight (or the last one)
        self._dropped: set[str] = set()  # jobs cancelled here: their late events are ignored
        self._pending_since = 0.0
        self._last_request_step: int | None = None
        self._expected_total = 0  # grid points of the full grid asked for (0: unknown)
        self._preview_total = 0  # grid points of the finished preview of the request in flight
        self._dirty = False
        self.help_dialog: QDialog | None = None

        # --- controls -------------------------------------------------------------------------
        self.compute_button = QPushButton("Compute (L)")
        self.compute_button.setShortcut(QKeySequence("L"))
        self.compute_button.setToolTip("Ask the engine for a loss slice around the current weights")
        self.compute_button.clicked.connect(self.request_landscape)
        self.cancel_button = QPushButton("Cancel (Esc)")
        self.cancel_button.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_button.setToolTip("Stop computing this landscape (training goes on either way)")
        self.cancel_button.setProperty("export_hidden", True)
        self.cancel_button.clicked.connect(self.cancel_landscape)
        self.cancel_button.setVisible(False)  # shown only while a request is in flight
        self.resolution_spin = QSpinBox()
        self.resolution_spin.setRange(11, 101)
        self.resolution_spin.setValue(51)
        self.resolution_spin.setSuffix(" × grid")
        self.resolution_spin.setToolTip("Grid points per direction (cost grows with its square)")
        self.span_spin = QDoubleSpinBox()
        self.span_spin.setRange(0.1, 5.0)
        self.span_spin.setSingleStep(0.1)
        self.span_spin.setDecimals(2)
        self.span_spin.setValue(1.0)
        self.span_spin.setPrefix("span ±")
        self.span_spin.setToolTip("α and β run from −span to +span, in units of the "
                                  "filter-normalized directions (1 = the weights' own scale)")
        self.auto_check = QCheckBox("auto every")
        self.auto_check.setToolTip("Recompute automatically as training advances (never more than "
                                   "one request in flight; the last full grid stays on screen "
                                   "until the next one is complete)")
        self.auto_steps = QSpinBox()
        self.auto_steps.setRange(10, 1_000_000)
        self.auto_steps.setSingleStep(100)
        self.auto_steps.setValue(500)
        self.auto_steps.setSuffix(" steps")
        self.log_check = QCheckBox("log colour")
        self.log_check.setChecked(True)
        self.log_check.setToolTip("Colour by log₁₀ loss: a slice's losses span orders of magnitude")
        self.log_check.toggled.connect(self._on_log_toggled)
        self.objective_check = QCheckBox("+ decay term")
        self.objective_check.setChecked(True)
        self.objective_check.setToolTip(
            "Colour by the objective the optimizer minimizes, data loss + decay term (L2 mode:\n"
            "L(θ) + λ/2·‖θ‖² over the decayed parameters), instead of the data loss alone.\n"
            "With decay, the current weights sit near a minimum of the objective, not of the data "
            "loss.")
        self.objective_check.toggled.connect(self._on_log_toggled)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setMinimumWidth(180)
        self.progress.setMaximumWidth(320)
        self.progress.setToolTip("The request in flight: the coarse preview, then the full grid")
        self.status_label = LiveLabel("no landscape yet: press Compute (L)")
        # Texts that change once per result, not per frame: plain word-wrapped labels, so a long
        # sentence takes a second line instead of widening the window (issue 8 #1, #15).
        self.note_label = _wrapped()  # warnings about the shown result (non-finite, path off-slice)
        self.objective_label = _wrapped()  # what the colours show, in words
        self.path_label = _wrapped()  # how far the path lies off the plane
        self.help_button = QToolButton()
        self.help_button.setText("? What is this slice")
        self.help_button.setProperty("export_hidden", True)
        self.help_button.setToolTip(SURFACE_TIP)
        self.help_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.help_button.clicked.connect(self.show_help)
        self.help_label = self.help_button  # the old name, for callers that hide it on export

        controls = QHBoxLayout()
        for w in (self.compute_button, self.cancel_button, self.resolution_spin, self.span_spin):
            controls.addWidget(w)
        controls.addSpacing(12)
        controls.addWidget(self.auto_check)
        controls.addWidget(self.auto_steps)
        controls.addStretch(1)
        # The display options get a row of their own: in one row the controls made the panel 940 px
        # wide at least, and the window could not shrink to a 1366×768 projector with the dock.
        options = QHBoxLayout()
        options.addWidget(self.log_check)
        options.addWidget(self.objective_check)
        options.addStretch(1)
        options.addWidget(self.help_button)
        status_row = QHBoxLayout()
        status_row.addWidget(self.progress)
        status_row.addWidget(self.status_label, 1)
        status_row.addSpacing(12)
        status_row.addWidget(self.note_label, 1)

        # --- plots ----------------------------------------------------------------------------
        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(SURFACE_TIP)
        self.plot = self.view.addPlot(row=0, col=0)
        self.plot.setAspectLocked(True)  # filter-normalized α and β share a scale
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.contours = [pg.IsocurveItem(level=0.0, axisOrder="row-major")
                         for _ in CONTOUR_QUANTILES]
        for iso in self.contours:
            iso.setParentItem(self.image)  # image pixel coordinates, placed by the image's rect
            iso.setZValue(5)
        self.path = pg.PlotDataItem(antialias=True)
        self.path.setZValue(10)
        self.path_start = pg.ScatterPlotItem(symbol="o", pxMode=True)
        self.path_start.setZValue(11)
        self.current = pg.ScatterPlotItem(symbol="star", pxMode=True)
        self.current.setZValue(12)
        self.path_marks = pg.ScatterPlotItem(symbol="o", pxMode=True)
        self.path_marks.setZValue(11)
        self.placeholder = pg.TextItem(self.EMPTY_HINT, anchor=(0.5, 0.5))
        for item in (self.path_marks, self.path, self.path_start, self.current, self.placeholder):
            self.plot.addItem(item)
        self.colorbar = pg.ColorBarItem(interactive=False, width=18)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        # Legends live in their own layout row under the plots: outside the data, they can never
        # cover the path, the star or a curve (issue 8 #4).
        # One legend for both plots, spanning both columns: a row per plot, so its width is the
        # widest entries (two legends side by side forced the map's column wider than its share
        # and pushed the cross-sections off the right edge at 1600 px).
        self.map_legend = pg.LegendItem(colCount=3)
        self.view.addItem(self.map_legend, row=1, col=0, colspan=2)
        self.section_legend = self.map_legend
        # Cross-sections through the current point: the basin's width along each direction.
        self.section = self.view.addPlot(row=0, col=1)
        self.section.setLabel("bottom", "α or β")
        self.section.showGrid(x=True, y=True)
        self.section_a = self.section.plot(antialias=True)
        self.section_b = self.section.plot(antialias=True)
        self.section_now = pg.ScatterPlotItem(symbol="star", pxMode=True)
        self.section.addItem(self.section_now)
        self.section_hint = pg.TextItem("cross-sections through ★", anchor=(0.5, 0.5))
        self.section.addItem(self.section_hint)
        self.view.ci.layout.setHorizontalSpacing(24)
        self.view.ci.layout.setColumnStretchFactor(0, 3)
        self.view.ci.layout.setColumnStretchFactor(1, 2)

        # --- Compare mode: one map per run, side by side, sharing one colour scale ----------------
        self._runs: list[tuple[str, object, int]] = []  # (name, History, colour slot), set_runs
        self._selected = ""
        self._run_snaps: dict[str, Snapshot] = {}
        self.comparing = False  # two or more runs: the small multiples replace the single view
        self.run_results: dict[str, LandscapeResult] = {}  # the grid shown per run
        self._run_jobs: dict[str, str] = {}  # run → id of its request in flight
        self._job_run: dict[str, str] = {}  # job id → run, for the requests made in Compare mode
        self._run_requested: list[str] = []  # the runs the last Compute asked for
        self._run_layout: tuple[str, ...] = ()  # the runs whose maps are in the layout
        self._run_dirty = False
        self.run_view = pg.GraphicsLayoutWidget()
        self.run_view.setToolTip(
            "Compare mode: each run's loss around its own current weights, on its own plane\n"
            "θ + α·d₁ + β·d₂ (d₁, d₂ from that run's path, filter-normalized), with its path.\n"
            "One colour scale and one set of contour levels for all maps.")
        self.run_plots: list[pg.PlotItem] = []
        self.run_images: list[pg.ImageItem] = []
        self.run_paths: list[pg.PlotDataItem] = []
        self.run_stars: list[pg.ScatterPlotItem] = []
        self.run_hints: list[pg.TextItem] = []
        self.run_contours: list[list[pg.IsocurveItem]] = []
        for _ in range(MAX_RUN_MAPS):
            plot = pg.PlotItem()
            plot.setAspectLocked(True)
            plot.hideButtons()
            image = pg.ImageItem(axisOrder="row-major")
            plot.addItem(image)
            isos = [pg.IsocurveItem(level=0.0, axisOrder="row-major") for _ in RUN_CONTOURS]
            for iso in isos:
                iso.setParentItem(image)
                iso.setZValue(5)
            path = pg.PlotDataItem(antialias=True)
            path.setZValue(10)
            star = pg.ScatterPlotItem(symbol="star", pxMode=True)
            star.setZValue(12)
            hint = pg.TextItem("", anchor=(0.5, 0.5))
            for item in (path, star, hint):
                plot.addItem(item)
            self.run_plots.append(plot)
            self.run_images.append(image)
            self.run_contours.append(isos)
            self.run_paths.append(path)
            self.run_stars.append(star)
            self.run_hints.append(hint)
        self.run_colorbar = pg.ColorBarItem(interactive=False, width=18)
        self.run_colorbar.setImageItem(self.run_images)
        self.run_view.setVisible(False)

        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addLayout(options)
        root.addLayout(status_row)
        root.addWidget(self.objective_label)
        root.addWidget(self.path_label)
        root.addWidget(self.view, 1)
        root.addWidget(self.run_view, 1)
        self._show_empty(True)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        """Keep the snapshot; in auto mode, ask for a landscape every K steps (one at a time)."""
        self.snapshot = snap
        if self._last_request_step is not None and snap.step < self._last_request_step:
            self._last_request_step = None  # a new run started
        if not self.auto_check.isChecked() or snap.status in ("diverged", "error"):
            return
        busy = bool(self._run_jobs) if self.comparing else self.pending
        if busy and time.monotonic() - self._pending_since < PENDING_TIMEOUT_S:
            return
        last = self._last_request_step
        if last is None or snap.step - last >= self.auto_steps.value():
            self.request_landscape()

    def redraw(self) -> None:
        """Redraw the result if the theme or colour scale changed; refresh the staleness note."""
        if self.comparing:
            if self._run_dirty:
                self._draw_runs()
            return
        if self._dirty:
            self._draw_result()
        if self.result is not None and self.snapshot is not None:
            behind = self.snapshot.step - self.result.step
            if behind > 0 and not self.result.coarse:
                self.status_label.setText(self._result_text(self.result)
                                          + f" · {behind} steps old")

    def on_landscape(self, result: LandscapeResult) -> None:
        """Take one message of a request: a partial grid, the finished preview, or the full grid.

        Partial grids (done < total, unfinished points NaN) only move the progress bar. The
        preview is drawn only while no full grid is on screen: in auto mode a new preview every
        few steps would otherwise replace the last full grid, then be replaced by the next full
        one (the flicker of issue 8 #16). The full grid always replaces what is shown. The bar and
        its text come from one pair of numbers (`_show_progress`), over preview and full grid.
        """
        total, done = int(result.total), int(result.done)
        finished = total <= 0 or done >= total
        self._update_progress(result, done, total, finished)
        if not finished:
            return
        if not result.coarse:
            self.pending = False
        elif self.result is not None and not self.result.coarse:
            return  # keep the full grid on screen until the next full one is complete
        self.result = result
        self._draw_result()
        self.status_label.setText(self._result_text(result))

    def reset(self) -> None:
        """A new run: forget the result and any request in flight."""
        super().reset()
        self.result = None
        if self.pending and self._job_id is not None:
            self._dropped.add(self._job_id)  # the engine cancels a reset run's jobs itself
        self.pending = False
        self._last_request_step = None
        self._expected_total = self._preview_total = 0
        self.image.clear()
        for iso in self.contours:
            iso.setData(None)
        for item in (self.path, self.section_a, self.section_b):
            item.setData([], [])
        for item in (self.current, self.path_marks, self.path_start, self.section_now):
            item.setData([], [])
        self.placeholder.setText(self.EMPTY_HINT)
        self._show_empty(True)
        self._show_progress(0, 1, "idle")
        self.status_label.setText("no landscape yet: press Compute (L)")
        for label in (self.note_label, self.objective_label, self.path_label):
            label.setText("")
        self.map_legend.clear()
        # Compare mode keeps its per-run maps: selecting another run resets every panel, but each
        # map belongs to its run, not to the selection. A run that restarted drops its own map
        # (set_run_snapshots).
        if self.comparing:
            self._run_dirty = True
            self.cancel_button.setVisible(bool(self._run_jobs))
            self._show_compare_status()

    def apply_theme(self, theme: Theme) -> None:
        """Restyle backgrounds, axes, fonts, pens and the colour map, then redraw."""
        super().apply_theme(theme)
        fg = pg.mkColor(theme.foreground)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, pg.mkColor(theme.background))
        palette.setColor(QPalette.ColorRole.WindowText, fg)
        self.setPalette(palette)
        self.setAutoFillBackground(True)
        font = self.font()
        font.setPointSize(theme.font_pt)
        self.setFont(font)
        self.view.setBackground(theme.background)
        for plot in (self.plot, self.section, self.colorbar):
            _style_plot(plot, theme)
        self.colorbar.axis.setWidth(int(3.5 * theme.font_pt + 20))
        self.colorbar.setColorMap(pg.colormap.get(theme.colormap))
        # Contours: light on a dark theme, dark on a light one, always half transparent.
        line = QColor(fg)
        line.setAlpha(150)
        for iso in self.contours:
            iso.setPen(pg.mkPen(line, width=max(1.0, theme.line_width / 2)))
        # The path: an accent line a little wider than the curves, on a wide halo in the
        # background colour, so it reads on every colour of the map.
        self.path.setPen(pg.mkPen(theme.accent, width=theme.line_width + 1))
        self.path.setShadowPen(pg.mkPen(theme.background, width=theme.line_width + 5))
        self.path_marks.setBrush(pg.mkBrush(theme.accent))
        self.path_marks.setPen(pg.mkPen(theme.background, width=1))
        self.path_marks.setSize(theme.font_pt * 0.8)
        self.path_start.setBrush(pg.mkBrush(theme.background))
        self.path_start.setPen(pg.mkPen(theme.accent, width=max(2.0, theme.line_width)))
        self.path_start.setSize(theme.font_pt * 1.4)
        for star in (self.current, self.section_now):
            star.setBrush(pg.mkBrush(theme.accent))
            star.setPen(pg.mkPen(theme.background, width=2))
        self.current.setSize(3 * theme.font_pt)
        self.section_now.setSize(2 * theme.font_pt)
        for hint, pt in ((self.placeholder, theme.title_pt), (self.section_hint, theme.font_pt)):
            hint.setColor(theme.foreground)
            hint.setFont(QFont(self.font().family(), pt))
        self.section_a.setPen(pg.mkPen(theme.train, width=theme.line_width))
        self.section_b.setPen(pg.mkPen(theme.val, width=theme.line_width))
        _style_legend(self.map_legend, theme)
        self.map_legend.setBrush(None)  # outside the plots: nothing to stand out from
        self.map_legend.setPen(None)
        self.section.showGrid(x=True, y=True, alpha=theme.grid_alpha)
        self.run_view.setBackground(theme.background)
        for plot, isos, hint in zip(self.run_plots, self.run_contours, self.run_hints, strict=True):
            _style_plot(plot, theme)
            for iso in isos:
                iso.setPen(pg.mkPen(line, width=max(1.0, theme.line_width / 2)))
            hint.setColor(theme.foreground)
            hint.setFont(QFont(self.font().family(), theme.font_pt))
        _style_plot(self.run_colorbar, theme)
        self.run_colorbar.axis.setWidth(int(3.5 * theme.font_pt + 20))
        self.run_colorbar.setColorMap(pg.colormap.get(theme.colormap))
        self._dirty = True
        self._run_dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------ public API
    @property
    def pending(self) -> bool:
        """A request is in flight (until its full result, failure or cancellation)."""
        return self._pending

    @pending.setter
    def pending(self, value: bool) -> None:
        self._pending = bool(value)
        self.cancel_button.setVisible(self._pending)

    def request_landscape(self) -> None:
        """Ask the engine for a landscape with the chosen resolution and span (a background job;
        a request still in flight is superseded by the engine)."""
        args = {"resolution": int(self.resolution_spin.value()),
                "span": float(self.span_spin.value())}
        if self.comparing:
            self._request_runs(args)
            return
        if self.pending and self._job_id is not None:
            self._dropped.add(self._job_id)  # the engine cancels it; ignore what is in flight
        self._job_id = f"landscape-{next(_JOB_IDS)}"
        self.pending = True
        self._pending_since = time.monotonic()
        self._last_request_step = self.snapshot.step if self.snapshot is not None else None
        self._expected_total = args["resolution"] ** 2
        self._preview_total = 0
        self._show_progress(0, self._expected_total,
                            f"computing {args['resolution']}×{args['resolution']}, "
                            f"span ±{args['span']:g}")
        self.request.emit("analyze", {"id": self._job_id, "analysis": "landscape", "params": args})

    # ------------------------------------------------------------------------------ Compare mode
    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window, every tick): (name, History, colour slot) per run. Two or
        more runs: the per-run maps replace the single view; back to one: the single view again."""
        runs = list(runs)[:MAX_RUN_MAPS]
        if [(n, slot) for n, _h, slot in runs] != [(n, slot) for n, _h, slot in self._runs]:
            self._run_dirty = True
        self._runs = runs
        self._selected = selected
        comparing = len(runs) > 1
        if comparing != self.comparing:
            self._set_comparing(comparing)

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        """Compare mode: each run's latest Snapshot by name. A run whose step went back (it was reset)
        or that is gone (removed, renamed) loses its map, which showed weights it no longer has."""
        self._run_snaps = dict(snapshots)
        if not self.comparing:
            return
        for name in list(self.run_results):
            snap = snapshots.get(name)
            if snap is None or snap.step < self.run_results[name].step:
                del self.run_results[name]
                self._run_dirty = True
        for name in [n for n in self._run_jobs if n not in snapshots]:  # removed or renamed
            self._dropped.add(self._run_jobs.pop(name))  # the engine drops a removed run's jobs
            self.cancel_button.setVisible(bool(self._run_jobs))

    def _set_comparing(self, on: bool) -> None:
        self.comparing = on
        self.view.setVisible(not on)
        self.run_view.setVisible(on)
        for label in (self.objective_label, self.path_label):
            label.setVisible(not on)
        if on:
            self._run_dirty = True
            self._show_compare_status()
        else:
            for job_id in self._run_jobs.values():  # a run left: its maps' requests are moot
                self._dropped.add(job_id)
                self.request.emit("cancel", {"id": job_id})
            self._run_jobs.clear()
            self.run_results.clear()
            self._run_layout = ()
            self.cancel_button.setVisible(self.pending)
            self._show_progress(0, 1, "idle")
            self.note_label.setText("")
            if self.result is not None:
                self._draw_result()
                self.status_label.setText(self._result_text(self.result))
            else:
                self.status_label.setText("no landscape yet: press Compute (L)")

    def _request_runs(self, args: dict) -> None:
        """One landscape job per run, addressed to it: the engine supersedes only that run's older
        request, and each result comes back with its run's name."""
        names = [n for n, _h, _slot in self._runs]
        for name in names:
            old = self._run_jobs.get(name)
            if old is not None:
                self._dropped.add(old)  # the engine cancels it; ignore what is in flight
            job_id = f"landscape-{name}-{next(_JOB_IDS)}"
            self._run_jobs[name] = job_id
            self._job_run[job_id] = name
            self.request.emit("analyze", {"id": job_id, "run": name, "analysis": "landscape",
                                          "params": dict(args)})
        self._run_requested = names
        self._pending_since = time.monotonic()
        self._last_request_step = self.snapshot.step if self.snapshot is not None else None
        self.cancel_button.setVisible(True)
        self._show_compare_status()

    def _on_run_job(self, name: str, event: JobEvent) -> None:
        """A Compare-mode job's event: the finished preview (only while the run has no full grid)
        or the full grid becomes that run's map; failures are said with the run's name."""
        current = self._run_jobs.get(name) == event.id
        if event.result is not None:
            result = event.result
            finished = int(result.total) <= 0 or int(result.done) >= int(result.total)
            if not finished:
                if current:
                    self._show_compare_status()
                return
            shown = self.run_results.get(name)
            if result.coarse and shown is not None and not shown.coarse:
                return  # keep the run's full grid until its next full one is complete
            self.run_results[name] = result
            if not result.coarse and current:
                del self._run_jobs[name]
            self._run_dirty = True
            self._draw_runs()
        elif current and event.kind in ("failed", "cancelled"):
            del self._run_jobs[name]
            if event.kind == "failed":
                self.status_message.emit(f"run {name}: {event.message}")
            self.note_label.setText(f"run {name}: {event.kind}: {event.message}")
        elif not current:
            return
        self.cancel_button.setVisible(bool(self._run_jobs))
        self._show_compare_status()

    def _show_compare_status(self, text: str | None = None) -> None:
        """The bar counts runs: how many of the runs asked for have their full grid."""
        asked = [n for n in self._run_requested if n in {r for r, _h, _s in self._runs}]
        if text is None and asked:
            done = sum(1 for n in asked if n not in self._run_jobs)
            text = ("done" if done == len(asked) else "computing") + f" · {done}/{len(asked)} runs"
            self._show_progress(done, len(asked), text)
        elif text is not None:
            self._show_progress(0, 1, text)
        else:
            self._show_progress(0, 1, "idle")
        shown = [f"{n} step {self.run_results[n].step}" for n, _h, _s in self._runs
                 if n in self.run_results]
        self.status_label.setText(("one map per run · " + ", ".join(shown)) if shown else
                                  "Compare mode: press Compute (L) for every run's loss surface")

    def _layout_runs(self, names: tuple[str, ...]) -> None:
        """Put one map per run in a row, then the shared colour bar (only when the runs change)."""
        if names == self._run_layout:
            return
        layout = self.run_view.ci
        for item in [*self.run_plots, self.run_colorbar]:
            if item in layout.items:
                layout.removeItem(item)
        for i, _name in enumerate(names):
            layout.addItem(self.run_plots[i], row=0, col=i)
        layout.addItem(self.run_colorbar, row=0, col=len(names))
        self._run_layout = names

    def _draw_runs(self) -> None:
        """Every run's map on one colour scale: its image, shared contour levels, its path ending at
        its ★ (in the run's colour) and a title in the run's colour with what differs."""
        self._run_dirty = False
        theme = self.theme
        runs = [(n, slot) for n, _h, slot in self._runs]
        self._layout_runs(tuple(n for n, _ in runs))
        log = self.log_check.isChecked()
        values: dict[str, np.ndarray] = {}
        objective = False
        for name, _slot in runs:
            r = self.run_results.get(name)
            if r is None or np.ndim(r.loss) != 2 or np.size(r.loss) == 0:
                continue
            raw = np.asarray(r.loss, dtype=np.float64)
            if self._shows_objective(r):
                raw = raw + np.asarray(r.penalty, dtype=np.float64)
                objective = True
            values[name] = display_values(raw, log)[0]
        self.objective_check.setEnabled(any(r.penalty is not None for r in self.run_results.values()))
        pooled = np.concatenate([v.ravel() for v in values.values()]) if values else np.zeros(0)
        lo, hi = (float(pooled.min()), float(pooled.max())) if pooled.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-9
        levels = (np.unique(np.quantile(pooled, RUN_CONTOURS)) if pooled.size and hi - lo > 1e-9
                  else [])
        settings = run_settings_text({n: self._run_snaps[n].hparams for n, _ in runs
                                      if n in self._run_snaps})
        label_style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
        for i, (name, slot) in enumerate(runs):
            plot, image, path_item = self.run_plots[i], self.run_images[i], self.run_paths[i]
            star, hint, isos = self.run_stars[i], self.run_hints[i], self.run_contours[i]
            c = run_color(slot, theme.name)
            r = self.run_results.get(name)
            head = f"<span style='color:{c}'><b>{name}</b></span>"
            what = settings.get(name, "")
            if r is None or name not in values:
                image.clear()
                for iso in isos:
                    iso.setData(None)
                path_item.setData([], [])
                star.setData([], [])
                hint.setText("press Compute (L)" if name not in self._run_jobs else "computing…")
                hint.setPos(0.0, 0.0)
                hint.setVisible(True)
                plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
                _set_title(plot, f"{head} {what}".strip(), theme, theme.font_pt)
                continue
            hint.setVisible(False)
            v = values[name]
            image.setImage(v, autoLevels=False, levels=(lo, hi))
            rect = _pixel_rect(np.asarray(r.alphas, np.float64), np.asarray(r.betas, np.float64))
            image.setRect(rect)
            for k, iso in enumerate(isos):
                if k < len(levels):
                    iso.setData(v, float(levels[k]))
                else:
                    iso.setData(None)
            path = np.asarray(r.path, dtype=np.float64).reshape(-1, 2)
            path = path[np.isfinite(path).all(axis=1)]
            path_item.setPen(pg.mkPen(c, width=theme.line_width + 1))
            path_item.setShadowPen(pg.mkPen(theme.background, width=theme.line_width + 4))
            path_item.setData(path[:, 0], path[:, 1])
            star.setBrush(pg.mkBrush(c))
            star.setPen(pg.mkPen(theme.background, width=2))
            star.setSize(2.2 * theme.font_pt)
            star.setData([0.0], [0.0])
            plot.setRange(rect=rect, padding=0)
            plot.setLabel("bottom", "α (d₁)", **label_style)
            plot.setLabel("left", "β (d₂)", **label_style)
            center = float(r.center_loss)
            sub = f"step {r.step} · L {center:.3g}" + (" · preview" if r.coarse else "")
            small = max(theme.font_pt - 2, 7)
            _set_title(plot, f"{head} {what}<br><span style='font-size:{small}pt'>{sub}</span>",
                       theme, theme.font_pt)
        self.run_colorbar.setLevels((lo, hi))
        what = "L + decay term (each run's own)" if objective else "data loss L"
        self.run_colorbar.getAxis("right").setLabel(f"log₁₀ ({what})" if log else what,
                                                    **label_style)
        self.note_label.setText("Each map: its run's own plane (d₁, d₂ from its path, "
                                "filter-normalized), its path and ★ in the run's colour; one colour "
                                "scale and contour levels for all.")

    def cancel_landscape(self) -> None:
        """Cancel the request in flight (Cancel button, Esc): the engine drops the job, and any of
        its events still on the way are ignored. The grid on screen stays."""
        if self.comparing and self._run_jobs:
            for job_id in self._run_jobs.values():
                self._dropped.add(job_id)
                self.request.emit("cancel", {"id": job_id})
            self._run_jobs.clear()
            self.cancel_button.setVisible(False)
            self._show_compare_status("cancelled")
            return
        if not self.pending or self._job_id is None:
            return
        self._dropped.add(self._job_id)
        self.request.emit("cancel", {"id": self._job_id})
        self.pending = False
        self._expected_total = self._preview_total = 0
        self._show_progress(0, 1, "cancelled")
        self.status_label.setText("cancelled" + (f" · showing {self._result_text(self.result)}"
                                                 if self.result is not None else ""))

    def on_job(self, event: JobEvent) -> None:
        """An analysis job's event from the engine: landscapes only, never a cancelled job's.

        Results (the finished preview, half-filled grids, the full grid) go to `on_landscape`,
        whichever job they come from; progress, failure and cancellation only count for the
        request in flight here."""
        if event.analysis != "landscape" or event.id in self._dropped:
            return
        if event.id in self._job_run:
            self._on_run_job(self._job_run[event.id], event)
            return
        if event.result is not None:
            self.on_landscape(event.result)
            return
        if event.id != self._job_id or not self.pending:
            return
        if event.kind == "progress" and 0 <= event.done < event.total:
            self._show_job_progress(event.done, event.total)
        elif event.kind in ("failed", "cancelled"):
            self.pending = False
            self._expected_total = self._preview_total = 0
            self._show_progress(0, 1, event.kind)
            self.status_label.setText(f"{event.kind}: {event.message}")
            if event.kind == "failed":
                self.status_message.emit(event.message)
                if self.result is None:  # e.g. the conv net: say why in the plot, not only elided
                    self.placeholder.setText(textwrap.fill(event.message, 56))

    def show_help(self) -> None:
        """Open (or raise) a short explanation of the slice: directions, axes, objective, path."""
        if self.help_dialog is None:
            dialog = QDialog(self)
            dialog.setWindowTitle("What is this slice?")
            text = QLabel(drawable_text(HELP_HTML))
            text.setWordWrap(True)
            text.setTextFormat(Qt.TextFormat.RichText)
            close = QPushButton("Close")
            close.clicked.connect(dialog.close)
            layout = QVBoxLayout(dialog)
            layout.addWidget(text)
            layout.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
            dialog.resize(640, 560)
            self.help_dialog = dialog
        self.help_dialog.show()
        self.help_dialog.raise_()

    def cleanup(self) -> None:
        if self.help_dialog is not None:
            self.help_dialog.close()

    # ------------------------------------------------------------------------------- internals
    def _show_progress(self, done: int, total: int, text: str) -> None:
        """The one place the bar is set: its value, range and text come from the same numbers."""
        total = max(1, int(total))
        self.progress.setRange(0, total)
        self.progress.setValue(min(max(int(done), 0), total))
        # Verbatim: QProgressBar substitutes %p, %v, %m but has no escape for "%" (a "%%p%%"
        # showed as "%30%%"), so the texts hold no other "%".
        self.progress.setFormat(text)

    def _show_job_progress(self, done: int, total: int) -> None:
        """A job's progress over preview and full grid together (total = preview² + full²), in the
        words `_update_progress` uses for partial results, so the bar reads the same either way."""
        full = self._expected_total or total
        preview = max(0, total - full)
        if done < preview:
            n = round(preview ** 0.5)
            self._show_progress(done, total, f"preview {n}×{n} · {done}/{total} points · %p%")
        else:
            n = round(full ** 0.5)
            self._show_progress(done, total, f"full {n}×{n} · {done}/{total} points · %p%")

    def _update_progress(self, result: LandscapeResult, done: int, total: int,
                         finished: bool) -> None:
        """Progress over the whole request: preview points, then full-grid points."""
        b, a = np.shape(result.loss)
        if result.coarse:
            full = self._expected_total or total
            if finished:
                self._preview_total = total
            self._show_progress(done, total + full, f"preview {a}×{b} · {done}/{total + full} "
                                "points · %p%")
            return
        before = self._preview_total
        if finished:
            self._show_progress(1, 1, f"done · {result.elapsed:.2f} s")
            self._preview_total = 0
            self._expected_total = 0
            return
        self._show_progress(before + done, before + total,
                            f"full {a}×{b} · {before + done}/{before + total} points · %p%")

    def _on_log_toggled(self, _checked: bool) -> None:
        self._dirty = True
        self.redraw()

    def _show_empty(self, empty: bool) -> None:
        """Before the first result: a hint instead of axes with a meaningless range."""
        self.placeholder.setVisible(empty)
        self.section_hint.setVisible(empty)
        self.colorbar.setVisible(not empty)
        self.map_legend.setVisible(not empty)
        for plot in (self.plot, self.section):
            for name in ("left", "bottom"):
                plot.showAxis(name, not empty)
            plot.showGrid(x=not empty, y=not empty, alpha=self.theme.grid_alpha)
        if empty:
            self.placeholder.setPos(0.0, 0.0)
            self.section_hint.setPos(0.0, 0.0)
            self.plot.setTitle(None)
            self.section.setTitle(None)
            self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            self.section.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def _shows_objective(self, result: LandscapeResult) -> bool:
        return (self.objective_check.isChecked() and result.penalty is not None
                and np.shape(result.penalty) == np.shape(result.loss))

    @staticmethod
    def _result_text(result: LandscapeResult) -> str:
        b, a = np.shape(result.loss)
        if result.coarse:
            return f"preview {a}×{b} · step {result.step} · computing the full grid…"
        return f"full {a}×{b} in {result.elapsed:.2f} s · step {result.step}"

    def _draw_result(self) -> None:
        self._dirty = False
        result = self.result
        if result is None:
            return
        theme = self.theme
        log = self.log_check.isChecked()
        objective = self._shows_objective(result)
        self.objective_check.setEnabled(result.penalty is not None)
        self.objective_check.setToolTip(self.objective_check.toolTip().split("\n\n")[0] + (
            "" if result.penalty is not None else "\n\n" + (result.objective_note or
                                                          "nothing is decayed")))
        raw = np.asarray(result.loss, dtype=np.float64)
        if objective:
            raw = raw + np.asarray(result.penalty, dtype=np.float64)
        values, bad = display_values(raw, log)
        # Titles and axis labels are Qt text too: the hat of v̂ needs drawable_text (ui.widgets).
        what = f"L + {drawable_text(result.objective)}" if objective else "data loss L"
        label = f"log₁₀ ({what})" if log else what
        if values.ndim != 2 or values.size == 0:
            self.image.clear()
            return
        self._show_empty(False)
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-9
        self.image.setImage(values, autoLevels=False, levels=(lo, hi))
        alphas = np.asarray(result.alphas, dtype=np.float64)
        betas = np.asarray(result.betas, dtype=np.float64)
        rect = _pixel_rect(alphas, betas)
        self.image.setRect(rect)
        self.colorbar.setLevels((lo, hi))
        self.colorbar.getAxis("right").setLabel(label, color=theme.foreground,
                                               **{"font-size": f"{theme.font_pt}pt"})
        levels = np.unique(np.quantile(values, CONTOUR_QUANTILES)) if hi - lo > 1e-9 else []
        for k, iso in enumerate(self.contours):
            if k < len(levels):
                iso.setData(values, float(levels[k]))
                iso.setVisible(True)
            else:
                iso.setData(None)
                iso.setVisible(False)
        self.plot.setRange(rect=rect, padding=0)
        # The path, ending at the current weights (the slice's centre by construction).
        path = np.asarray(result.path, dtype=np.float64).reshape(-1, 2)
        finite = np.isfinite(path).all(axis=1)
        path = path[finite]
        steps = np.asarray(result.path_steps).reshape(-1)
        steps = steps[finite] if len(steps) == len(finite) else steps[:0]
        # The line keeps every point; markers only on ~24 of them, so the direction of travel stays
        # readable when hundreds of points crowd together.
        self.path.setData(path[:, 0], path[:, 1])
        every = max(1, len(path) // 24)
        marks = path[::-every][::-1]  # counted back from the newest point
        self.path_marks.setData(marks[:, 0], marks[:, 1])
        self.path_start.setData(path[:1, 0], path[:1, 1])
        self.current.setData([0.0], [0.0])
        center = float(result.center_loss)
        now_text = f"now, step {result.step}: L {center:.3g}"
        if objective:
            now_text += f", L + decay {center + float(result.center_penalty):.3g}"
        self.map_legend.clear()
        self.map_legend.addItem(self.current, now_text)
        span = (f"steps {int(steps[0])}–{int(steps[-1])}" if len(steps) else f"{len(path)} points")
        self.map_legend.addItem(self.path, f"path, {span}, projected")
        self.map_legend.addItem(self.path_start, "path start")
        self.map_legend.addItem(self.section_a, "right: along d₁ (β = 0)")
        self.map_legend.addItem(self.section_b, "right: along d₂ (α = 0)")
        _style_legend(self.map_legend, theme)
        self.map_legend.setBrush(None)
        self.map_legend.setPen(None)
        inside = ((path[:, 0] >= rect.left()) & (path[:, 0] <= rect.right())
                  & (path[:, 1] >= rect.top()) & (path[:, 1] <= rect.bottom()))
        outside = int((~inside).sum())
        title_dirs, x_label, y_label = direction_words(result.directions)
        label_style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
        explained = tuple(result.pca_explained or ())
        if len(explained) == 2 and title_dirs.startswith("PCA"):
            x_label = x_label.replace("PC1 of the path", f"PC1 ({100 * explained[0]:.0f} % of path)")
            y_label = y_label.replace("PC2", f"PC2 ({100 * explained[1]:.0f} %)")
        self.plot.setLabel("bottom", x_label, **label_style)
        self.plot.setLabel("left", y_label, **label_style)
        # Two lines: one long line set the map column's minimum width (a title's label is as wide
        # as its text) and pushed the cross-sections off the right edge.
        small = max(theme.title_pt - 2, 7)
        _set_title(self.plot, f"{what} on θ + α·d₁ + β·d₂<br><span style='font-size:{small}pt'>"
                   f"{title_dirs}</span>", theme)
        if objective:
            self.objective_label.setText(f"Colour: data loss + {result.objective}. "
                                         f"{result.objective_note}.")
        elif result.penalty is not None:
            self.objective_label.setText(f"Colour: data loss only (the optimizer minimizes data loss "
                                         f"+ {result.objective}: tick “+ decay term”).")
        else:
            self.objective_label.setText("Colour: data loss"
                                         + (f" ({result.objective_note})." if result.objective_note
                                            else "."))
        self.path_label.setText(self._path_text(result))
        notes = []
        if bad:
            notes.append(f"{bad} non-finite losses (diverged) shown as the worst finite one")
        if outside:
            notes.append(f"{outside} of {len(path)} path points lie off the slice: raise the span")
        reach = float(np.abs(path).max()) if len(path) else 0.0
        window = min(rect.width(), rect.height()) / 2
        if len(path) >= 2 and 0 < reach < 0.1 * window:
            notes.append(f"the path spans only ±{reach:.2g} of the ±{window:.2g} window: lower the "
                         "span or zoom in (mouse wheel) to see it")
        self.note_label.setText(" · ".join(notes))
        # Cross-sections through the point of the grid nearest (0, 0).
        row = int(np.argmin(np.abs(betas))) if betas.size else 0
        col = int(np.argmin(np.abs(alphas))) if alphas.size else 0
        if alphas.size == values.shape[1] and betas.size == values.shape[0]:
            self.section_a.setData(alphas, values[row, :])
            self.section_b.setData(betas, values[:, col])
            self.section_now.setData([0.0], [float(values[row, col])])
            # The range from the data with a fixed 5 % margin, not pyqtgraph's auto-range, whose
            # padding depends on the view's pixel size: a figure export at slide size left the live
            # plot with another range than before it (issue 8 #3).
            ys = np.concatenate([values[row, :], values[:, col]])
            ys = ys[np.isfinite(ys)]
            if ys.size and alphas.size and betas.size:
                x0 = float(min(alphas.min(), betas.min()))
                x1 = float(max(alphas.max(), betas.max()))
                y0, y1 = float(ys.min()), float(ys.max())
                if y1 <= y0:
                    y0, y1 = y0 - 0.5, y1 + 0.5
                self.section.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.05)
        self.section.setLabel("left", label, **label_style)
        _set_title(self.section, "Cross-sections through ★", theme)

    @staticmethod
    def _path_text(result: LandscapeResult) -> str:
        """How far the path lies off the plotted plane (Li et al. 2018: a projection of ℝⁿ)."""
        residual = np.asarray(result.path_residual, dtype=np.float64).reshape(-1)
        residual = residual[np.isfinite(residual)]
        if residual.size == 0:
            return ""
        captured = float(result.path_captured)
        text = (f"The path lies off this plane: distance from it up to {residual.max():.2g} "
                f"(median {np.median(residual):.2g}) in α units")
        if np.isfinite(captured):
            text += f"; the plane holds {100 * captured:.0f} % of the path's squared distance from ★"
        explained = tuple(result.pca_explained or ())
        if len(explained) == 2:
            text += (f" (PC1 + PC2 explain {100 * sum(explained):.0f} % of it before filter "
                     "normalization)")
        return text + "."
