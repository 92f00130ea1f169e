"""Loss-surface panel: a 2-D slice of the real loss around the current weights.

The engine evaluates L(θ + α·d₁ + β·d₂) on a grid, with d₁, d₂ random directions rescaled by filter
normalization (Li et al. 2018), and sends a `LandscapeResult`. Computing it costs one forward pass
per grid point, so it only happens on request: the Compute button (shortcut L), or automatically
every K steps. A coarse preview arrives first and is drawn at once, then the full grid replaces it.

Losses across a slice span orders of magnitude (a diverged corner can be 10⁶ × the centre), so the
colours default to log₁₀ loss; non-finite points are clipped to the worst finite value for display.
Plot items are created once; drawing only feeds them new data.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QFont, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from regsim.snapshot import History, LandscapeResult, Snapshot
from ui.panels.base import Panel
from ui.panels.style import set_title as _set_title
from ui.panels.style import style_legend as _style_legend
from ui.panels.style import style_plot_item as _style_plot
from ui.theme import Theme
from ui.widgets import LiveLabel

CONTOUR_QUANTILES = (0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)  # contour levels as grid quantiles
PENDING_TIMEOUT_S = 300.0  # a request unanswered this long is presumed lost, so auto mode resumes

SURFACE_TIP = (
    "Loss on a 2-D slice through the current weights θ:  L(θ + α·d₁ + β·d₂).\n"
    "d₁ and d₂ are the top two principal directions of the recent trajectory (or random ones when\n"
    "the trajectory is too short), with filter normalization (Li et al. 2018): each direction's\n"
    "rows are rescaled to the norm of the matching weight rows, so α = 1 means a step as large as\n"
    "the weights themselves, and the slice's scale is comparable across networks and across\n"
    "regularization settings.\n\n"
    "Weight decay adds (λ/2)·‖θ‖² to the loss (gradient λθ), so every step shrinks each weight,\n"
    "θ ← (1 − ηλ)·θ − η·∇L: the optimum becomes the best fit inside a sphere around the origin\n"
    "(a smaller sphere for larger λ). Along directions the loss is insensitive to, decay shrinks\n"
    "weights hard; along directions that matter, barely (Goodfellow et al. 2016). The course\n"
    "text makes no claim about how weight decay changes the width or flatness of this basin:\n"
    "compare runs with and without it and see.\n\n"
    "The line is the optimizer's recent path projected onto (d₁, d₂), ending at the current\n"
    "weights (0, 0). The real weights also moved off this plane (least with trajectory\n"
    "directions, most with random ones), so the path need not follow the slice's valleys."
)








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


class LossSurfacePanel(Panel):
    """Colour map, contours and optimizer path on a filter-normalized 2-D slice of the loss."""

    key = "landscape"
    title = "Loss surface"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.result: LandscapeResult | None = None
        self.pending = False  # a request is in flight (until a full result arrives)
        self._pending_since = 0.0
        self._last_request_step: int | None = None
        self._dirty = False

        # --- controls -------------------------------------------------------------------------
        self.compute_button = QPushButton("Compute (L)")
        self.compute_button.setShortcut(QKeySequence("L"))
        self.compute_button.setToolTip("Ask the engine for a loss slice around the current weights")
        self.compute_button.clicked.connect(self.request_landscape)
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
        self.auto_check.setToolTip("Recompute automatically as training advances "
                                   "(never more than one request in flight)")
        self.auto_steps = QSpinBox()
        self.auto_steps.setRange(10, 1_000_000)
        self.auto_steps.setSingleStep(100)
        self.auto_steps.setValue(500)
        self.auto_steps.setSuffix(" steps")
        self.log_check = QCheckBox("log colour")
        self.log_check.setChecked(True)
        self.log_check.setToolTip("Colour by log₁₀ loss: a slice's losses span orders of magnitude")
        self.log_check.toggled.connect(self._on_log_toggled)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setMaximumWidth(220)
        self.status_label = LiveLabel("no landscape yet: press Compute (L)")
        self.note_label = LiveLabel("")  # warnings about the shown result (non-finite, path off-slice)
        self.help_label = QLabel("(?) what is this slice")
        self.help_label.setProperty("export_hidden", True)
        self.help_label.setToolTip(SURFACE_TIP)

        controls = QHBoxLayout()
        for w in (self.compute_button, self.resolution_spin, self.span_spin):
            controls.addWidget(w)
        controls.addSpacing(12)
        controls.addWidget(self.auto_check)
        controls.addWidget(self.auto_steps)
        controls.addSpacing(12)
        controls.addWidget(self.log_check)
        controls.addStretch(1)
        controls.addWidget(self.help_label)
        status_row = QHBoxLayout()
        status_row.addWidget(self.progress)
        status_row.addWidget(self.status_label)
        status_row.addSpacing(12)
        status_row.addWidget(self.note_label, 1)

        # --- plots ----------------------------------------------------------------------------
        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(SURFACE_TIP)
        self.plot = self.view.addPlot(row=0, col=0)
        self.plot.setLabel("bottom", "direction 1 (filter-normalized)")
        self.plot.setLabel("left", "direction 2")
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
        self.current = pg.ScatterPlotItem(symbol="star", pxMode=True)
        self.current.setZValue(11)
        self.path_marks = pg.ScatterPlotItem(symbol="o", pxMode=True)
        self.path_marks.setZValue(11)
        self.plot.addItem(self.path_marks)
        self.current_text = pg.TextItem(anchor=(-0.08, 1.1))
        self.current_text.setZValue(12)
        self.placeholder = pg.TextItem("No landscape yet.\nPress Compute (L),\nor turn on auto.",
                                       anchor=(0.5, 0.5))
        for item in (self.path, self.current, self.current_text, self.placeholder):
            self.plot.addItem(item)
        self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
        self.colorbar = pg.ColorBarItem(interactive=False, width=18)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        # Cross-sections through the current point: the basin's width along each direction.
        self.section = self.view.addPlot(row=0, col=1)
        self.section.setLabel("bottom", "α or β")
        self.section.setLabel("left", "log₁₀ loss")
        self.section.showGrid(x=True, y=True)
        self.section.addLegend(offset=(10, 10))
        self.section_a = self.section.plot(name="along direction 1 (β = 0)", antialias=True)
        self.section_b = self.section.plot(name="along direction 2 (α = 0)", antialias=True)
        self.section.setRange(xRange=(-1, 1), yRange=(0, 1))
        self.view.ci.layout.setHorizontalSpacing(24)
        self.view.ci.layout.setColumnStretchFactor(0, 3)
        self.view.ci.layout.setColumnStretchFactor(1, 2)

        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addLayout(status_row)
        root.addWidget(self.view, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        """Keep the snapshot; in auto mode, ask for a landscape every K steps (one at a time)."""
        self.snapshot = snap
        if self._last_request_step is not None and snap.step < self._last_request_step:
            self._last_request_step = None  # a new run started
        if not self.auto_check.isChecked() or snap.status in ("diverged", "error"):
            return
        if self.pending and time.monotonic() - self._pending_since < PENDING_TIMEOUT_S:
            return
        last = self._last_request_step
        if last is None or snap.step - last >= self.auto_steps.value():
            self.request_landscape()

    def redraw(self) -> None:
        """Redraw the result if the theme or colour scale changed; refresh the staleness note."""
        if self._dirty:
            self._draw_result()
        if self.result is not None and self.snapshot is not None:
            behind = self.snapshot.step - self.result.step
            if behind > 0 and not self.result.coarse:
                self.status_label.setText(self._result_text(self.result)
                                          + f" · {behind} steps old")

    def on_landscape(self, result: LandscapeResult) -> None:
        """Draw each finished grid as soon as it arrives: the coarse preview, then the full one.

        The engine also sends partial grids (done < total, unfinished points NaN) while a grid
        fills; they only move the progress bar, since their NaNs are not diverged losses. The
        request ends with the finished full grid.
        """
        total, done = int(result.total), int(result.done)
        finished = total <= 0 or done >= total
        self.progress.setValue(1000 if total <= 0 else round(1000 * min(max(done / total, 0), 1)))
        if not finished:
            b, a = np.shape(result.loss)
            kind = "preview" if result.coarse else "full"
            self.status_label.setText(f"computing {kind} {a}×{b}: {done}/{total} points")
            return
        if (result.coarse and self.result is not None and not self.result.coarse
                and self.result.step >= result.step and not self.pending):
            return  # a late preview of a grid already shown in full
        if not result.coarse:
            self.pending = False
        self.result = result
        self._draw_result()
        self.status_label.setText(self._result_text(result))

    def reset(self) -> None:
        """A new run: forget the result and any request in flight."""
        super().reset()
        self.result = None
        self.pending = False
        self._last_request_step = None
        self.image.clear()
        for iso in self.contours:
            iso.setData(None)
        for item in (self.path, self.section_a, self.section_b):
            item.setData([], [])
        self.current.setData([], [])
        self.path_marks.setData([], [])
        self.current_text.setText("")
        self.placeholder.setVisible(True)
        self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
        self.section.setRange(xRange=(-1, 1), yRange=(0, 1))
        self.progress.setValue(0)
        self.status_label.setText("no landscape yet: press Compute (L)")
        self.note_label.setText("")

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
        shadow = pg.mkPen(theme.background, width=theme.line_width + 3)
        self.path.setPen(pg.mkPen(theme.accent, width=theme.line_width))
        self.path.setShadowPen(shadow)
        self.path_marks.setBrush(pg.mkBrush(theme.accent))
        self.path_marks.setPen(pg.mkPen(theme.background, width=1))
        self.path_marks.setSize(theme.font_pt * 0.8)
        self.current.setBrush(pg.mkBrush(theme.accent))
        self.current.setPen(pg.mkPen(theme.background, width=2))
        self.current.setSize(3 * theme.font_pt)
        self.current_text.setColor(theme.foreground)  # on a half-opaque plate: readable on any colour
        self.current_text.fill = pg.mkBrush(pg.mkColor(theme.background).red(),
                                            pg.mkColor(theme.background).green(),
                                            pg.mkColor(theme.background).blue(), 200)
        self.current_text.setFont(QFont(self.font().family(), theme.font_pt, QFont.Weight.Bold))
        self.placeholder.setColor(theme.foreground)
        self.placeholder.setFont(QFont(self.font().family(), theme.title_pt))
        self.section_a.setPen(pg.mkPen(theme.train, width=theme.line_width))
        self.section_b.setPen(pg.mkPen(theme.val, width=theme.line_width))
        _style_legend(self.section.legend, theme)
        self.section.showGrid(x=True, y=True, alpha=theme.grid_alpha)
        self._dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------ public API
    def request_landscape(self) -> None:
        """Ask the engine for a landscape with the chosen resolution and span."""
        args = {"resolution": int(self.resolution_spin.value()),
                "span": float(self.span_spin.value())}
        self.pending = True
        self._pending_since = time.monotonic()
        self._last_request_step = self.snapshot.step if self.snapshot is not None else None
        self.progress.setValue(0)
        self.status_label.setText(f"computing {args['resolution']}×{args['resolution']} "
                                  f"slice, span ±{args['span']:g}…")
        self.request.emit("landscape", args)

    # ------------------------------------------------------------------------------- internals
    def _on_log_toggled(self, _checked: bool) -> None:
        self._dirty = True
        self.redraw()

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
        values, bad = display_values(result.loss, log)
        label = "log₁₀ loss" if log else "loss"
        if values.ndim != 2 or values.size == 0:
            self.image.clear()
            return
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-9
        self.image.setImage(values, autoLevels=False, levels=(lo, hi))
        self.placeholder.setVisible(False)
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
        path = path[np.isfinite(path).all(axis=1)]
        # The line keeps every point; markers only on ~24 of them, so the direction of travel stays
        # readable when hundreds of points crowd together.
        self.path.setData(path[:, 0], path[:, 1])
        every = max(1, len(path) // 24)
        marks = path[::-every][::-1]  # counted back from the newest point
        self.path_marks.setData(marks[:, 0], marks[:, 1])
        self.current.setData([0.0], [0.0])
        self.current_text.setText(f"now · loss {result.center_loss:.3g}")
        self.current_text.setPos(0.0, 0.0)
        # Put the label beyond the star along the path's last step, so it never covers the path.
        last = path[-1] - path[-2] if len(path) >= 2 else np.array([1.0, 1.0])
        self.current_text.setAnchor((-0.08 if last[0] >= 0 else 1.08,
                                     1.1 if last[1] >= 0 else -0.1))
        inside = ((path[:, 0] >= rect.left()) & (path[:, 0] <= rect.right())
                  & (path[:, 1] >= rect.top()) & (path[:, 1] <= rect.bottom()))
        outside = int((~inside).sum())
        kind = str(getattr(result, "directions", "") or "").split(" ")[0]
        _set_title(self.plot, f"L(θ + α·d₁ + β·d₂) at step {result.step}"
                   + (f" · {kind} directions" if kind else ""), theme)
        notes = []
        if bad:
            notes.append(f"{bad} non-finite losses (diverged) shown as the worst finite one")
        if outside:
            notes.append(f"{outside} of {len(path)} path points lie off the slice: raise the span")
        self.note_label.setText(" · ".join(notes))
        # Cross-sections through the point of the grid nearest (0, 0).
        row = int(np.argmin(np.abs(betas))) if betas.size else 0
        col = int(np.argmin(np.abs(alphas))) if alphas.size else 0
        if alphas.size == values.shape[1] and betas.size == values.shape[0]:
            self.section_a.setData(alphas, values[row, :])
            self.section_b.setData(betas, values[:, col])
            self.section.enableAutoRange()
        self.section.setLabel("left", label, color=theme.foreground,
                              **{"font-size": f"{theme.font_pt}pt"})
        _set_title(self.section, "Slices through now", theme)
