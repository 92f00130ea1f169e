"""Calibration: reliability diagrams of the weight-scaled network and of MC dropout, side by side.

For each labelled point the top-1 confidence c_n = max_c p(c | x_n) and whether it is right; in bin b
(n_b points) the mean confidence conf_b and the accuracy acc_b (Guo et al. 2017):

    ECE = Σ_b (n_b / N) · |acc_b − conf_b|        MCE = max_{b: n_b > 0} |acc_b − conf_b|

A calibrated predictor has acc_b = conf_b: its bars touch the diagonal. Left the deterministic network
(eval mode, weight scaling), right the mean softmax of T passes with dropout on (Gal & Ghahramani
2016), on the same points; under each the per-bin confidence histogram (how many points the bar
stands on). Uniform bins [b/B, (b+1)/B) (a confidence of exactly 1 in the last) or equal-mass bins
(B runs of the sorted confidences) — both come with every result, so the toggle needs no recompute.
The engine computes the result (regsim.analyses.calibration) as a background job; changing T asks
again after a short pause.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QVBoxLayout, QWidget

from regsim.analyses.calibration import Bins, CalibrationResult
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History, Snapshot
from ui.panels.base import JobPanel
from ui.panels.style import color, fill_background, mix, set_title, style_plot_item, style_text
from ui.theme import Theme

BINNINGS = (("uniform bins", "uniform"), ("equal-mass bins", "equal_mass"))
T_DELAY_MS = 300  # a T change asks again after this pause (a slider drag asks once)
TIP = ("Reliability diagram: per confidence bin, accuracy (bars) against mean confidence (the diagonal\n"
       "is perfect calibration; the shaded part of a bar is the gap |acc_b − conf_b|).\n"
       "ECE = Σ_b n_b/N · |acc_b − conf_b|, MCE = max_b |acc_b − conf_b| (Guo et al. 2017).\n"
       "Below: how many points fall in each bin.")


class CalibrationPanel(JobPanel):
    """Two reliability diagrams (eval mode | MC dropout) with their confidence histograms."""

    key = "calibration"
    title = "Calibration"
    analysis = "calibration"
    job_unit = "passes"
    idle_text = "no calibration yet: press Compute (B)"

    EMPTY_HINT = "Press B (Compute) for the\nreliability diagrams"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.result: CalibrationResult | None = None
        self._drawn: tuple | None = None

        self.build_job_controls("Compute", "B", "Ask the engine for both reliability diagrams on the "
                                "current weights (a background job)")
        self.t_slider = QSlider(Qt.Orientation.Horizontal)
        self.t_slider.setRange(1, 200)
        self.t_slider.setValue(50)
        self.t_slider.setMaximumWidth(200)
        self.t_slider.setToolTip("MC dropout passes T (1–200); the diagrams follow after a short pause")
        self.t_label = QLabel("T = 50")
        self.bins_spin = QSpinBox()
        self.bins_spin.setRange(2, 100)
        self.bins_spin.setValue(10)
        self.bins_spin.setPrefix("B = ")
        self.bins_spin.setToolTip("Bins of the reliability diagram (2–100)")
        self.binning_combo = QComboBox()
        self.binning_combo.addItems([t for t, _ in BINNINGS])
        self.binning_combo.setToolTip("Uniform: equal-width bins [b/B, (b+1)/B). Equal mass: each bin "
                                      "holds ⌊N/B⌋ or ⌈N/B⌉ points (edges at their confidences)")
        self.binning_combo.currentIndexChanged.connect(self._invalidate)
        self.points_combo = QComboBox()
        self.points_combo.addItems(["val", "train", "train+val"])
        self.points_combo.setToolTip("Which labelled points are binned")
        self.make_status_label()
        self._t_timer = QTimer(self)
        self._t_timer.setSingleShot(True)
        self._t_timer.setInterval(T_DELAY_MS)
        self._t_timer.timeout.connect(self._t_settled)
        self.t_slider.valueChanged.connect(self._t_moved)
        self.bins_spin.valueChanged.connect(self._settings_changed)
        self.points_combo.currentIndexChanged.connect(self._settings_changed)

        controls = QHBoxLayout()
        for w in (self.compute_button, self.cancel_button, self.t_label, self.t_slider, self.bins_spin,
                  self.binning_combo, self.points_combo, self.progress):
            controls.addWidget(w)
        controls.addWidget(self.status_label, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(TIP)
        self.rel_plots: list[pg.PlotItem] = []
        self.hist_plots: list[pg.PlotItem] = []
        self.acc_bars: list[pg.BarGraphItem] = []
        self.gap_bars: list[pg.BarGraphItem] = []
        self.count_bars: list[pg.BarGraphItem] = []
        self.diagonals: list[pg.PlotDataItem] = []
        self.placeholders: list[pg.TextItem] = []
        for col in range(2):
            rel = self.view.addPlot(row=0, col=col)
            hist = self.view.addPlot(row=1, col=col)
            hist.setXLink(rel)
            acc = pg.BarGraphItem(x0=[], x1=[], height=[])
            gap = pg.BarGraphItem(x0=[], x1=[], y0=[], y1=[])
            diag = pg.PlotDataItem([0, 1], [0, 1])
            count = pg.BarGraphItem(x0=[], x1=[], height=[])
            hint = pg.TextItem(self.EMPTY_HINT if col == 0 else "", anchor=(0.5, 0.5))
            for item in (acc, gap, diag):
                rel.addItem(item)
            rel.addItem(hint, ignoreBounds=True)
            hint.setPos(0.5, 0.5)
            hist.addItem(count)
            for plot in (rel, hist):
                plot.setMouseEnabled(False, False)
                plot.hideButtons()
            rel.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
            self.rel_plots.append(rel)
            self.hist_plots.append(hist)
            self.acc_bars.append(acc)
            self.gap_bars.append(gap)
            self.count_bars.append(count)
            self.diagonals.append(diag)
            self.placeholders.append(hint)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 1)

        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addWidget(self.view, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap
        if self.result is not None and snap.step < self.result.step:
            self.result = None  # a new run
            self._drawn = None

    def redraw(self) -> None:
        snap = self.snapshot
        key = (id(self.result), self.binning_combo.currentIndex(), self.theme.name,
               None if snap is None else (snap.hparams.dataset, snap.val_acc))
        if key == self._drawn:
            return
        self._drawn = key
        self._draw()

    def job_result(self, event: JobEvent) -> None:
        self.result = r = event.result
        self._show_progress(1, 1, f"T = {r.T}")
        self.status_label.setText(f"T = {r.T} passes, {r.bins} bins, {len(r.deterministic.correct)} "
                                  f"{r.points} points at step {r.step} · {r.elapsed * 1e3:.0f} ms"
                                  + (f" · {r.note}" if r.note else ""))
        self._drawn = None
        self.redraw()

    def reset(self) -> None:
        super().reset()
        self.result = None
        self.forget_job()
        self._t_timer.stop()
        self._drawn = None

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.status_label, self.t_label):
            style_text(w, theme)
        self.view.setBackground(theme.background)
        style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
        for rel, hist in zip(self.rel_plots, self.hist_plots):
            for plot in (rel, hist):
                style_plot_item(plot, theme)
                plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)
            rel.setLabel("left", "accuracy", **style)
            hist.setLabel("left", "points", **style)
            hist.setLabel("bottom", "confidence (top-1 probability)", **style)
        for acc, gap, count, diag in zip(self.acc_bars, self.gap_bars, self.count_bars, self.diagonals):
            acc.setOpts(brush=color(theme.train, 200), pen=pg.mkPen(theme.background, width=1))
            gap.setOpts(brush=color(theme.val, 110), pen=pg.mkPen(theme.val, width=1))
            count.setOpts(brush=color(mix(theme.foreground, theme.background, 0.45)),
                          pen=pg.mkPen(theme.background, width=1))
            diag.setPen(pg.mkPen(theme.foreground, width=max(1.0, theme.line_width / 2),
                                 style=Qt.PenStyle.DashLine))
        font = self.font()
        font.setPointSize(theme.font_pt)
        for hint in self.placeholders:
            hint.setColor(mix(theme.foreground, theme.background, 0.3))
            hint.setFont(font)
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        self._t_timer.stop()

    # -------------------------------------------------------------------------------- requests
    def params(self) -> dict:
        """The Request fields the controls ask for (regsim.analyses.calibration.CalibrationRequest)."""
        return {"T": int(self.t_slider.value()), "bins": int(self.bins_spin.value()),
                "points": self.points_combo.currentText()}

    def request_job(self) -> str | None:
        """Ask the engine for both diagrams (supersedes a request in flight)."""
        self._t_timer.stop()
        return super().request_job()

    # ------------------------------------------------------------------------------- internals
    def _t_moved(self, value: int) -> None:
        self.t_label.setText(f"T = {value}")
        self._settings_changed()

    def _settings_changed(self, *_: object) -> None:
        """T, B or the points changed: ask again once the control rests, if a result is shown."""
        if self.result is not None or self._pending:
            self._t_timer.start()

    def _t_settled(self) -> None:
        if self.result is not None or self._pending:
            self.request_job()

    def _invalidate(self, *_: object) -> None:
        self._drawn = None

    def bins_shown(self) -> tuple[Bins, Bins] | None:
        """The (deterministic, MC) bins of the chosen binning, or None before a result."""
        r = self.result
        if r is None:
            return None
        attr = BINNINGS[self.binning_combo.currentIndex()][1]
        return getattr(r.deterministic, attr), getattr(r.mc, attr)

    # --------------------------------------------------------------------------------- drawing
    def _draw(self) -> None:
        t = self.theme
        r = self.result
        snap = self.snapshot
        regression = snap is not None and snap.hparams.dataset == "regression"
        for i in range(2):
            self.acc_bars[i].setOpts(x0=[], x1=[], height=[])
            self.gap_bars[i].setOpts(x0=[], x1=[], y0=[], y1=[])
            self.count_bars[i].setOpts(x0=[], x1=[], height=[])
            self.placeholders[i].setVisible(r is None and i == 0)
            self.rel_plots[i].setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
            self.hist_plots[i].setRange(yRange=(0, 1), padding=0.02)
        names = ("eval mode (weight scaling)", "MC dropout")
        if r is None:
            self.placeholders[0].setText("Calibration needs class\nprobabilities: choose moons,\nxor or "
                                         "digits" if regression else self.EMPTY_HINT)
            for i in range(2):
                set_title(self.rel_plots[i], names[i], t, t.font_pt)
            acc = np.nan if snap is None else float(snap.val_acc)
            if np.isfinite(acc) and not regression:
                # Before a result, the one number the snapshot has: eval mode's accuracy on the
                # validation split, i.e. the bar of a single bin [0, 1] (its confidence unknown).
                self.acc_bars[0].setOpts(x0=[0.0], x1=[1.0], height=[acc])
                set_title(self.rel_plots[0], f"{names[0]}<br>one bin: val accuracy {acc:.3f}<br>"
                          "(B bins after Compute)", t, t.font_pt)
                # as many title lines on the right, so the two diagrams' axes stay level
                set_title(self.rel_plots[1], f"{names[1]}<br>T passes with dropout on<br>"
                          "(after Compute)", t, t.font_pt)
            return
        shown = self.bins_shown()
        for i, (bins, rel) in enumerate(zip(shown, (r.deterministic, r.mc))):
            lo, hi = bins.edges[:-1], bins.edges[1:]
            full = bins.count > 0
            acc = np.where(full, bins.accuracy, 0.0)
            conf = np.where(full, bins.confidence, 0.0)
            self.acc_bars[i].setOpts(x0=lo[full], x1=hi[full], height=acc[full])
            self.gap_bars[i].setOpts(x0=lo[full], x1=hi[full], y0=np.minimum(acc, conf)[full],
                                     y1=np.maximum(acc, conf)[full])
            self.count_bars[i].setOpts(x0=lo, x1=hi, height=bins.count.astype(float))
            self.hist_plots[i].setRange(yRange=(0, max(1, int(bins.count.max())) * 1.05), padding=0)
            label = names[i] + (f", T = {r.T}" if i == 1 else "")
            # three short lines in the axis type: two diagrams side by side fit a 1200 px slide
            set_title(self.rel_plots[i], f"{label}<br>ECE {bins.ece:.3f} · MCE {bins.mce:.3f}<br>"
                      f"accuracy {rel.accuracy:.3f} · NLL {rel.nll:.3f}", t, t.font_pt)
