"""Co-adaptation, measured by ablation: does the loss need units alone, or only in pairs?

The seed: dropout "prevents neurons from co-adapting too much to each other. Each neuron must learn
useful features independently, without relying on specific other neurons being present." The measure
(regsim.analyses.coadaptation, a background job per run): remove hidden units of one layer the way
dropout does (their output set to 0, eval mode) and measure the run's loss on fixed points,

    ΔL_i = L(without i) − L          I_ij = ΔL_ij − ΔL_i − ΔL_j

|I_ij| large = units i and j only work together. Left: every unit's ΔL_i, largest first. Middle:
|I_ij| of every (or a sample of) pair, largest first, over the fraction of pairs (log scale), one
curve per run: with dropout the curves should lie lower. Right: the selected run's I_ij as a matrix,
units ordered by ΔL_i. Compare mode computes every run in lockstep; "add the p = 0 run" puts an
undropped twin beside a dropout run.

Measured (regsim.analyze(t, "coadaptation", site, points, pairs=2048), seeds 0, 1, 2, each against the
same preset with p = 0):
- moons_dropout (64-64, p = 0.3), 2000 steps: mean |I_ij| on val at fc1 0.00017–0.00026 against
  0.0045–0.0062 with p = 0, at fc2 0.00008–0.00009 against 0.0008–0.0022; on train points the same
  order (fc1 0.00009–0.00011 against 0.0037–0.0071). Max ΔL_i at fc1: 0.015–0.024 against 0.24–1.2.
- original_dropout (digits 256-256, p = 0.5, input 0.2), 1500 steps, val: mean |I_ij| at fc1
  0.000026–0.000034 against 0.00032–0.00036, at fc2 0.000012–0.000015 against ~0.00020; max ΔL_i
  smaller with dropout (fc2 0.003–0.005 against 0.013–0.019) but the MEDIAN ΔL_i larger (0.0002–0.0003
  against ~0): dropout spreads the damage over many units rather than shrinking every unit's. On
  digits' train points the p = 0 net's loss is 0.001 (saturated softmax) and both runs' |I_ij| are
  alike (~1e-5): the measure needs points the network is not certain of.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from regsim.analyses.coadaptation import CoadaptationResult
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import (
    color,
    fill_background,
    fix_axis_width,
    mix,
    set_title,
    style_plot_item,
    style_text,
)
from ui.run_colors import run_color
from ui.theme import Theme

_JOB_IDS = itertools.count(1)
PAIRS = 2048  # pairs asked per run: every pair of a 64-unit layer (2016), a sample of wider ones
POINTS = (("val points", "val"), ("train points", "train"))
CAPTION = ("Measure: remove hidden units the way dropout does (output 0, eval mode) and see the loss move: "
           "ΔL_i = L(without unit i) − L, and for pairs I_ij = ΔL_ij − ΔL_i − ΔL_j. |I_ij| large: the two "
           "units only work together (co-adapted). It does not show what a unit encodes; a loss change "
           "also grows with the output scale, and on val points removing a unit can lower an overfit "
           "net's loss (ΔL < 0); on points a net is certain of (digits' train set at p = 0) every ΔL is ~0. "
           "Measured on moons and digits, 3 seeds: |I_ij| 10–25× smaller with dropout on val points. "
           "Dead units (0 everywhere) are left out of the numbers.")
TIP = ("ΔL_i = L(h with h_i = 0) − L(h): the loss increase when unit i alone is removed\n"
       "(mask 0, eval mode). "
       "I_ij = ΔL_ij − ΔL_i − ΔL_j: 0 when the two removals add up; > 0: each covered for the other;\n"
       "< 0: one is useless without the other. A net trained with dropout predicted with ~p of its units\n"
       "missing at every step, so one missing unit is a situation it trained in.\n"
       "Not shown: what units encode; ΔL also scales with how confident the outputs are.")


class CoadaptationPanel(Panel):
    """Single-unit ablation damage, pairwise interactions and the interaction matrix, per run."""

    key = "coadaptation"
    title = "Co-adaptation"

    EMPTY_HINT = "Press A (Compute): remove each unit,\nthen each pair, and measure the loss"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.results: dict[str, CoadaptationResult] = {}  # run ("" with one run) → result
        self._jobs: dict[str, str] = {}  # job id → run, in flight
        self.failure = ""  # the last refusal or failure, said in the plot
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self._run_snaps: dict[str, Snapshot] = {}
        self._sites: tuple = ()
        self._drawn: tuple | None = None

        self.compute_button = QPushButton("Compute (A)")
        self.compute_button.setShortcut(QKeySequence("A"))
        self.compute_button.setToolTip("Ablate every unit and up to 2048 pairs of the chosen layer, in "
                                       "every run (background jobs; training goes on)")
        self.compute_button.clicked.connect(self.request_coadaptation)
        self.cancel_button = QPushButton("Cancel (Esc)")
        self.cancel_button.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_button.setProperty("export_hidden", True)
        self.cancel_button.clicked.connect(self.cancel_coadaptation)
        self.cancel_button.setVisible(False)
        self.site_combo = QComboBox()
        self.site_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.site_combo.setToolTip("The hidden layer whose units are removed")
        self.points_combo = QComboBox()
        self.points_combo.addItems([t for t, _ in POINTS])
        self.points_combo.setToolTip("Where the loss is measured: the held-out validation split or the "
                                     "training points")
        self.zero_button = QPushButton("add the p = 0 run")
        self.zero_button.setToolTip("Put a copy of this run with dropout off beside it (Compare mode, "
                                    "lockstep: same data, initial weights and batches)")
        self.zero_button.setProperty("export_hidden", True)
        self.zero_button.clicked.connect(self._add_zero_run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.progress.setMaximumWidth(200)
        self.progress.setProperty("export_hidden", True)
        self.status_label = QLabel("no ablations yet: press Compute (A)")
        self.status_label.setWordWrap(True)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        controls = QHBoxLayout()
        for w in (self.compute_button, self.cancel_button, self.site_combo, self.points_combo,
                  self.zero_button, self.progress):
            controls.addWidget(w)
        controls.addWidget(self.status_label, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(TIP)
        self.single_plot = self.view.addPlot(row=0, col=0)
        self.pair_plot = self.view.addPlot(row=0, col=1)
        self.matrix_plot = self.view.addPlot(row=0, col=2)
        self.pair_plot.setLogMode(False, True)
        self.matrix_plot.setAspectLocked(True)
        self.matrix_plot.invertY(True)
        self.matrix_image = pg.ImageItem(axisOrder="row-major")
        self.matrix_plot.addItem(self.matrix_image)
        self.single_curves = [pg.PlotDataItem() for _ in range(4)]
        self.pair_curves = [pg.PlotDataItem() for _ in range(4)]
        for a, b in zip(self.single_curves, self.pair_curves):
            self.single_plot.addItem(a)
            self.pair_plot.addItem(b)
        self.zero_line = pg.InfiniteLine(pos=0.0, angle=0, movable=False)
        self.single_plot.addItem(self.zero_line, ignoreBounds=True)
        self.hints: dict[str, pg.TextItem] = {}
        for name, plot in (("single", self.single_plot), ("pair", self.pair_plot),
                           ("matrix", self.matrix_plot)):
            hint = pg.TextItem("", anchor=(0.5, 0.5))
            plot.addItem(hint, ignoreBounds=True)
            self.hints[name] = hint
        for plot in (self.single_plot, self.pair_plot, self.matrix_plot):
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
        self.single_plot.setToolTip(TIP)
        self.pair_plot.setToolTip(TIP)
        self.caption = QLabel(CAPTION)
        self.caption.setWordWrap(True)
        self.caption.setToolTip(TIP)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addWidget(self.view, 1)
        root.addWidget(self.caption)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap
        sites = tuple(zip(snap.dropout_sites, snap.dropout_rates, snap.layer_sizes))
        if sites != self._sites:
            self._set_sites(sites)
        mine = self.results.get("")
        if mine is not None and snap.step < mine.step and not self.comparing:
            self._forget()  # a new run

    def redraw(self) -> None:
        snap = self.snapshot
        shape = None if snap is None else (snap.hparams.architecture, snap.layer_sizes, snap.dropout_rates)
        key = (tuple((n, id(r)) for n, r in self.results.items()), self.failure, shape,
               self.site_combo.currentData(), self._selected, self.comparing, self.theme.name, id(self.theme))
        if key == self._drawn:
            return
        self._drawn = key
        self._draw()

    def on_job(self, event: JobEvent) -> None:
        if event.analysis != "coadaptation" or event.id not in self._jobs:
            return
        run = self._jobs[event.id]
        if event.kind == "result" and event.result is not None:
            del self._jobs[event.id]
            self.results[run] = event.result
            self.failure = ""
            self._finish_if_done()
            self._drawn = None
            self.redraw()
        elif event.kind in ("failed", "cancelled"):
            del self._jobs[event.id]
            if event.kind == "failed":
                self.failure = event.message
                self.status_message.emit(event.message)
            self._finish_if_done(event.kind)
            self._drawn = None
            self.redraw()
        elif event.kind == "progress" and event.total:
            self._show_progress(event.done, event.total, f"{run or 'run'}: {event.done} / {event.total}")

    def reset(self) -> None:
        """A new run, or (Compare mode) another run selected: the window resets every panel when the
        selection changes, but each run's result stays valid until that run starts over
        (set_run_snapshots drops it then), so in Compare mode only the drawing is redone."""
        super().reset()
        if self.comparing:
            self._drawn = None
            return
        self.cancel_coadaptation(quiet=True)
        self._forget()

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        style_text(self.status_label, theme)
        style_text(self.caption, theme, max(8, round(theme.font_pt * 0.8)))
        self.view.setBackground(theme.background)
        style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
        for plot in (self.single_plot, self.pair_plot, self.matrix_plot):
            style_plot_item(plot, theme)
        for plot in (self.single_plot, self.pair_plot):
            plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)
        self.single_plot.setLabel("left", "ΔL_i (loss increase)", **style)
        self.single_plot.setLabel("bottom", "unit, by ΔL_i", **style)
        self.pair_plot.setLabel("left", "|I_ij|", **style)
        self.pair_plot.setLabel("bottom", "fraction of pairs", **style)
        self.matrix_plot.setLabel("bottom", "unit j (by ΔL)", **style)
        self.matrix_plot.setLabel("left", "unit i (by ΔL)", **style)
        # Widths from the font, not from the ticks drawn before (a slide export moved them ~1 px).
        fix_axis_width(self.single_plot, theme, "−0.000")
        fix_axis_width(self.pair_plot, theme, "10⁻¹⁰")
        fix_axis_width(self.matrix_plot, theme, "000")
        self.zero_line.setPen(pg.mkPen(mix(theme.foreground, theme.background, 0.5), width=1,
                                       style=Qt.PenStyle.DashLine))
        font = self.font()
        font.setPointSize(theme.font_pt)
        for hint in self.hints.values():
            hint.setColor(mix(theme.foreground, theme.background, 0.3))
            hint.setFont(font)
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        self.cancel_coadaptation(quiet=True)

    # -------------------------------------------------------------------------------- requests
    def params(self) -> dict:
        """The CoadaptationRequest fields the controls ask for (regsim.analyses.coadaptation)."""
        return {"site": self.site_combo.currentData() or "",
                "points": POINTS[self.points_combo.currentIndex()][1], "pairs": PAIRS}

    def request_coadaptation(self) -> None:
        """One job per run (Compare mode) or one for the single run; older ones are cancelled."""
        self.cancel_coadaptation(quiet=True)
        self.results = {}
        self.failure = ""
        runs = [n for n, _h, _s in self._runs] if self.comparing else [""]
        for run in runs:
            job_id = f"coadaptation-{next(_JOB_IDS)}"
            self._jobs[job_id] = run
            payload = {"id": job_id, "analysis": "coadaptation", "params": self.params()}
            if run:
                payload["run"] = run
            self.request.emit("analyze", payload)
        self.cancel_button.setVisible(True)
        self._show_progress(0, 1, "computing…")
        self.status_label.setText(f"computing… ({len(runs)} run{'s' if len(runs) > 1 else ''})")
        self._drawn = None

    def cancel_coadaptation(self, quiet: bool = False) -> None:
        for job_id in list(self._jobs):
            self.request.emit("cancel", {"id": job_id})
        had = bool(self._jobs)
        self._jobs.clear()
        self.cancel_button.setVisible(False)
        if had and not quiet:
            self._show_progress(0, 1, "cancelled")
            self.status_label.setText("cancelled")

    def _add_zero_run(self) -> None:
        off = {"dropout": 0.0, "layer_dropout": (), "input_dropout": 0.0}
        self.request.emit("add_run", {"changes": off})
        self.status_message.emit("Adding a p = 0 run beside this one (lockstep; it catches up while "
                                 "training)")

    # ------------------------------------------------------------------------------ Compare mode
    @property
    def comparing(self) -> bool:
        return len(self._runs) > 1

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        was = self.comparing
        self._runs = list(runs)[:4]
        self._selected = selected
        if was != self.comparing:
            self.cancel_coadaptation(quiet=True)
            self.results = {}
        self.zero_button.setVisible(not self.comparing)
        self._drawn = None

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        self._run_snaps = dict(snapshots)
        for name in list(self.results):
            snap = snapshots.get(name)
            if name and (snap is None or snap.step < self.results[name].step):
                del self.results[name]  # that run started over

    # ------------------------------------------------------------------------------- internals
    def _forget(self) -> None:
        self.results = {}
        self.failure = ""
        self._show_progress(0, 1, "idle")
        self.status_label.setText("no ablations yet: press Compute (A)")
        self._drawn = None

    def _finish_if_done(self, kind: str = "done") -> None:
        if self._jobs:
            return
        self.cancel_button.setVisible(False)
        self._show_progress(1 if kind == "done" else 0, 1, kind)
        self.status_label.setText(self._summary() if self.results else (self.failure or kind))

    def _show_progress(self, done: int, total: int, text: str) -> None:
        total = max(1, int(total))
        self.progress.setRange(0, total)
        self.progress.setValue(min(max(int(done), 0), total))
        self.progress.setFormat(text)

    def _set_sites(self, sites: tuple) -> None:
        """One entry per hidden dropout site (the input site has no units to co-adapt), the last
        hidden layer first chosen: its pairs are cheap (the logits are linear in its mask)."""
        self._sites = sites
        current = self.site_combo.currentData()
        self.site_combo.blockSignals(True)
        self.site_combo.clear()
        hidden = [(name, p, width) for name, p, width in sites if name != "input"]
        for name, p, width in hidden:
            self.site_combo.addItem(f"{name}: {width} units, p = {p:g}", name)
        names = [h[0] for h in hidden]
        self.site_combo.setCurrentIndex(names.index(current) if current in names else len(names) - 1)
        self.site_combo.blockSignals(False)

    def ordered(self) -> list[tuple[str, CoadaptationResult, int]]:
        """(run, result, colour slot): the selected run first, as the runs bar orders them."""
        slots = {n: s for n, _h, s in self._runs}
        out = [(n, r, slots.get(n, 0)) for n, r in self.results.items()]
        out.sort(key=lambda x: (x[0] != self._selected, x[2]))
        return out

    def _label(self, run: str, r: CoadaptationResult) -> str:
        return f"{run + ': ' if run else ''}p = {r.p:g}"

    def _summary(self) -> str:
        parts = [f"{self._label(n, r)}: median ΔL {r.median_single:.2g}, "
                 f"mean |I| {r.mean_abs_interaction:.2g} ({r.elapsed:.1f} s)" for n, r, _s in self.ordered()]
        notes = [f"{n or 'run'}: {r.note}" for n, r, _s in self.ordered() if r.note]
        self.status_label.setToolTip("\n".join(notes))
        return " · ".join(parts)

    # --------------------------------------------------------------------------------- drawing
    def _hint(self, name: str, plot: pg.PlotItem, text: str) -> None:
        hint = self.hints[name]
        hint.setText(text)
        hint.setVisible(bool(text))
        vr = plot.viewRange()
        hint.setPos((vr[0][0] + vr[0][1]) / 2, (vr[1][0] + vr[1][1]) / 2)

    def _draw(self) -> None:
        t = self.theme
        fs = t.font_pt
        snap = self.snapshot
        shown = self.ordered()
        for c in (*self.single_curves, *self.pair_curves):
            c.setData([], [])
        self.matrix_image.clear()
        if not shown:
            self._draw_empty(snap)
            return
        several = len(shown) > 1
        lo, hi, n_max = 0.0, 0.0, 1
        pair_lo, pair_hi = math.inf, -math.inf
        words_single, words_pair = [], []
        for k, (run, r, slot) in enumerate(shown):
            c = run_color(slot, t.name) if several else t.train
            pen = pg.mkPen(c, width=t.line_width)
            live = ~r.dead
            s = np.sort(r.single[live])[::-1]
            self.single_curves[k].setData(np.arange(1, len(s) + 1), s, pen=pen, symbol="o",
                                          symbolSize=max(3, fs // 3), symbolBrush=color(c), symbolPen=None)
            if s.size:
                lo, hi, n_max = min(lo, float(s.min())), max(hi, float(s.max())), max(n_max, len(s))
            words_single.append(f"<span style='color:{c}'>■</span> {self._label(run, r)}: median "
                                f"{r.median_single:.2g}, max {r.max_single:.2g}")
            keep = live[r.pair_i] & live[r.pair_j]
            a = np.sort(np.abs(r.interaction[keep]))[::-1]
            a = a[a > 0]
            if a.size:
                self.pair_curves[k].setData((np.arange(len(a)) + 0.5) / len(a), a, pen=pen)
                pair_lo, pair_hi = min(pair_lo, float(a.min())), max(pair_hi, float(a.max()))
            words_pair.append(f"<span style='color:{c}'>■</span> {self._label(run, r)}: mean |I| "
                              f"{r.mean_abs_interaction:.2g}")
        first = shown[0][1]
        where = f"{first.site}, {first.points} loss, step {first.step}"
        self.single_plot.setRange(xRange=(0.5, n_max + 0.5), yRange=(lo, hi if hi > lo else lo + 1e-6),
                                  padding=0.05)
        set_title(self.single_plot, f"one unit removed ({where})<br>" + "<br>".join(words_single), t, fs)
        self._hint("single", self.single_plot, "")
        if math.isfinite(pair_lo):
            self.pair_plot.setRange(xRange=(0, 1), yRange=(math.log10(pair_lo), math.log10(pair_hi)),
                                    padding=0.05)
            extra = ""
            if several and all(math.isfinite(r.mean_abs_interaction) and r.mean_abs_interaction > 0
                               for _n, r, _s in shown):
                ratio = shown[0][1].mean_abs_interaction / shown[1][1].mean_abs_interaction
                extra = f"<br>ratio {shown[0][0]}/{shown[1][0]}: {ratio:.2g}"
            if not several and first.p > 0:
                extra = "<br>(add the p = 0 run to compare)"
            set_title(self.pair_plot, "pairs: |ΔL_ij − ΔL_i − ΔL_j|<br>" + "<br>".join(words_pair) + extra,
                      t, fs)
            self._hint("pair", self.pair_plot, "")
        else:
            self.pair_plot.setRange(xRange=(0, 1), yRange=(-6, -1), padding=0)
            set_title(self.pair_plot, "pairs: |ΔL_ij − ΔL_i − ΔL_j|", t, fs)
            self._hint("pair", self.pair_plot, "no pairs of live units")
        self._draw_matrix(shown[0][0], first)

    def _draw_matrix(self, run: str, r: CoadaptationResult) -> None:
        t = self.theme
        n = r.n_units
        order = np.argsort(-r.single, kind="stable")  # the most damaging unit first
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        m = np.zeros((n, n))
        a, b = rank[r.pair_i], rank[r.pair_j]
        m[a, b] = m[b, a] = r.interaction
        # The colour scale at the 99th percentile of |I_ij|: at the maximum one pair of an overfit net
        # (|I| ≈ 1) left the other 2015 white (seen on moons, p = 0).
        span = float(np.percentile(np.abs(r.interaction), 99)) if r.interaction.size else 0.0
        span = span if span > 0 else 1e-9
        self.matrix_image.setImage(m, levels=(-span, span))
        self.matrix_image.setLookupTable(pg.colormap.get("CET-D1").getLookupTable(nPts=256))
        self.matrix_image.setRect(QRectF(0, 0, n, n))
        self.matrix_plot.setRange(xRange=(0, n), yRange=(0, n), padding=0)
        of = f"{run}: " if run else ""
        sampled = "" if r.all_pairs else f"<br>{len(r.pair_i)} sampled pairs"
        set_title(self.matrix_plot, f"{of}I_ij, colours at ±{span:.2g}<br>red &gt; 0, blue &lt; 0{sampled}",
                  t, t.font_pt)
        self._hint("matrix", self.matrix_plot, "")

    def _draw_empty(self, snap: Snapshot | None) -> None:
        t, fs = self.theme, self.theme.font_pt
        for plot in (self.single_plot, self.pair_plot):
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.pair_plot.setRange(yRange=(-6, -1), padding=0)
        set_title(self.single_plot, "one unit removed: ΔL_i", t, fs)
        set_title(self.pair_plot, "pairs: |ΔL_ij − ΔL_i − ΔL_j|", t, fs)
        mlp = snap is not None and snap.hparams.architecture == "mlp"
        if snap is None:
            text = "Press Space to train,\nthen Compute (A)"
        elif self.failure:
            text = _wrap(self.failure)
        elif not mlp:
            text = _wrap(f"The co-adaptation view removes an MLP's hidden units; this run is "
                         f"architecture = {snap.hparams.architecture!r}. Choose architecture = 'mlp'.")
        else:
            text = self.EMPTY_HINT
        self._hint("single", self.single_plot, text)
        self._hint("pair", self.pair_plot, "")
        # Before a result: the matrix the pairs will fill, from the snapshot's layer sizes alone.
        site = self.site_combo.currentData()
        width = dict(zip(snap.dropout_sites, snap.layer_sizes)).get(site) if snap is not None and mlp \
            else None
        if width:
            grid = np.full((width, width), 0.5)
            grid[np.arange(width), np.arange(width)] = 0.0
            self.matrix_image.setImage(grid, levels=(0.0, 1.0))
            self.matrix_image.setLookupTable(pg.colormap.get("CET-L1").getLookupTable(nPts=256))
            self.matrix_image.setRect(QRectF(0, 0, width, width))
            self.matrix_plot.setRange(xRange=(0, width), yRange=(0, width), padding=0)
            pairs = width * (width - 1) // 2
            set_title(self.matrix_plot, f"{site}: {width} units, {pairs} pairs<br>(I_ij after Compute)",
                      t, fs)
            self._hint("matrix", self.matrix_plot, "")
        else:
            self.matrix_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            set_title(self.matrix_plot, "I_ij", t, fs)
            self._hint("matrix", self.matrix_plot, "")


def _wrap(text: str, width: int = 38) -> str:
    """Break a long message into lines of about `width` characters for a plot's hint."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
