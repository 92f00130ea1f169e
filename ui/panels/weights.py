"""Weights panel: what weight decay does to the weights themselves.

Weight decay acts on the parameters, not on the loss curve, so this panel shows them directly: the
live histogram of every layer (decay pulls the distribution toward zero), the distribution of one
layer over time as TensorBoard-style percentile bands (the bands narrow when λ goes up), and each
layer's norm ‖W‖ (decoupled decay shrinks it by the factor (1 − ηλ) per step until the gradient
pushes back). The tooltips carry the math, in plain Unicode, next to the plots that show it.

Compare mode (two or more runs): the histogram overlays every run's chosen layer, the norm plot adds
the other runs' total ‖W‖, the bands become one set per run in the run's colour (its 16–84 % band
filled, its 0–100 % range as thin lines, its median) so λ narrowing B's distribution reads against
A's on one axis, and the readout is a table with a row per run (λ, the shrink per step, ‖W‖ and
max|w| of the chosen layer, total ‖W‖). With one run every plot is the single-run one.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QWidget

from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import (
    ChangeMarkers,
    FastFillBetween,
    LegendRow,
    color,
    fill_background,
    limit_degenerate,
    show_empty,
    style_legend,
    style_plot,
    style_text,
)
from ui.run_colors import run_color
from ui.theme import Theme
from ui.widgets import LiveLabel, drawable_text

MAX_MARKERS = 30  # settings-change markers per plot (the most recent steps)
MAX_LAYERS = 9  # up to 8 hidden layers plus the output layer (see HParams validation)
# Distinct colours per layer (Tableau 10), readable on the dark screen and on a white slide.
LAYER_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                "#ff9da7", "#9c755f")
# Index pairs into History.PERCENTILES: the 0–100, 7–93, 16–84 and 31–69 percentile bands.
BANDS = ((0, 8), (1, 7), (2, 6), (3, 5))
BAND_NAMES = ("0–100 %", "7–93 %", "16–84 %", "31–69 %")
MEDIAN = 4
BAND_ALPHA = 55  # per band; nested bands overlap, so the inner ones come out darker
RUN_BAND = (2, 6)  # Compare mode: the 16–84 % band filled per run (index pair into PERCENTILES)
RUN_RANGE = (0, 8)  # Compare mode: the 0–100 % range as thin lines per run
RUN_BAND_ALPHA = 60

DECOUPLED_TIP = ("Decoupled weight decay (AdamW, SGDW):\n"
                 "  θ ← θ − η·λ·θ   (separately from the gradient step)\n"
                 "so every step multiplies each decayed weight by (1 − ηλ).\n"
                 "Without a gradient pushing back, after k steps: (1 − ηλ)ᵏ ≈ e^(−ηλk);\n"
                 "the norm halves in about ln 2 / (ηλ) steps.")
L2_TIP = ("L2 regularization: the penalty ½λ‖θ‖² is added to the loss,\n"
          "so λθ is added to the gradient:  g ← ∇L + λθ.\n"
          "With plain SGD one step is θ ← (1 − ηλ)·θ − η·∇L: the same shrink factor.\n"
          "With Adam the λθ term is divided by √v̂ like the rest of the gradient,\n"
          "so weights with large gradients are barely decayed; decoupling fixes that.")
L2_TIP = drawable_text(L2_TIP)  # the hat of v̂ over its v (ui/widgets.py)
PRIOR_TIP = ("Bayesian view: weight decay is MAP estimation with a Gaussian prior θ ~ N(0, σ²),\n"
             "  −log p(θ) = ‖θ‖² / (2σ²) + const.\n"
             "regsim adds ½λ‖θ‖² to the loss averaged over the N training examples (λθ in the\n"
             "gradient); times N that is the summed negative log-likelihood plus ½Nλ‖θ‖², so\n"
             "σ² = 1/(Nλ), σ = 1/√(Nλ). (λ = 1/σ² holds for a summed loss.) Larger λ = narrower prior.\n"
             "With decoupled decay and Adam the shrink is no gradient of any penalty on this loss,\n"
             "so it is not a prior; the Bayesian view panel (Weight decay chapter) shows σ live.")


def run_histogram(snap: Snapshot, layer: int, fixed: bool, density: bool) -> tuple[np.ndarray, np.ndarray]:
    """(edges, heights) of one layer's histogram in `snap`: on the fixed axis when asked and measured,
    as a density (counts / Σ counts·Δedge, area 1) when `density`."""
    fixed = fixed and len(snap.weight_hist_fixed) > layer
    counts = np.asarray((snap.weight_hist_fixed if fixed else snap.weight_hist)[layer], dtype=np.float64)
    edges = np.asarray((snap.weight_hist_fixed_edges if fixed else snap.weight_hist_edges)[layer],
                       dtype=np.float64)
    if density:
        area = float(np.sum(counts * np.diff(edges)))
        counts = counts / area if area > 0 else counts
    return edges, counts


class WeightsPanel(Panel):
    """Per-layer weight histograms, percentile bands over time, weight norms and the decay math."""

    key = "weights"
    title = "Weights"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._names: tuple[str, ...] = ()
        self._density_shown: bool | None = None  # the y label the histogram plot shows
        self._band_layer = -1  # the layer the bands are styled for

        self._plots_key: tuple | None = None  # what the plots show (see Panel.data_key)
        self.layer_box = QComboBox()
        # A width that does not depend on history: by default Qt caches the size computed while the
        # box was still empty and recomputes it only at a restyle, so an export moved the live
        # controls 34 px (issue 8 #3). Layer names are short ("fc1", "input").
        self.layer_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_box.setMinimumContentsLength(6)
        self.layer_box.setToolTip("The layer whose distribution over time is drawn as bands "
                                  "(and whose histogram is emphasized).")
        self.layer_box.currentIndexChanged.connect(lambda _i: self.redraw())
        self.layer_label = QLabel("layer")
        self.layer_label.setProperty("export_hidden", True)  # its box is hidden in figures too
        self.density = QCheckBox("normalize histograms")
        self.density.setChecked(True)
        self.density.setToolTip("Draw each layer's histogram as a density (area 1), so a small "
                                "layer is as visible as a large one. Off: raw counts.")
        self.density.toggled.connect(lambda _on: self.redraw())
        self.fixed_axis = QCheckBox("fixed axis")
        self.fixed_axis.setChecked(True)
        self.fixed_axis.setToolTip("Keep the histogram's weight axis where it was when training "
                                   "started (or at the last reset),\nso raising λ shows the "
                                   "weights compressing toward 0. Off: the axis follows ±max|w|.")
        self.fixed_axis.toggled.connect(self._on_fixed_toggled)
        self._fixed_range: float | None = None  # the ±range the histogram x-axis is locked to

        # Live histograms, all layers overlaid; the legend names them.
        self.hist_widget = pg.PlotWidget()
        self.hist_plot = self.hist_widget.getPlotItem()
        self.hist_legend = LegendRow(self.hist_plot, columns=5)  # above the plot: covers no data
        self.hist_items: list[pg.PlotDataItem] = []
        for _ in range(MAX_LAYERS):
            item = pg.PlotDataItem(stepMode="center", fillLevel=0, antialias=True)
            self.hist_plot.addItem(item)
            self.hist_items.append(item)
        self.hist_widget.setToolTip("Weight values of each layer now.\n\n" + DECOUPLED_TIP)
        # Compare mode (set_run_snapshots): every run's histogram of the chosen layer as an outline
        # in the run's colour, over the selected run's filled ones: λ narrowing it, run against run.
        self._run_snaps: dict[str, Snapshot] = {}
        self._hist_comparing = False  # the histogram shows runs (one layer) instead of layers
        self._hist_run_legend: list[pg.PlotDataItem] = []
        self.run_hists: list[pg.PlotDataItem] = []
        for _ in range(4):
            item = pg.PlotDataItem(stepMode="center", antialias=True)
            item.setVisible(False)
            self.hist_plot.addItem(item)
            self.run_hists.append(item)

        # One layer's distribution over time: nested percentile bands plus the median.
        # Its key is in the readout beside it: a legend inside would cover the widest band.
        self.band_widget = pg.PlotWidget()
        self.band_plot = self.band_widget.getPlotItem()
        self.band_edges: list[tuple[pg.PlotDataItem, pg.PlotDataItem]] = []
        self.band_fills: list[FastFillBetween] = []
        for _ in BANDS:
            lo, hi = pg.PlotDataItem(), pg.PlotDataItem()
            fill = FastFillBetween(lo, hi)
            for item in (lo, hi, fill):
                self.band_plot.addItem(item)
            self.band_edges.append((lo, hi))
            self.band_fills.append(fill)
        self.median_curve = pg.PlotDataItem(antialias=True)
        self.band_plot.addItem(self.median_curve)
        # Compare mode: per run, its 16–84 % band filled, its 0–100 % range and its median, in the
        # run's colour (the nested layer-coloured bands above are hidden meanwhile).
        self._bands_comparing = False
        self._run_bands_shown: int | None = None
        self.run_bands: list[dict[str, pg.GraphicsObject]] = []
        for _ in range(4):
            parts: dict[str, pg.GraphicsObject] = {
                "lo": pg.PlotDataItem(), "hi": pg.PlotDataItem(),
                "min": pg.PlotDataItem(antialias=True), "max": pg.PlotDataItem(antialias=True),
                "median": pg.PlotDataItem(antialias=True)}
            parts["fill"] = FastFillBetween(parts["lo"], parts["hi"])
            for item in parts.values():
                item.setVisible(False)
                self.band_plot.addItem(item)
            self.run_bands.append(parts)
        self.band_widget.setToolTip("Percentiles of the selected layer's weights at each step "
                                    "(TensorBoard's distributions).\nThe bands narrow as decay "
                                    "pulls weights toward 0.\n\n" + PRIOR_TIP)

        # Norms over time, per layer and in total.
        self.norm_widget = pg.PlotWidget()
        self.norm_plot = self.norm_widget.getPlotItem()
        self.norm_legend = LegendRow(self.norm_plot, columns=5)
        self.norm_items: list[pg.PlotDataItem] = []
        for _ in range(MAX_LAYERS):
            item = pg.PlotDataItem(antialias=True)
            self.norm_plot.addItem(item)
            self.norm_items.append(item)
        self.total_norm = pg.PlotDataItem(antialias=True)
        self.norm_plot.addItem(self.total_norm)
        # Compare mode (set_runs): the other runs' total ‖W‖, each in its run's colour, beside the
        # selected run's layers and total: λ's effect on the norm, run against run.
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self._run_legend: list[pg.PlotDataItem] = []
        self.run_totals: list[pg.PlotDataItem] = []
        for _ in range(4):
            item = pg.PlotDataItem(antialias=True)
            item.setVisible(False)
            self.norm_plot.addItem(item)
            self.run_totals.append(item)
        # Settings changes (λ above all) on both plots over time, as in the Training panel.
        self.norm_markers = ChangeMarkers(self.norm_plot, MAX_MARKERS)
        self.band_markers = ChangeMarkers(self.band_plot, MAX_MARKERS)
        self.norm_widget.setToolTip("Frobenius norm ‖W‖ = √(Σ w²) of each weight matrix, and the "
                                    "total √(Σ‖W‖²).\n\n" + DECOUPLED_TIP + "\n\n" + L2_TIP)

        self.readout = LiveLabel("waiting for the first snapshot")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.readout.setWordWrap(True)
        self.readout.setToolTip(DECOUPLED_TIP + "\n\n" + L2_TIP + "\n\n" + PRIOR_TIP)

        controls = QHBoxLayout()
        controls.addWidget(self.layer_label)
        controls.addWidget(self.layer_box)
        controls.addSpacing(20)
        controls.addWidget(self.density)
        controls.addSpacing(20)
        controls.addWidget(self.fixed_axis)
        controls.addStretch(1)
        grid = QGridLayout(self)
        grid.addLayout(controls, 0, 0, 1, 2)
        grid.addWidget(self.hist_widget, 1, 0)
        grid.addWidget(self.norm_widget, 1, 1)
        grid.addWidget(self.band_widget, 2, 0)
        grid.addWidget(self.readout, 2, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setRowStretch(1, 1)
        grid.setRowStretch(2, 1)

        for plot in (self.band_plot, self.norm_plot):
            limit_degenerate(plot, min_y=0.02)
        self.apply_theme(self.theme)

    # ------------------------------------------------------------------------------ Panel contract

    def redraw(self) -> None:
        """Push the newest histograms and the history's bands and norms into the plot items."""
        snap = self.snapshot
        names = snap.layer_names[:MAX_LAYERS] if snap is not None else ()
        if names != self._names:
            self._set_layers(names)
            self._plots_key = None
        key = (self.data_key(), self.layer_box.currentIndex(), self.density.isChecked(),
               self.fixed_axis.isChecked(), self._runs_key())
        if key == self._plots_key:
            return  # histograms, bands and norms are what is on screen already
        self._plots_key = key
        empty = len(self.history) == 0
        show_empty(self.norm_plot, empty, theme=self.theme)
        show_empty(self.band_plot, empty, y=(-1.0, 1.0), hint="")
        # Histograms are measured only while this panel shows (Snapshot.measured): until they
        # come, an empty plot rather than the last ones measured.
        no_hist = snap is None or "histograms" not in snap.measured or not snap.weight_hist
        show_empty(self.hist_plot, no_hist, x=(-1.0, 1.0), y=(0.0, 1.0),
                   hint="" if snap is None else "histograms are measured while this panel shows",
                   theme=self.theme)
        if snap is None:
            self._fixed_range = None
        self._draw_histograms(snap)
        self._draw_run_histograms()
        self._draw_bands()
        self._draw_run_bands()
        self._draw_norms()
        events = self.history.visible_events()
        self.norm_markers.set_events(events)
        self.band_markers.set_events(events)
        self.readout.setText(self._readout_html(snap) if not self._bands_comparing
                             else self._runs_readout_html())

    def reset(self) -> None:
        """Forget the run: empty every curve and the layer list."""
        self._plots_key = None
        super().reset()
        self._set_layers(())
        for item in self.hist_items + self.norm_items + [self.total_norm, self.median_curve]:
            item.setData([], [])
        for lo, hi in self.band_edges:
            lo.setData([], [])
            hi.setData([], [])
        self.norm_markers.set_events([])
        self.band_markers.set_events([])
        for item in self._hist_run_legend:
            self.hist_legend.removeItem(item)
        self._hist_run_legend = []
        for item in self.run_hists:
            item.setVisible(False)
            item.setData([], [])
        self._show_run_bands(0)
        self._fixed_range = None
        show_empty(self.norm_plot, True)
        show_empty(self.band_plot, True, y=(-1.0, 1.0), hint="")
        show_empty(self.hist_plot, True, x=(-1.0, 1.0), y=(0.0, 1.0), hint="")
        self.readout.setText("waiting for the first snapshot")

    def apply_theme(self, theme: Theme) -> None:
        """Restyle plots, curves, legends and text for `theme`, then redraw."""
        super().apply_theme(theme)
        self._plots_key = None
        t = theme
        fill_background(self, t)
        self.norm_markers.set_style(t)
        self.band_markers.set_style(t)
        for w in (self.layer_label, self.density, self.fixed_axis, self.readout):
            style_text(w, t)
        self.layer_box.setStyleSheet(f"font-size: {t.font_pt}pt;")
        style_plot(self.hist_widget, t, "Weight histograms (now)", self._hist_ylabel(),
                   "weight value")
        style_plot(self.band_widget, t, self._band_title(), "weight value", "step")
        style_plot(self.norm_widget, t, "Weight norms ‖W‖", "‖W‖", "step")
        show_empty(self.norm_plot, len(self.history) == 0, theme=t)
        for legend in (self.hist_legend, self.norm_legend):
            style_legend(legend, t)
        for i, item in enumerate(self.norm_items):
            item.setPen(pg.mkPen(LAYER_COLORS[i], width=t.line_width))
        self.total_norm.setPen(pg.mkPen(t.foreground, width=t.line_width * 1.25,
                                        style=Qt.PenStyle.DashLine))
        self._style_histograms()
        self._style_bands()
        self.redraw()

    # ----------------------------------------------------------------------------------- drawing

    def selected_layer(self) -> int:
        """Index of the layer shown as bands (0 when none is selected yet)."""
        return max(0, self.layer_box.currentIndex())

    def _set_layers(self, names: tuple[str, ...]) -> None:
        """New layer names (a new architecture): refill the selector and the legends."""
        self._names = names
        keep = self.layer_box.currentText()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(list(names))
        if keep in names:
            self.layer_box.setCurrentIndex(names.index(keep))
        self.layer_box.blockSignals(False)
        self._band_layer = -1  # restyle the bands: the title names the layer
        self.hist_legend.clear()
        self.norm_legend.clear()
        for i in range(MAX_LAYERS):
            shown = i < len(names)
            self.hist_items[i].setVisible(shown)
            self.norm_items[i].setVisible(shown)
            if shown:
                self.hist_legend.addItem(self.hist_items[i], names[i])
                self.norm_legend.addItem(self.norm_items[i], names[i])
            else:
                self.hist_items[i].setData([], [])
                self.norm_items[i].setData([], [])
        if names:
            self.norm_legend.addItem(self.total_norm, "total")
        self._style_histograms()

    def _draw_histograms(self, snap: Snapshot | None) -> None:
        """Each layer's histogram; on the fixed axis, the counts binned over the locked range."""
        n = len(self._names)
        if snap is None or not n:
            return
        if "histograms" not in snap.measured or len(snap.weight_hist) < n:
            for item in self.hist_items:
                item.setData([], [])
            return
        density = self.density.isChecked()
        fixed = self.fixed_axis.isChecked() and len(snap.weight_hist_fixed) >= n
        all_edges = snap.weight_hist_fixed_edges if fixed else snap.weight_hist_edges
        for i in range(n):
            self.hist_items[i].setData(*run_histogram(snap, i, fixed, density))
        if density != self._density_shown:
            self._density_shown = density
            style_plot(self.hist_widget, self.theme, None, self._hist_ylabel())
            self.hist_plot.enableAutoRange()
            self._fixed_range = None
        if fixed:
            r = max(float(np.max(np.abs(e))) for e in all_edges[:n])
            if r != self._fixed_range:
                self._fixed_range = r
                self.hist_plot.enableAutoRange(axis="y")
                self.hist_plot.setXRange(-r, r, padding=0.02)  # also stops x auto-range
        elif self._fixed_range is not None:
            self._fixed_range = None
            self.hist_plot.enableAutoRange()

    def _on_fixed_toggled(self, _on: bool) -> None:
        self._fixed_range = None
        self.hist_plot.enableAutoRange()
        self.redraw()

    def _draw_bands(self) -> None:
        steps, bands = self._percentiles()
        layer = self.selected_layer()
        if bands.ndim != 3 or layer >= bands.shape[1] or len(steps) == 0:
            steps, layer_bands = np.zeros(0), np.zeros((0, len(History.PERCENTILES)))
        else:
            layer_bands = bands[:, layer, :]
        for (lo, hi), (i, j) in zip(self.band_edges, BANDS, strict=True):
            lo.setData(steps, layer_bands[:, i])
            hi.setData(steps, layer_bands[:, j])
        self.median_curve.setData(steps, layer_bands[:, MEDIAN])
        if layer != self._band_layer:
            self._band_layer = layer
            self._style_bands()

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window, every snapshot): (name, History, colour slot) per run."""
        self._runs = list(runs)[:len(self.run_totals)]
        self._selected = selected

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        """Compare mode (from the window, every tick): each run's latest Snapshot by name."""
        self._run_snaps = dict(snapshots)

    def _runs_key(self) -> tuple:
        return (self._selected, tuple((n, slot, id(h), len(h)) for n, h, slot in self._runs),
                tuple((n, id(s)) for n, s in self._run_snaps.items()))

    def _draw_run_histograms(self) -> None:
        """Compare mode: the chosen layer of every run, one step curve each in the run's colour, the
        selected run filled. The layer colours are dropped meanwhile: two palettes on one plot read
        as one (run B's orange is layer fc2's orange). With one run nothing here is drawn, so the
        single-run panel is unchanged."""
        t = self.theme
        for item in self._hist_run_legend:
            self.hist_legend.removeItem(item)
        self._hist_run_legend = []
        layer = self.selected_layer()
        shown = []
        if len(self._runs) > 1:
            for name, _h, slot in self._runs:
                snap = self._run_snaps.get(name)
                if snap is not None and "histograms" in snap.measured \
                        and layer < len(snap.weight_hist) and layer < len(self._names):
                    shown.append((name, slot, snap))
        comparing = len(shown) > 1
        if comparing != self._hist_comparing:
            self._hist_comparing = comparing
            if comparing:
                for item in self.hist_items:
                    self.hist_legend.removeItem(item)
                    item.setVisible(False)
            else:
                self._set_layers(self._names)  # the layers and their legend back
        density = self.density.isChecked()
        for i, item in enumerate(self.run_hists):
            if not comparing or i >= len(shown):
                item.setVisible(False)
                item.setData([], [])
                continue
            name, slot, snap = shown[i]
            edges, counts = run_histogram(snap, layer, self.fixed_axis.isChecked(), density)
            c = run_color(slot, t.name)
            selected = name == self._selected
            item.setPen(pg.mkPen(c, width=t.line_width * (1.25 if selected else 1.0)))
            item.setFillLevel(0 if selected else None)
            item.setFillBrush(color(c, 90) if selected else None)
            item.setZValue(1 if selected else 2)  # the outlines over the filled one
            item.setData(edges, counts)
            item.setVisible(True)
            self.hist_legend.addItem(item, f"{name} {self._names[layer]}")
            self._hist_run_legend.append(item)

    def _run_band_data(self) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
        """(name, slot, steps, bands (T, 9)) of the chosen layer for every run with percentiles."""
        layer = self.selected_layer()
        out = []
        for name, h, slot in self._runs:
            try:
                steps, bands = h.percentiles()
            except (ValueError, AttributeError):  # layers changed mid-history: no bands for it
                continue
            if bands.ndim == 3 and layer < bands.shape[1] and len(steps):
                out.append((name, slot, steps, bands[:, layer, :]))
        return out

    def _show_run_bands(self, n: int) -> None:
        """Per-run bands for the first `n` runs; the layer-coloured bands only when n == 0."""
        if n == 0 and self._run_bands_shown == 0:
            return  # one run, as before: nothing to hide again (redraw is called per frame)
        self._run_bands_shown = n
        for i, parts in enumerate(self.run_bands):
            for item in parts.values():
                item.setVisible(i < n)
            if i >= n:
                for key in ("lo", "hi", "min", "max", "median"):
                    parts[key].setData([], [])
        single = n == 0
        self._bands_comparing = not single
        for (lo, hi), fill in zip(self.band_edges, self.band_fills, strict=True):
            for item in (lo, hi, fill):
                item.setVisible(single)
        self.median_curve.setVisible(single)

    def _draw_run_bands(self) -> None:
        """Compare mode: the chosen layer's distribution over time of every run, in its colour."""
        data = self._run_band_data() if len(self._runs) > 1 else []
        if len(data) < 2:
            self._show_run_bands(0)
            return
        self._show_run_bands(len(data))
        t = self.theme
        for parts, (name, slot, steps, bands) in zip(self.run_bands, data, strict=False):
            c = run_color(slot, t.name)
            selected = name == self._selected
            edge = pg.mkPen(color(c, 140), width=1)
            parts["lo"].setPen(edge)
            parts["hi"].setPen(edge)
            parts["fill"].setBrush(color(c, RUN_BAND_ALPHA))
            thin = pg.mkPen(color(c, 200), width=max(1.0, t.line_width / 2), style=Qt.PenStyle.DotLine)
            parts["min"].setPen(thin)
            parts["max"].setPen(thin)
            parts["median"].setPen(pg.mkPen(c, width=t.line_width * (1.25 if selected else 1.0)))
            parts["lo"].setData(steps, bands[:, RUN_BAND[0]])
            parts["hi"].setData(steps, bands[:, RUN_BAND[1]])
            parts["min"].setData(steps, bands[:, RUN_RANGE[0]])
            parts["max"].setData(steps, bands[:, RUN_RANGE[1]])
            parts["median"].setData(steps, bands[:, MEDIAN])
        style_plot(self.band_widget, t, self._band_title())

    def _runs_readout_html(self) -> str:
        """Compare mode: one row per run (its colour, λ and mode, the shrink per step, ‖W‖ and max|w|
        of the chosen layer, total ‖W‖), then the band key."""
        t = self.theme
        layer = self.selected_layer()
        lname = self._names[layer] if layer < len(self._names) else "layer"
        pad = f"style='padding-left:{t.font_pt}px'"
        rows = []
        for name, _h, slot in self._runs:
            snap = self._run_snaps.get(name)
            if snap is None:
                continue
            hp = snap.hparams
            lam = hp.weight_decay
            if lam > 0 and hp.decay_mode in ("decoupled", "decoupled_paper"):
                rate = ((snap.lr / hp.lr) if hp.decay_mode == "decoupled_paper" else snap.lr) * lam
                shrink = f"θ·{1.0 - rate:.6f}"
            elif lam > 0:
                shrink = "∇ + λθ"
            else:
                shrink = "—"
            norms = np.asarray(snap.weight_norms, dtype=np.float64)
            w = f"{float(norms[layer]):.3f}" if layer < len(norms) else "—"
            m = (f"{float(snap.weight_abs_max[layer]):.3f}" if layer < len(snap.weight_abs_max)
                 else "—")
            total = float(np.sqrt(np.sum(np.square(norms))))
            c = run_color(slot, t.name)
            # nowrap: a slide's large type wrapped "λ = 0.001 (l2)" over three lines
            rows.append(f"<tr><td><span style='color:{c}'><b>{name}</b></span></td>"
                        f"<td nowrap {pad}>{lam:g} ({hp.decay_mode})</td><td nowrap {pad}>{shrink}</td>"
                        f"<td align='right' {pad}>{w}</td><td align='right' {pad}>{m}</td>"
                        f"<td align='right' {pad}>{total:.3f}</td></tr>")
        table = (f"<table cellspacing='0' cellpadding='3'><tr><th align='left'>run</th>"
                 f"<th align='left' {pad}>λ</th><th nowrap align='left' {pad}>each step</th>"
                 f"<th nowrap align='right' {pad}>‖W‖ {lname}</th><th align='right' {pad}>max|w|</th>"
                 f"<th nowrap align='right' {pad}>‖W‖ all</th></tr>{''.join(rows)}</table>")
        key = (f"<p>Bands of {lname} per run: filled 16–84 %, dotted 0–100 %, line the median, "
               "each in its run's colour.</p>")
        return table + key

    def _draw_run_totals(self) -> None:
        """The other runs' total norm curves, and their legend entries."""
        others = [(n, h, slot) for n, h, slot in self._runs if n != self._selected] \
            if len(self._runs) > 1 else []
        t = self.theme
        for item in self._run_legend:
            self.norm_legend.removeItem(item)
        self._run_legend = []
        for i, item in enumerate(self.run_totals):
            if i < len(others):
                name, h, slot = others[i]
                item.setPen(pg.mkPen(run_color(slot, t.name), width=t.line_width * 1.25))
                item.setData(h.series("step"), h.series("weight_norm"))
                item.setVisible(True)
                self.norm_legend.addItem(item, f"total {name}")
                self._run_legend.append(item)
            else:
                item.setVisible(False)
                item.setData([], [])

    def _draw_norms(self) -> None:
        self._draw_run_totals()
        h = self.history
        n = len(self._names)
        if len(h) == 0 or not n:
            for item in self.norm_items + [self.total_norm]:
                item.setData([], [])
            return
        steps = h.series("step")
        try:
            norms = h.layer_norm_series()
        except ValueError:  # the layer count changed mid-history; draw the total only
            norms = np.zeros((len(h), 0))
        for i in range(n):
            if i < norms.shape[1]:
                self.norm_items[i].setData(steps, norms[:, i])
            else:
                self.norm_items[i].setData([], [])
        self.total_norm.setData(steps, h.series("weight_norm"))

    def _percentiles(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.history.percentiles()
        except ValueError:  # layers of different counts cannot stack (architecture changed)
            return np.zeros(0), np.zeros((0, 0, len(History.PERCENTILES)))

    def _style_histograms(self) -> None:
        """Every layer in its colour; the selected one opaque and thicker so it reads first."""
        t = self.theme
        sel = self.selected_layer()
        for i, item in enumerate(self.hist_items):
            focus = i == sel
            width = t.line_width if focus else t.line_width / 2
            item.setPen(pg.mkPen(LAYER_COLORS[i], width=width))
            item.setFillBrush(color(LAYER_COLORS[i], 110 if focus else 35))
            item.setZValue(1 if focus else 0)
        self._density_shown = None  # forces the y label to be refreshed

    def _style_bands(self) -> None:
        """Bands in the selected layer's colour; nested bands stack to a darker core."""
        t = self.theme
        layer = self.selected_layer()
        self._band_layer = layer
        c = LAYER_COLORS[layer % len(LAYER_COLORS)]
        edge = pg.mkPen(color(c, 90), width=1)
        for (lo, hi), fill in zip(self.band_edges, self.band_fills, strict=True):
            lo.setPen(edge)
            hi.setPen(edge)
            fill.setBrush(color(c, BAND_ALPHA))
        self.median_curve.setPen(pg.mkPen(c, width=t.line_width))
        style_plot(self.band_widget, t, self._band_title())
        self._style_histograms()

    def _band_title(self) -> str:
        name = self._names[self.selected_layer()] if self._names else "a layer"
        return f"Distribution of {name} over time"

    def _hist_ylabel(self) -> str:
        return "density" if self.density.isChecked() else "count"

    def _readout_html(self, snap: Snapshot | None) -> str:
        """λ, decay mode, the per-step shrink factor and a per-layer table of ‖W‖ and max|w|."""
        if snap is None:
            return "waiting for the first snapshot"
        hp = snap.hparams
        lam, eta = hp.weight_decay, snap.lr
        lines = [f"<b>λ = {lam:g}</b> ({hp.decay_mode}) · η = {eta:.3g}"]
        if lam > 0 and hp.decay_mode in ("decoupled", "decoupled_paper"):
            paper = hp.decay_mode == "decoupled_paper"  # η_t·λ: the schedule multiplier, not lr
            rate = (eta / hp.lr if paper else eta) * lam
            lines.append(f"each step: θ ← θ·(1 − {'η_t' if paper else 'η'}λ) = θ·{1.0 - rate:.6f}")
            if 0 < rate < 1:
                lines.append(f"half-life without gradient ≈ {math.log(2) / rate:,.0f} steps")
        elif lam > 0:
            lines.append("gradient gets + λθ (penalty ½λ‖θ‖²)")
        else:
            lines.append("no weight decay")
        if not hp.decay_norms_and_biases:
            lines.append("biases and norm parameters are not decayed")
        pad = f"style='padding-left:{self.theme.font_pt}px'"  # columns apart at any font size
        rows = "".join(
            f"<tr><td><span style='color:{LAYER_COLORS[i]}'>■</span> {name}</td>"
            f"<td align='right' {pad}>{float(snap.weight_norms[i]):.3f}</td>"
            f"<td align='right' {pad}>{float(snap.weight_abs_max[i]):.3f}</td></tr>"
            for i, name in enumerate(self._names) if i < len(snap.weight_norms))
        table = (f"<table cellspacing='0' cellpadding='3'><tr><th align='left'>layer</th>"
                 f"<th align='right' {pad}>‖W‖</th><th align='right' {pad}>max|w|</th></tr>"
                 f"{rows}</table>")
        return "<br>".join(lines) + table + self._band_key_html()

    def _band_key_html(self) -> str:
        """The band plot's key: each band's colour as it appears (blended on the background)."""
        t = self.theme
        if not self._names:
            return ""
        layer = self.selected_layer()
        c, bg = color(LAYER_COLORS[layer % len(LAYER_COLORS)]), color(t.background)
        swatches = []
        for k, name in enumerate(BAND_NAMES):
            a = 1.0 - (1.0 - BAND_ALPHA / 255) ** (k + 1)  # k + 1 nested bands painted here
            mix = [round(a * x + (1 - a) * y)
                   for x, y in zip(c.getRgb()[:3], bg.getRgb()[:3], strict=True)]
            swatches.append(f"<span style='color:rgb({mix[0]},{mix[1]},{mix[2]})'>█</span>&nbsp;"
                            + name.replace(" ", "&nbsp;"))
        median = f"<span style='color:{c.name()}'>━</span>&nbsp;median"
        return (f"<p>Bands of {self._names[layer]} (percentiles over time):<br>"
                + " &nbsp; ".join(swatches + [median]) + "</p>")
