"""Bayesian view: weight decay as the Gaussian prior N(0, σ²) on the weights, over the live histogram.

With the data loss averaged over N training points and the penalty λ/2‖w‖², MAP estimation under
the prior N(0, σ²) is the same minimization when σ² = 1/(Nλ) (regsim/prior.py derives it; the seed
text's λ = 1/σ² is for a summed loss). The panel draws one weight matrix's live histogram as a
density and the implied prior's density on the same axis, with σ, the formula with the run's numbers,
and the weights' own spread beside it. For AdamW (decoupled decay with Adam) there is no such prior on
this loss, and the panel says so instead of drawing one.

Compare mode (two or more runs): every run's histogram of the chosen layer, each in its run's colour
(the selected run filled), and each run's own prior N(0, 1/(Nλ)) dashed in the same colour: runs that
differ in λ imply different priors, and that is the point of the comparison. The readout is one line
per run with its σ and its weights' RMS.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QWidget

from regsim import prior as pr
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import color, fill_background, show_empty, style_plot, style_text
from ui.run_colors import run_color
from ui.theme import Theme

GREEN = "#59a14f"
POINTS = 400  # samples of the prior's density curve
MAX_RUNS_SHOWN = 4  # a comparison holds at most 4 runs (regsim.runs.MAX_RUNS)


def layer_density(snap: Snapshot, i: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(edges, density, RMS weight) of layer `i`'s live histogram in `snap`."""
    counts = np.asarray(snap.weight_hist[i], np.float64)
    edges = np.asarray(snap.weight_hist_edges[i], np.float64)
    total = max(counts.sum(), 1.0)
    mid = 0.5 * (edges[1:] + edges[:-1])
    return edges, counts / (total * np.diff(edges)), math.sqrt(float((counts * mid * mid).sum() / total))


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
        # Compare mode (set_runs / set_run_snapshots): each run's histogram and its own prior.
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self._run_snaps: dict[str, Snapshot] = {}
        self.comparing = False
        self.run_hists: list[pg.PlotDataItem] = []
        self.run_priors: list[pg.PlotDataItem] = []
        for _ in range(MAX_RUNS_SHOWN):
            h = pg.PlotDataItem(stepMode="center", antialias=True)
            c = pg.PlotDataItem(antialias=True)
            for item in (h, c):
                item.setVisible(False)
                self.plot.addItem(item)
            self.run_hists.append(h)
            self.run_priors.append(c)
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
               self.layer_box.currentIndex(), id(self.theme), self._selected,
               tuple((n, slot, id(self._run_snaps.get(n))) for n, _h, slot in self._runs))
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
            self._show_runs([])
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
        runs = self._comparable_runs(i)
        self._show_runs(runs)
        if runs:
            self._draw_runs(runs, i, names[i])
            return
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

    # ------------------------------------------------------------------------------ Compare mode
    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window, every tick): (name, History, colour slot) per run."""
        self._runs = list(runs)[:MAX_RUNS_SHOWN]
        self._selected = selected

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        """Compare mode: each run's latest Snapshot by name (its histogram and λ are drawn)."""
        self._run_snaps = dict(snapshots)

    def _comparable_runs(self, layer: int) -> list[tuple[str, int, Snapshot]]:
        """(name, slot, snapshot) of the runs with a measured histogram of `layer`; [] with one."""
        if len(self._runs) < 2:
            return []
        out = [(n, slot, self._run_snaps[n]) for n, _h, slot in self._runs if n in self._run_snaps
               and "histograms" in self._run_snaps[n].measured
               and layer < len(self._run_snaps[n].weight_hist)]
        return out if len(out) > 1 else []

    def _show_runs(self, runs: list) -> None:
        comparing = bool(runs)
        if comparing == self.comparing and not comparing:
            return
        self.comparing = comparing
        self.hist.setVisible(not comparing)
        self.curve.setVisible(not comparing)
        for i, (h, c) in enumerate(zip(self.run_hists, self.run_priors, strict=True)):
            shown = i < len(runs)
            h.setVisible(shown)
            c.setVisible(shown)
            if not shown:
                h.setData([], [])
                c.setData([], [])

    def _draw_runs(self, runs: list[tuple[str, int, Snapshot]], i: int, layer: str) -> None:
        """Each run's density of layer `i` and, dashed in the same colour, its own implied prior."""
        t = self.theme
        parts = [(name, slot, snap, *layer_density(snap, i)) for name, slot, snap in runs]
        lo = min(float(p[3][0]) for p in parts)
        hi = max(float(p[3][-1]) for p in parts)
        x = np.linspace(lo, hi, POINTS)
        lines = []
        for k, (name, slot, snap, edges, dens, rms) in enumerate(parts):
            c = run_color(slot, t.name)
            selected = name == self._selected
            hist, prior = self.run_hists[k], self.run_priors[k]
            hist.setPen(pg.mkPen(c, width=t.line_width * (1.0 if selected else 0.75)))
            hist.setFillLevel(0 if selected else None)
            hist.setBrush(pg.mkBrush(color(c, 70)) if selected else None)
            hist.setZValue(0 if selected else 1)
            hist.setData(edges, dens)
            h = snap.hparams
            readout = pr.implied_prior(h.optimizer, h.decay_mode, h.weight_decay, h.train_size,
                                       h.momentum)
            prior.setPen(pg.mkPen(c, width=t.line_width, style=Qt.PenStyle.DashLine))
            prior.setZValue(2)
            if math.isfinite(readout.sigma):
                prior.setData(x, pr.prior_density(x, readout.sigma))
            else:
                prior.setData([], [])
            # The readout is the key: a line per run in its colour (a legend row in the plot's
            # layout moved the single-run plot's pixels after a slide export, the contract test).
            lines.append(f"<span style='color:{c}'><b>{name}</b> ▆ {layer}"
                         + (" ┄ prior" if math.isfinite(readout.sigma) else "")
                         + f"</span>: {readout.formula} · RMS weight {rms:.3g}")
        self.readout.setText("<br>".join(lines[:4]))

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
