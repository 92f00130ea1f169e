"""The ensemble of 2ⁿ sub-networks behind one dropout layer (Srivastava et al. 2014, the seed's figure).

Each mask m over the n units of a dropout site is a sub-network with probability
P(m) = Π (1 − p)^{m_i} p^{1 − m_i}. The engine enumerates all 2ⁿ of them (n ≤ 16; more are sampled,
and the panel says so) as a background job (regsim.analyses.ensemble) and the panel draws:
- a page of sub-networks: each one's decision map P(class 1 | x) on 2-D data, with its mask as a row
  of dots (filled = kept) and its accuracy;
- three ways of combining them and eval mode:
      arithmetic     A = Σ_m P(m) p_m
      geometric      G ∝ Π_m p_m^P(m)  (normalized)  = softmax(Σ_m P(m) z_m)
      weight scaled  W = softmax(z(E[m]))             what eval mode computes
  as maps, and the difference of two of them as a map and as numbers;
- A and G against W on every evaluated point (on the diagonal: equal), and the distribution of the
  single sub-networks' accuracies against the ensembles' accuracies.
The verdict line says which case the live network is: when the site is the last hidden layer the
logits are linear in the mask, so Σ_m P(m) z_m = z(E[m]) and G = W exactly (the seed's claim); for an
earlier site ReLUs lie between mask and logits and G ≈ W only. A differs from both (Jensen).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from regsim.analyses.ensemble import EnsembleResult
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History, Snapshot
from ui.panels.base import JobPanel
from ui.panels.style import color, fill_background, mix, set_title, style_plot_item, style_text
from ui.theme import Theme
from ui.widgets import FlowLayout, MathLabel

TILES = 16  # sub-networks on one page (4 × 4)
TILE_COLS = 4
BLOCK = 256  # masks fetched per request: pages inside a block turn without recomputing
MAX_UNITS = 16  # the analysis enumerates at most this many units exactly
SEED_PRESET = "ensemble_seed"  # resources/presets: the seed's 4 hidden units, one dropout layer
DIFFS = ("G − W", "A − W", "A − G")
ORDERS = (("by mask index", "index"), ("best first", "accuracy"))
DIFF_TIP = ("G − W: normalized geometric mean minus the weight-scaled net. Zero (to float32) when the\n"
            "site is the last hidden layer: z is linear in the mask, Σ_m P(m) z_m = z(E[m]).\n"
            "A − W: arithmetic mean minus weight scaling: never zero (Jensen: E[softmax z] ≠ softmax E[z]).")
PANEL_TIP = ("2ⁿ sub-networks share the weights; each mask m has P(m) = Π (1−p)^m_i p^(1−m_i).\n"
             "A = Σ P(m) p_m (arithmetic), G ∝ Π p_m^P(m) (geometric, normalized), W = softmax(z(E[m])) "
             "(eval mode).\nOne dropout layer feeding the softmax: G = W exactly. Deeper: G ≈ W.")


def _tile_plot(layout: pg.GraphicsLayout, row: int, col: int) -> pg.PlotItem:
    plot = layout.addPlot(row=row, col=col)
    plot.hideAxis("left")
    plot.hideAxis("bottom")
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    return plot


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 × 10ᵏ at least `raw` (> 0)."""
    raw = max(raw, 1e-9)
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10**exp >= raw * (1 - 1e-9):
            return m * 10**exp
    return 10.0 ** (exp + 1)  # pragma: no cover


