"""Bayesian view: weight decay as the Gaussian prior N(0, σ²) on the weights, over the live histogram.

With the data loss averaged over N training points and the penalty λ/2‖w‖², MAP estimation under
the prior N(0, σ²) is the same minimization when σ² = 1/(Nλ) (regsim/prior.py derives it; the seed
text's λ = 1/σ² is for a summed loss). The panel draws one weight matrix's live histogram as a
density and the implied prior's density on the same axis, with σ, the formula with the run's numbers,
and the weights' own spread beside it. For AdamW (decoupled decay with Adam) there is no such prior on
this loss, and the panel says so instead of drawing one.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QWidget

from regsim import prior as pr
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import color, fill_background, show_empty, style_plot, style_text
from ui.theme import Theme

GREEN = "#59a14f"
POINTS = 400  # samples of the prior's density curve


class PriorPanel(Panel):
    """One layer's weight density now, and the prior N(0, 1/(Nλ)) weight decay corresponds to."""

    key = "prior"
    title = "Bayesian view"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._key: tuple | None = None
        self._choice = 0  # the layer chosen, kept while the histograms are not measured
        self.layer_box = QComboBox()
        self.layer_box.setMinimumContentsLength(6)
        self.layer_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_box.setToolTip("The weight matrix whose histogram is drawn")
        self.layer_box.currentIndexChanged.connect(lambda _i: self._force())
        self.layer_label = QLabel("layer")
        self.layer_label.setProperty("export_hidden", True)  # its box is hidden in figures too
        self.widget = pg.PlotWidget()
        self.plot = self.widget.getPlotItem()
        self.hist = pg.PlotDataItem(stepMode="center", fillLevel=0, antialias=True)
        self.curve = pg.PlotDataItem(antialias=True)
        self.plot.addItem(self.hist)
        self.plot.addItem(self.curve)
        self.readout = QLabel()
        self.readout.setWordWrap(True)
        self.readout.setToolTip("−log p(w | D) = Σₙ ℓₙ(w) + ‖w‖²/(2σ²) + const\n"
                                "                = N·[ L̄(w) + ‖w‖²/(2Nσ²) ] + const\n"
                                "so the penalty λ/2‖w‖² on the averaged loss L̄ is the prior with "
                                "σ² = 1/(Nλ).")
        grid = QGridLayout(self)
        grid.addWidget(self.layer_label, 0, 0)
        grid.addWidget(self.layer_box, 0, 1)
        grid.setColumnStretch(2, 1)
        grid.addWidget(self.widget, 1, 0, 1, 3)
        grid.addWidget(self.readout, 2, 0, 1, 3)
        grid.setRowStretch(1, 1)
        self.apply_theme(self.theme)

    def _force(self) -> None:
        self._key = None
        self.redraw()

    def reset(self) -> None:
        super().reset()
        self._force()

    def redraw(self) -> None:
        snap: Snapshot | None = self.snapshot
        have = snap is not None and "histograms" in snap.measured and bool(snap.weight_hist)
        key = (None if snap is None else (snap.step, snap.hparams, snap.measured),
               self.layer_box.currentIndex(), id(self.theme))
        if key == self._key:
            return
        self._key = key
        show_empty(self.plot, not have, x=(-1.0, 1.0), y=(0.0, 1.0), theme=self.theme,
                   hint="waiting for weight histograms")
        if not have:  # the layer list goes too (the choice is kept): nothing of old data stays
            if self.layer_box.count():
                self._choice = self.layer_box.currentIndex()
                self.layer_box.blockSignals(True)
                self.layer_box.clear()
                self.layer_box.blockSignals(False)
            self.hist.setData([], [])
            self.curve.setData([], [])
            self.readout.setText("")
            return
        names = tuple(snap.layer_names)
        if tuple(self.layer_box.itemText(i) for i in range(self.layer_box.count())) != names:
            self.layer_box.blockSignals(True)
            self.layer_box.clear()
            self.layer_box.addItems(list(names))
            self.layer_box.setCurrentIndex(max(0, min(self._choice, len(names) - 1)))
            self.layer_box.blockSignals(False)
        i = max(0, min(self.layer_box.currentIndex(), len(names) - 1))
        counts = np.asarray(snap.weight_hist[i], np.float64)
        edges = np.asarray(snap.weight_hist_edges[i], np.float64)
        total = max(counts.sum(), 1.0)
        dens = counts / (total * np.diff(edges))
        self.hist.setData(edges, dens)
        h = snap.hparams
        readout = pr.implied_prior(h.optimizer, h.decay_mode, h.weight_decay, h.train_size, h.momentum)
        mid = 0.5 * (edges[1:] + edges[:-1])
        spread = math.sqrt(float((counts * mid * mid).sum() / total))
        if math.isfinite(readout.sigma):
            x = np.linspace(edges[0], edges[-1], POINTS)
            self.curve.setData(x, pr.prior_density(x, readout.sigma))
            lead = f"prior N(0, σ²) with {readout.formula}"
        else:
            self.curve.setData([], [])
            lead = readout.formula
        self.readout.setText(f"{lead}\n{names[i]}: RMS weight {spread:.3g}\n{readout.note}")

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.layer_label, self.readout):
            style_text(w, theme)
        # Four lines, always (a slide wraps the note): a readout that grows and shrinks with its
        # text would move the plot between a measured and an unmeasured snapshot.
        font = self.readout.font()
        font.setPointSize(theme.font_pt)
        self.readout.setFixedHeight(QFontMetrics(font).lineSpacing() * 4 + 6)
        self.layer_box.setStyleSheet(f"font-size: {theme.font_pt}pt;")
        style_plot(self.widget, theme, "Weights now and the prior weight decay implies", "density",
                   "weight value")
        self.hist.setPen(pg.mkPen(theme.train, width=theme.line_width * 0.75))
        self.hist.setBrush(pg.mkBrush(color(theme.train, 70)))
        self.curve.setPen(pg.mkPen(GREEN, width=theme.line_width))
        self._force()

    def cleanup(self) -> None:
        """No timers or threads."""