class EnsemblePanel(JobPanel):
    """A page of sub-networks, their three combinations and eval mode, and their accuracies."""

    key = "ensemble"
    title = "Sub-network ensemble"
    analysis = "ensemble"
    job_unit = "masks"
    idle_text = "no ensemble yet: press Compute (E)"

    EMPTY_HINT = "Press E (Compute)\nto enumerate the\nsub-networks"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.result: EnsembleResult | None = None
        self._request: dict | None = None  # the params of the result shown (or in flight)
        self._sites: tuple = ()
        self._drawn: tuple | None = None
        self.page = 0  # page of TILES sub-networks, over all masks

        # --- controls -------------------------------------------------------------------------
        self.build_job_controls("Compute", "E", "Ask the engine to enumerate every mask of the chosen "
                                "layer (a background job; training goes on)",
                                cancel_tip="Stop this enumeration (what is on screen stays)",
                                progress_width=220)
        self.site_combo = QComboBox()
        self.site_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.site_combo.setToolTip("The dropout layer whose masks are enumerated (the other layers "
                                   "stay at their expected value, as in eval mode)")
        self.units_spin = QSpinBox()
        self.units_spin.setRange(0, MAX_UNITS)
        self.units_spin.setValue(MAX_UNITS)
        self.units_spin.setSpecialValueText("all units")
        self.units_spin.setPrefix("units ")
        self.units_spin.setToolTip("Enumerate the first n units of the layer exactly (2ⁿ masks, the rest "
                                   "at E[m]); 'all units' on a layer wider than 16 samples K masks")
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(16, 65536)
        self.samples_spin.setValue(4096)
        self.samples_spin.setPrefix("K = ")
        self.samples_spin.setToolTip("Masks sampled from P(m) when more than 16 units are asked for")
        self.order_combo = QComboBox()
        self.order_combo.addItems([t for t, _ in ORDERS])
        self.order_combo.setToolTip("Pages of sub-networks by mask index (bit i = unit i kept) or best "
                                    "first (by accuracy on train + val)")
        self.order_combo.currentIndexChanged.connect(self._order_changed)
        self.prev_button = QPushButton("◀")
        self.prev_button.setToolTip("Previous page of sub-networks")
        self.prev_button.clicked.connect(lambda: self.turn_page(-1))
        self.next_button = QPushButton("▶")
        self.next_button.setToolTip("Next page of sub-networks")
        self.next_button.clicked.connect(lambda: self.turn_page(1))
        self.page_label = QLabel("")
        self.diff_combo = QComboBox()
        self.diff_combo.addItems(DIFFS)
        self.diff_combo.setToolTip(DIFF_TIP)
        self.diff_combo.currentIndexChanged.connect(self._invalidate)
        self.auto_check = QCheckBox("auto every 500 steps")
        self.auto_check.setToolTip("Recompute as training advances (one request in flight at most)")
        self.seed_button = QPushButton("Seed's net: 1 layer, 4 units")
        self.seed_button.setToolTip("Start a new run with one hidden layer of 4 units and p = 0.5 "
                                    "(16 masks, G = W exactly): the preset " + SEED_PRESET)
        self.seed_button.setProperty("export_hidden", True)
        self.seed_button.clicked.connect(
            lambda: self.request.emit("preset", {"name": SEED_PRESET}))
        self.make_status_label()
        self.verdict_label = MathLabel("")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.verdict_label.setToolTip(PANEL_TIP)

        # Rows that wrap in a narrow window (a box row's minimum was all its controls: 717 px).
        row1 = FlowLayout()
        for w in (self.compute_button, self.cancel_button, self.site_combo, self.units_spin,
                  self.samples_spin, self.auto_check, self.seed_button):
            row1.addWidget(w)
        row2 = FlowLayout()
        for w in (self.order_combo, self.prev_button, self.page_label, self.next_button,
                  self.diff_combo, self.progress):
            row2.addWidget(w)
        row2.addWidget(self.status_label, 1)

        # --- plots ----------------------------------------------------------------------------
        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(PANEL_TIP)
        tiles = self.view.addLayout(row=0, col=0, rowspan=2)
        self.tiles: list[pg.PlotItem] = []
        self.tile_images: list[pg.ImageItem] = []
        self.tile_masks: list[pg.ScatterPlotItem] = []
        for i in range(TILES):
            plot = _tile_plot(tiles, i // TILE_COLS, i % TILE_COLS)
            plot.setAspectLocked(True)
            img = pg.ImageItem(axisOrder="row-major")
            dots = pg.ScatterPlotItem(pxMode=True)
            plot.addItem(img)
            plot.addItem(dots)
            self.tiles.append(plot)
            self.tile_images.append(img)
            self.tile_masks.append(dots)
        maps = self.view.addLayout(row=0, col=1)
        self.map_plots: list[pg.PlotItem] = []
        self.map_images: list[pg.ImageItem] = []
        for i in range(4):  # A, G / W, difference
            plot = _tile_plot(maps, i // 2, i % 2)
            plot.setAspectLocked(True)
            img = pg.ImageItem(axisOrder="row-major")
            plot.addItem(img)
            self.map_plots.append(plot)
            self.map_images.append(img)
        lower = self.view.addLayout(row=1, col=1)
        self.scatter_plot = lower.addPlot(row=0, col=0)
        self.scatter_a = pg.ScatterPlotItem(size=4, pxMode=True)
        self.scatter_g = pg.ScatterPlotItem(size=4, pxMode=True)
        self.diagonal = pg.PlotDataItem([0, 1], [0, 1])
        for item in (self.diagonal, self.scatter_a, self.scatter_g):
            self.scatter_plot.addItem(item)
        self.scatter_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.scatter_plot.setMouseEnabled(False, False)
        self.acc_plot = lower.addPlot(row=0, col=1)
        self.acc_bars = pg.BarGraphItem(x=[], height=[], width=0.01)
        self.acc_plot.addItem(self.acc_bars)
        self.acc_lines = {k: pg.InfiniteLine(angle=90, movable=False) for k in ("mean", "A", "G", "W")}
        for line in self.acc_lines.values():
            self.acc_plot.addItem(line)
        self.acc_plot.setMouseEnabled(False, False)
        self.placeholder = pg.TextItem(self.EMPTY_HINT, anchor=(0.5, 0.5))
        self.scatter_plot.addItem(self.placeholder, ignoreBounds=True)
        self.placeholder.setPos(0.5, 0.5)
        self.view.ci.layout.setColumnStretchFactor(0, 4)
        self.view.ci.layout.setColumnStretchFactor(1, 5)
        self.view.ci.layout.setRowStretchFactor(0, 3)  # the maps need height: they are 2 × 2
        self.view.ci.layout.setRowStretchFactor(1, 2)

        root = QVBoxLayout(self)
        root.addLayout(row1)
        root.addLayout(row2)
        root.addWidget(self.verdict_label)
        root.addWidget(self.view, 1)
        # What the panel says instead of the tiles when the analysis refuses the run (the conv net:
        # its sites are channels × pixels, not a Linear layer's units): a message in blank tiles
        # was easy to miss (seen: 16 empty tiles and "Press E" under a one-line status).
        self.refusal_label = QLabel("")
        self.refusal_label.setWordWrap(True)
        self.refusal_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.refusal_label.setVisible(False)
        root.addWidget(self.refusal_label, 1)
        self.failure = ""  # the last job's refusal or failure message, until a new request
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap
        sites = tuple(zip(snap.dropout_sites, snap.dropout_rates))
        if sites != self._sites:
            self._set_sites(sites, snap.layer_sizes)
        if self.result is not None and snap.step < self.result.step:
            self.result = None  # a new run
            self._drawn = None
        if (self.auto_check.isChecked() and not self._pending and snap.hparams.dataset != "regression"
                and not self.refusal() and not self.failure
                and snap.status not in ("diverged", "error")
                and (self.result is None or snap.step - self.result.step >= 500)):
            self.request_job()

    def redraw(self) -> None:
        snap = self.snapshot
        data = None if snap is None else snap.data
        key = (None if data is None else (data.kind, id(data)), id(self.result), self.page,
               self.diff_combo.currentIndex(), self.theme.name, self.refusal(), self.failure)
        if key == self._drawn:
            return
        self._drawn = key
        self._draw(data)

    def job_result(self, event: JobEvent) -> None:
        self.result = event.result
        self._drawn = None
        self._show_progress(1, 1, f"{self.result.n_masks} masks")
        self.status_label.setText(self._result_text(self.result))
        self.redraw()

    def job_failed(self, event: JobEvent) -> None:
        super().job_failed(event)
        if event.kind == "failed":  # shown in large type where the tiles were (the conv net's refusal)
            self.failure = event.message
            self._drawn = None
            self.redraw()

    def reset(self) -> None:
        super().reset()
        self.result = None
        self.forget_job()
        self.failure = ""
        self._request = None
        self._drawn = None
        self.page = 0

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.status_label, self.verdict_label, self.auto_check, self.page_label):
            style_text(w, theme)
        style_text(self.refusal_label, theme, round(theme.font_pt * 1.3))
        self.view.setBackground(theme.background)
        # Sixteen tiles and four maps share the width: their titles in a smaller type, capped so a
        # slide's 22 pt does not make the grid wider than the figure (seen: clipped at 1600 px).
        small = max(8, min(round(theme.font_pt * 0.75), 13))
        for plot in [*self.tiles, *self.map_plots, self.scatter_plot, self.acc_plot]:
            style_plot_item(plot, theme)
        for plot in (self.scatter_plot, self.acc_plot):
            plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)
        self.scatter_plot.setLabel("bottom", "W (eval mode)", color=theme.foreground,
                                   **{"font-size": f"{theme.font_pt}pt"})
        self.scatter_plot.setLabel("left", "A, G", color=theme.foreground,
                                   **{"font-size": f"{theme.font_pt}pt"})
        self.acc_plot.setLabel("bottom", "accuracy", color=theme.foreground,
                               **{"font-size": f"{theme.font_pt}pt"})
        self.acc_plot.setLabel("left", "P(m)", color=theme.foreground,
                               **{"font-size": f"{theme.font_pt}pt"})
        self.diagonal.setPen(pg.mkPen(mix(theme.foreground, theme.background, 0.5), width=1,
                                      style=Qt.PenStyle.DashLine))
        self.scatter_a.setBrush(color(theme.val, 160))
        self.scatter_a.setPen(None)
        self.scatter_g.setBrush(color(theme.train, 200))
        self.scatter_g.setPen(None)
        self.scatter_a.setSize(max(3, theme.font_pt // 3))
        self.scatter_g.setSize(max(3, theme.font_pt // 3))
        self.acc_bars.setOpts(brush=color(theme.train, 170), pen=None)
        for name, c, style in (("mean", theme.foreground, Qt.PenStyle.DotLine),
                               ("A", theme.val, Qt.PenStyle.SolidLine),
                               ("G", theme.train, Qt.PenStyle.DashLine),
                               ("W", theme.accent, Qt.PenStyle.DashDotLine)):
            self.acc_lines[name].setPen(pg.mkPen(c, width=theme.line_width, style=style))
        self.placeholder.setColor(mix(theme.foreground, theme.background, 0.3))
        font = self.font()
        font.setPointSize(theme.font_pt)
        self.placeholder.setFont(font)
        self._tile_pt = small
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        self.auto_check.setChecked(False)

    # -------------------------------------------------------------------------------- requests
    def params(self) -> dict:
        """The Request fields the controls ask for (regsim.analyses.ensemble.EnsembleRequest)."""
        data = None if self.snapshot is None else self.snapshot.data
        n = self.units_spin.value()
        block = self.page * TILES // BLOCK
        return {"site": self.site_combo.currentData() or "",
                "units": list(range(n)) if n and n < self._site_width() else [],
                "points": "grid" if data is not None and data.kind == "2d" else "train+val",
                "resolution": 41, "samples": int(self.samples_spin.value()),
                "page": block, "page_size": BLOCK, "order": ORDERS[self.order_combo.currentIndex()][1]}

    def job_started(self, params: dict) -> None:
        self._request = params  # the params of the result shown (or in flight)
        self.failure = ""
        super().job_started(params)

    def job_cancelled_text(self) -> str:
        return "cancelled" + (f" · showing {self._result_text(self.result)}" if self.result is not None
                              else "")

    def turn_page(self, step: int) -> None:
        """Next / previous page of TILES sub-networks; a page outside the fetched block asks again."""
        r = self.result
        pages = max(1, -(-r.n_masks // TILES)) if r is not None else 1
        new = min(max(self.page + step, 0), pages - 1)
        if new == self.page:
            return
        old_block = self.page * TILES // BLOCK
        self.page = new
        if r is not None and new * TILES // BLOCK != old_block:
            self.request_job()
        self._drawn = None
        self.redraw()

    # ------------------------------------------------------------------------------- internals
    def _order_changed(self, *_: object) -> None:
        self.page = 0
        if self.result is not None:
            self.request_job()

    def _invalidate(self, *_: object) -> None:
        self._drawn = None

    def _site_width(self) -> int:
        return int(self.site_combo.currentData(Qt.ItemDataRole.UserRole + 1) or 0)

    def _set_sites(self, sites: tuple, sizes: tuple[int, ...]) -> None:
        """The site combo: one entry per dropout site with its rate and width, the last hidden
        layer (exact G = W) preselected."""
        self._sites = sites
        current = self.site_combo.currentData()
        self.site_combo.blockSignals(True)
        self.site_combo.clear()
        last = len(sites) - 1
        for i, (name, p) in enumerate(sites):
            width = sizes[i] if i < len(sizes) else 0
            where = "last hidden: G = W" if i == last and i > 0 else (
                "input" if i == 0 else "deeper: G ≈ W")
            self.site_combo.addItem(f"{name}: {width} units, p = {p:g} ({where})", name)
            self.site_combo.setItemData(i, width, Qt.ItemDataRole.UserRole + 1)
        names = [s for s, _ in sites]
        self.site_combo.setCurrentIndex(names.index(current) if current in names else max(last, 0))
        self.site_combo.blockSignals(False)

    @staticmethod
    def _result_text(r: EnsembleResult) -> str:
        how = (f"all {r.n_masks} = 2^{len(r.units)} masks" if r.exact else
               f"sampled K = {r.n_masks} masks of 2^{len(r.units)}")
        return (f"{r.site}: {how} at step {r.step} · {r.elapsed * 1e3:.0f} ms"
                + (f" · {r.note}" if r.note else ""))

    @staticmethod
    def verdict(r: EnsembleResult) -> str:
        """Which case the result is, in words, with its numbers."""
        case = ("the last hidden layer feeds the softmax directly: the logits are linear in the mask, "
                "so G = W exactly" if r.linear else
                "ReLU layers lie between this mask and the logits: G ≈ W only")
        return (f"{case} — max |G − W| = {r.max_diff_geometric:.1e}, mean {r.mean_diff_geometric:.1e}; "
                f"max |A − W| = {r.max_diff_arithmetic:.3f}, mean {r.mean_diff_arithmetic:.3f}. "
                f"Accuracy: A {r.accuracy_arithmetic:.3f}, G {r.accuracy_geometric:.3f}, "
                f"W {r.accuracy_weight_scaled:.3f}; one sub-network on average {r.mean_sub_accuracy:.3f}"
                + ("" if r.exact else f" (estimated from K = {r.n_masks} sampled masks)"))

    def page_slice(self) -> tuple[int, int]:
        """The rows of the result's page arrays shown on the current page."""
        r = self.result
        if r is None:
            return 0, 0
        start = self.page * TILES - (self.page * TILES // BLOCK) * BLOCK
        return min(start, len(r.page_index)), min(start + TILES, len(r.page_index))

    # --------------------------------------------------------------------------------- drawing
    def refusal(self) -> str:
        """Why this run has no ensemble to enumerate ("" when it has one): the conv net's dropout
        sites are channels × pixels, not a Linear layer's units (regsim.analyses.base.require)."""
        snap = self.snapshot
        arch = "mlp" if snap is None else getattr(snap.hparams, "architecture", "mlp")
        if arch == "mlp":
            return ""
        return (f"The sub-network ensemble enumerates the masks of an MLP's Linear layer; this run is "
                f"{'the conv net' if arch == 'conv' else 'a ' + arch} (architecture = {arch!r}), whose "
                "dropout sites are channels × pixels.\nChoose architecture = 'mlp' (e.g. the preset "
                f"{SEED_PRESET}) to use this panel.")

    def _draw(self, data: object) -> None:
        message = self.refusal() or (self.failure if self.result is None else "")
        self.refusal_label.setText(message)
        self.refusal_label.setVisible(bool(message))
        self.view.setVisible(not message)
        if self.refusal() and not self.failure and not self._pending:
            self.status_label.setText("no ensemble for this run: see below")
        t = self.theme
        r = self.result
        two_d = r is not None and len(r.grid_shape) == 2
        for img in (*self.tile_images, *self.map_images):
            img.clear()
        for dots in self.tile_masks:
            dots.setData([], [])
        for plot in (*self.tiles, *self.map_plots):
            set_title(plot, "", t, self._tile_pt)
        self.scatter_a.setData([], [])
        self.scatter_g.setData([], [])
        self.acc_bars.setOpts(x=[], height=[], width=0.01)
        for line in self.acc_lines.values():
            line.setVisible(False)
        self.verdict_label.setText("")
        self.placeholder.setVisible(r is None)
        cmap = pg.colormap.get("CET-D1")  # diverging: blue P = 0, white 0.5, red 1 (the Training map)
        diff_map = pg.colormap.get("CET-D1")
        for plot in (*self.tiles, *self.map_plots):
            plot.setRange(xRange=(0, 1), yRange=(-0.12, 1), padding=0)
        self.page_label.setText("")
        if r is None:
            self.placeholder.setText(self.EMPTY_HINT if data is None or data.kind != "1d" else
                                     "The ensemble needs\nclass probabilities:\nchoose moons, xor\n"
                                     "or digits")
            if data is not None and data.kind == "2d" and data.grid_prob is not None:
                # Before a result: eval mode's map from the snapshot, in W's place.
                x0, x1 = float(data.grid_x[0]), float(data.grid_x[-1])
                y0, y1 = float(data.grid_y[0]), float(data.grid_y[-1])
                img = self.map_images[2]
                img.setImage(np.asarray(data.grid_prob), levels=(0.0, 1.0))
                img.setLookupTable(cmap.getLookupTable(nPts=256))
                img.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
                self.map_plots[2].setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
                set_title(self.map_plots[2], "W: eval mode", t, self._tile_pt)
                self._preview_masks()
            set_title(self.acc_plot, "", t, self._tile_pt)
            set_title(self.scatter_plot, "", t, self._tile_pt)
            self.acc_plot.getAxis("bottom").setTickSpacing()  # automatic again over [0, 1]
            return
        self.verdict_label.setText(self.verdict(r))
        lo, hi = self.page_slice()
        pages = max(1, -(-r.n_masks // TILES))
        self.page_label.setText(f"page {self.page + 1} / {pages}")
        n = len(r.units)
        x0 = x1 = y0 = y1 = 0.0
        if two_d:
            x0, x1 = float(r.x[:, 0].min()), float(r.x[:, 0].max())
            y0, y1 = float(r.x[:, 1].min()), float(r.x[:, 1].max())
        for tile, row in enumerate(range(lo, hi)):
            plot, img, dots = self.tiles[tile], self.tile_images[tile], self.tile_masks[tile]
            m = int(r.page_index[row])
            bx, by, bw, bh = (x0, y0, x1 - x0, y1 - y0) if two_d else (0.0, 0.0, 1.0, 1.0)
            if two_d:
                img.setImage(r.page_probs[row][:, 1].reshape(r.grid_shape), levels=(0.0, 1.0))
                img.setLookupTable(cmap.getLookupTable(nPts=256))
                img.setRect(QRectF(bx, by, bw, bh))
            plot.setRange(xRange=(bx, bx + bw), yRange=(by - 0.12 * bh, by + bh), padding=0)
            keep = r.page_masks[row]
            xs = bx + bw * (np.arange(n) + 0.5) / max(n, 1)
            dots.setData(xs, np.full(n, by - 0.06 * bh), size=max(3, min(9, 90 // max(n, 1))),
                         brush=[color(t.accent) if k else color(t.background) for k in keep],
                         pen=pg.mkPen(t.foreground, width=1))
            set_title(plot, f"#{m} · {r.sub_accuracy[m]:.2f}", t, self._tile_pt)
        names = ("A: arithmetic", "G: geometric", "W: eval mode")
        which = self.diff_combo.currentIndex()
        arrays = {"A": r.arithmetic, "G": r.geometric, "W": r.weight_scaled}
        a, b = {0: ("G", "W"), 1: ("A", "W"), 2: ("A", "G")}[which]
        diff = arrays[a] - arrays[b]  # (N, C)
        if two_d:
            for i, key in enumerate("AGW"):
                img = self.map_images[i]
                img.setImage(arrays[key][:, 1].reshape(r.grid_shape), levels=(0.0, 1.0))
                img.setLookupTable(cmap.getLookupTable(nPts=256))
                img.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
                self.map_plots[i].setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
                set_title(self.map_plots[i], names[i], t, self._tile_pt)
            d1 = diff[:, 1].reshape(r.grid_shape)
            span = max(float(np.abs(d1).max()), 1e-12)
            img = self.map_images[3]
            img.setImage(d1, levels=(-span, span))
            img.setLookupTable(diff_map.getLookupTable(nPts=256))
            img.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            self.map_plots[3].setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
            set_title(self.map_plots[3], f"{DIFFS[which]}<br>±{span:.1e}", t, self._tile_pt)
        else:
            set_title(self.map_plots[0], "maps: 2-D data only", t, self._tile_pt)
        w = r.weight_scaled.reshape(-1)
        self.scatter_a.setData(w, r.arithmetic.reshape(-1))
        self.scatter_g.setData(w, r.geometric.reshape(-1))
        set_title(self.scatter_plot, "A (orange), G (blue)<br>against W", t, self._tile_pt)
        centers, heights, width = self.accuracy_histogram(r)
        self.acc_bars.setOpts(x=centers, height=heights, width=width)
        for name, value in (("mean", r.mean_sub_accuracy), ("A", r.accuracy_arithmetic),
                            ("G", r.accuracy_geometric), ("W", r.accuracy_weight_scaled)):
            self.acc_lines[name].setPos(value)
            self.acc_lines[name].setVisible(True)
        set_title(self.acc_plot, f"{'all' if r.exact else 'K sampled'} {r.n_masks} sub-nets<br>"
                  "dotted: mean · A, G, W", t, self._tile_pt)
        lo_x = min(float(r.sub_accuracy.min()), r.accuracy_arithmetic) - width
        hi_x = max(float(r.sub_accuracy.max()), r.accuracy_arithmetic, r.accuracy_weight_scaled) + width
        self.acc_plot.setRange(xRange=(lo_x, hi_x), yRange=(0, max(float(heights.max()), 1e-9) * 1.05),
                               padding=0.02)
        # At most ~3 labelled ticks: five 5-character labels ran into each other on a slide.
        step = _nice_step((hi_x - lo_x) / 3)
        self.acc_plot.getAxis("bottom").setTickSpacing(step, step / 2)

    def _preview_masks(self) -> None:
        """Before a result: the masks page 1 will show (mask index i: bit j = unit j kept), known
        from the site's width alone when it is enumerated exactly."""
        width = self._site_width()
        n = min(self.units_spin.value() or width, width)
        if not 0 < n <= MAX_UNITS or width > MAX_UNITS and not self.units_spin.value():
            return
        t = self.theme
        xs = (np.arange(n) + 0.5) / n
        for i in range(min(TILES, 2**n)):
            keep = (i >> np.arange(n)) & 1
            self.tile_masks[i].setData(xs, np.full(n, -0.06), size=max(3, min(9, 90 // n)),
                                       brush=[color(t.accent) if k else color(t.background) for k in keep],
                                       pen=pg.mkPen(t.foreground, width=1))
            set_title(self.tiles[i], f"#{i}", t, self._tile_pt)

    @staticmethod
    def accuracy_histogram(r: EnsembleResult) -> tuple[np.ndarray, np.ndarray, float]:
        """P(m)-weighted histogram of the sub-networks' accuracies: (centres, mass, bar width). The
        accuracies are multiples of 1/M (M labelled points): one bar per value when few, else 40 bins."""
        acc = r.sub_accuracy
        values = np.unique(acc)
        if len(values) <= 60:
            step = float(np.min(np.diff(values))) if len(values) > 1 else 0.01
            mass = np.array([r.mask_weight[acc == v].sum() for v in values])
            return values, mass, step * 0.8
        edges = np.linspace(float(acc.min()), float(acc.max()), 41)
        mass, _ = np.histogram(acc, bins=edges, weights=r.mask_weight)
        return (edges[:-1] + edges[1:]) / 2, mass, float(edges[1] - edges[0]) * 0.9
