"""Hessian eigen-directions: the top-k curvatures of the training loss, and how decay shrinks along them.

The engine computes the top-k eigen-pairs of H = ∇²L(θ) by Lanczos on Hessian-vector products as a
background job (regsim.analyses.hessian), in eval mode (dropout off: what PyHessian forces) and in
train mode (dropout on, one fixed set of masks: the loss the optimizer descends), one after the
other; the panel draws both and their difference. Top left the eigenvalue bars, top right the
spectral density by stochastic Lanczos quadrature (optional), and the Hutchinson trace in the title.

Selective shrinkage (Goodfellow et al. 2016 §7.1.1; needs Compare mode with a λ = 0 run and a λ > 0
run): near the no-decay minimum w* the data loss is ½(w − w*)ᵀH(w − w*); the penalty α/2‖w‖² moves
the optimum to w̃ = (H + αI)⁻¹Hw*, whose component along eigenvector qᵢ is λᵢ/(λᵢ + α)·qᵢᵀw*. So
stiff directions (λᵢ ≫ α) keep their component and flat ones (λᵢ ≪ α) lose it. Bottom left: per
direction, the predicted factor (outlined) against the measured qᵢᵀw_decay / qᵢᵀw_nodecay (filled),
with H the no-decay run's Hessian. Bottom right: the curve λ/(λ + α) over the curvature λ with the
measured factors on it. α is the decay strength in the loss's units (regsim.analyses.flat_weights):
with L2 in the gradient and the data loss averaged, α = λ; plain SGD with decoupled decay, α = λ;
SGDW, α = (1 − μ)λ; AdamW has no single α.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QSpinBox, QVBoxLayout, QWidget

from regsim.analyses.flat_weights import FlatWeightsResult
from regsim.analyses.hessian import HessianResult, ShrinkageResult, project_weights, shrink_factors
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History, Snapshot
from ui.panels.base import JobPanel
from ui.panels.style import color, fill_background, mix, set_title, style_plot_item, style_text
from ui.run_colors import run_color
from ui.theme import Theme

MODES = (("train & eval", ("eval", "train")), ("eval (dropout off)", ("eval",)),
         ("train (dropout on)", ("train",)))
CURVE_X = np.logspace(-5, 4, 200)  # curvatures λ for the λ/(λ+α) curve
TIP_BARS = ("Top-k eigenvalues λᵢ of H = ∇²L(θ) (data loss, no penalty) by Lanczos on Hessian-vector\n"
            "products Hv = ∇(∇L·v). Eval mode: dropout off (what PyHessian computes). Train mode: dropout\n"
            "on with one fixed set of masks (the loss the optimizer actually descends).")
TIP_SHRINK = ("Selective shrinkage (Goodfellow et al. §7.1.1): with the penalty α/2‖w‖² the optimum is\n"
              "w̃ = (H + αI)⁻¹Hw*: along eigenvector qᵢ, qᵢᵀw̃ = λᵢ/(λᵢ+α)·qᵢᵀw*. Outlined: that prediction;\n"
              "filled: the measured qᵢᵀw_decay / qᵢᵀw_nodecay of two runs (H: the λ = 0 run's Hessian).")


def nominal_alpha(hparams: object) -> tuple[float, str]:
    """α of a run's settings (before it has stepped: the flat_weights job reads the optimizer's
    own groups). (nan, why) for AdamW."""
    lam = float(getattr(hparams, "weight_decay", 0.0))
    if getattr(hparams, "decay_mode", "l2") == "l2" or getattr(hparams, "optimizer", "") == "sgd":
        return lam, "α = λ"
    if getattr(hparams, "optimizer", "") == "momentum":
        mu = float(getattr(hparams, "momentum", 0.0))
        return (1 - mu) * lam, f"α = (1 − μ)λ, μ = {mu:g}"
    return math.nan, "AdamW: no single α"


class HessianPanel(JobPanel):
    """Top-k Hessian eigenvalues (train vs eval), SLQ density, and decay's shrink per eigen-direction."""

    key = "hessian"
    title = "Hessian eigen-directions"
    analysis = "hessian"
    idle_text = "no Hessian yet: press Compute (H)"

    EMPTY_HINT = "Press H (Compute) for the top-k\nHessian eigenvalues"
    SHRINK_HINT = ("Selective shrinkage needs two runs:\nadd a run with λ = 0 and one with λ > 0\n"
                   "(Compare), then press H")

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.results: dict[str, HessianResult] = {}  # mode → the newest result shown
        self.weights: dict[str, FlatWeightsResult] = {}  # run → its flat weights (Compare mode)
        self.shrink: ShrinkageResult | None = None
        self.shrink_runs: tuple[str, str] = ("", "")  # (no-decay run, decay run) of `shrink`
        self._queue: list[tuple[str, str, str, dict]] = []  # (tag, run, analysis, params) to ask next
        self._job_tag = ""  # what the job in flight computes ("eval mode", "weights of B")
        self._job_run = ""  # the run it is addressed to ("" with one run)
        self._asked = 0  # jobs in this Compute
        self._skipped_train = False  # train mode not asked: the run has no dropout
        self._hessian_run = ""  # the run whose Hessian is shown (Compare mode; "" with one run)
        self._drawn: tuple | None = None
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self._run_snaps: dict[str, Snapshot] = {}

        self.build_job_controls("Compute", "H", "Ask the engine for the top-k eigen-pairs (background "
                                "jobs); in Compare mode also both runs' weights for the shrinkage",
                                progress_width=220)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 50)
        self.k_spin.setValue(10)
        self.k_spin.setPrefix("k = ")
        self.k_spin.setToolTip("Eigen-pairs wanted, the largest eigenvalues first (1–50)")
        self.mode_combo = QComboBox()
        self.mode_combo.addItems([t for t, _ in MODES])
        self.mode_combo.setToolTip("Eval mode: dropout off (PyHessian forces it). Train mode: dropout on, "
                                   "one fixed mask set. Both: side by side, and their difference")
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.density_check = QCheckBox("SLQ density")
        self.density_check.setToolTip("The eigenvalue density by stochastic Lanczos quadrature (Ghorbani "
                                      "et al. 2019): 10 probes × 40 steps, about 400 more products")
        self.density_check.toggled.connect(self._invalidate)
        self.make_status_label()
        controls = QHBoxLayout()
        for w in (self.compute_button, self.cancel_button, self.k_spin, self.mode_combo, self.density_check,
                  self.progress):
            controls.addWidget(w)
        controls.addWidget(self.status_label, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.bars_plot = self.view.addPlot(row=0, col=0)
        self.density_plot = self.view.addPlot(row=0, col=1)
        self.shrink_plot = self.view.addPlot(row=1, col=0)
        self.curve_plot = self.view.addPlot(row=1, col=1)
        self.bars_plot.setToolTip(TIP_BARS)
        self.shrink_plot.setToolTip(TIP_SHRINK)
        self.curve_plot.setToolTip(TIP_SHRINK)
        self.eval_bars = pg.BarGraphItem(x=[], height=[], width=0.4)
        self.train_bars = pg.BarGraphItem(x=[], height=[], width=0.4)
        self.bars_plot.addItem(self.eval_bars)
        self.bars_plot.addItem(self.train_bars)
        self.density_curve = pg.PlotDataItem()
        self.density_plot.addItem(self.density_curve)
        self.pred_bars = pg.BarGraphItem(x=[], height=[], width=0.4)
        self.meas_bars = pg.BarGraphItem(x=[], height=[], width=0.4)
        self.shrink_plot.addItem(self.pred_bars)
        self.shrink_plot.addItem(self.meas_bars)
        self.theory_curve = pg.PlotDataItem()
        self.meas_points = pg.PlotDataItem(pen=None, symbol="o", symbolSize=10)
        self.curve_plot.addItem(self.theory_curve)
        self.curve_plot.addItem(self.meas_points)
        self.curve_plot.setLogMode(True, False)
        self.hints: dict[str, pg.TextItem] = {}
        for name, plot in (("bars", self.bars_plot), ("density", self.density_plot),
                           ("shrink", self.shrink_plot)):
            hint = pg.TextItem("", anchor=(0.5, 0.5))
            plot.addItem(hint, ignoreBounds=True)
            hint.setPos(0.5, 0.5)
            self.hints[name] = hint
        for plot in (self.bars_plot, self.density_plot, self.shrink_plot, self.curve_plot):
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addWidget(self.view, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap
        shown = [r.step for r in self.results.values()]
        if shown and snap.step < min(shown) and not self.comparing:
            self._forget()  # a new run

    def redraw(self) -> None:
        snap = self.snapshot
        alpha = None if snap is None else nominal_alpha(snap.hparams)
        key = (tuple(id(r) for r in self.results.values()), id(self.shrink), self.density_check.isChecked(),
               self.mode_combo.currentIndex(), self.theme.name, alpha, self.comparing, self._selected)
        if key == self._drawn:
            return
        self._drawn = key
        self._draw()

    def _keep(self, event: JobEvent) -> None:
        if event.result is None:
            return
        if event.analysis == "hessian":
            self.results[event.result.mode] = event.result
        elif event.analysis == "flat_weights":
            self.weights[self._job_run] = event.result

    def job_partial(self, event: JobEvent) -> None:
        self._keep(event)
        self._drawn = None
        self.redraw()

    def job_result(self, event: JobEvent) -> None:
        self._keep(event)
        self._update_shrink()
        self._next()
        self._drawn = None
        self.redraw()

    def job_failed(self, event: JobEvent) -> None:
        self._queue.clear()  # the rest of this Compute is moot
        super().job_failed(event)

    def job_progress_text(self, done: int, total: int) -> str:
        n = self._asked - len(self._queue)
        return f"{self._job_tag}: {done} / {total} HVPs ({n}/{self._asked})"

    def reset(self) -> None:
        super().reset()
        self._forget(cancel=True)

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.status_label, self.density_check):
            style_text(w, theme)
        self.view.setBackground(theme.background)
        style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
        for plot in (self.bars_plot, self.density_plot, self.shrink_plot, self.curve_plot):
            style_plot_item(plot, theme)
            plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)
        self.bars_plot.setLabel("left", "eigenvalue λᵢ", **style)
        self.bars_plot.setLabel("bottom", "i", **style)
        self.density_plot.setLabel("bottom", "λ", **style)
        self.shrink_plot.setLabel("left", "shrink factor", **style)
        self.shrink_plot.setLabel("bottom", "eigen-direction i", **style)
        self.curve_plot.setLabel("bottom", "curvature λ", **style)
        edge = pg.mkPen(theme.background, width=1)
        self.eval_bars.setOpts(brush=color(theme.train, 220), pen=edge)
        self.train_bars.setOpts(brush=color(theme.val, 220), pen=edge)
        self.density_curve.setPen(pg.mkPen(theme.accent, width=theme.line_width))
        self.pred_bars.setOpts(brush=color(theme.foreground, 0), pen=pg.mkPen(theme.foreground,
                                                                              width=theme.line_width))
        self.meas_bars.setOpts(brush=color(theme.accent, 200), pen=edge)
        self.theory_curve.setPen(pg.mkPen(theme.foreground, width=theme.line_width))
        self.theory_curve.setFillLevel(0.0)
        self.theory_curve.setBrush(color(theme.train, 70))
        self.meas_points.setSymbolBrush(color(theme.accent))
        self.meas_points.setSymbolPen(pg.mkPen(theme.background, width=1))
        font = self.font()
        font.setPointSize(theme.font_pt)
        for hint in self.hints.values():
            hint.setColor(mix(theme.foreground, theme.background, 0.3))
            hint.setFont(font)
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        self._queue.clear()
        self.forget_job()  # cancels a job in flight

    # -------------------------------------------------------------------------------- requests
    def modes(self) -> tuple[str, ...]:
        return MODES[self.mode_combo.currentIndex()][1]

    def params(self, mode: str) -> dict:
        """The HessianRequest fields the controls ask for (regsim.analyses.hessian)."""
        p = {"k": int(self.k_spin.value()), "mode": mode, "trace_samples": 16}
        if self.density_check.isChecked():
            p.update(density=10, density_steps=40)
        return p

    def shrink_pair(self) -> tuple[str, str] | None:
        """(no-decay run, decay run) of Compare mode: the first run with λ = 0, and the selected run
        if it decays, else the first that does; None if there is no such pair."""
        if not self.comparing:
            return None
        lam = {n: float(s.hparams.weight_decay) for n, s in self._run_snaps.items()}
        names = [n for n, _h, _s in self._runs if n in lam]
        nodecay = next((n for n in names if lam[n] == 0), None)
        decay = self._selected if lam.get(self._selected, 0) > 0 else next((n for n in names if lam[n] > 0),
                                                                          None)
        return (nodecay, decay) if nodecay and decay else None

    def request_job(self) -> str | None:
        """Ask for the eigen-pairs of each chosen mode, then (Compare mode) both runs' weights. The
        runner supersedes a run's older job of the same analysis, so they are asked one by one."""
        self.cancel_job(quiet=True)
        pair = self.shrink_pair()
        run = pair[0] if pair else (self._selected if self.comparing else "")
        self.results = {}
        self.shrink = None
        self._hessian_run = run
        modes = self.modes()
        h = self._shown_hparams(run)
        # Without dropout the train-mode loss is the eval-mode loss: one job, not two.
        self._skipped_train = (len(modes) == 2 and h is not None and not any(h.hidden_dropout())
                               and not h.input_dropout)
        if self._skipped_train:
            modes = ("eval",)
        self._queue = [(f"{m} mode", run, "hessian", self.params(m)) for m in modes]
        if pair:
            self._queue += [(f"weights of {n}", n, "flat_weights", {}) for n in pair]
        self._asked = len(self._queue)
        self._set_pending(True)
        self._show_progress(0, 1, "computing…")
        self.status_label.setText("computing…" + (f" (H of run {run})" if run else ""))
        self._drawn = None
        self._next()
        return self._job_id

    def _next(self) -> None:
        if not self._queue:
            self._set_pending(False)
            self._show_progress(1, 1, "done")
            self.status_label.setText(self._summary())
            return
        tag, run, analysis, params = self._queue.pop(0)
        self._job_tag, self._job_run = tag, run
        self.start_job(analysis, params, run)

    def cancel_job(self, quiet: bool = False) -> None:
        """Cancel this Compute's job in flight and the ones queued after it; `quiet` (a new Compute
        replaces it) leaves the bar and the status line to the new one."""
        self._queue.clear()
        if not quiet:
            super().cancel_job()
        else:
            if self._pending and self._job_id is not None:
                self.request.emit("cancel", {"id": self._job_id})
            self._job_id = None  # so the first job of the new Compute cancels nothing more

    # ------------------------------------------------------------------------------ Compare mode
    @property
    def comparing(self) -> bool:
        return len(self._runs) > 1

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        was = self.comparing
        self._runs = list(runs)
        self._selected = selected
        if was and not self.comparing:
            self.weights.clear()
            self.shrink = None

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        self._run_snaps = dict(snapshots)
        for name in list(self.weights):
            snap = snapshots.get(name)
            if snap is None or snap.step < self.weights[name].step:
                del self.weights[name]
                self.shrink = None

    # ------------------------------------------------------------------------------- internals
    def _forget(self, cancel: bool = False) -> None:
        self.results = {}
        self.weights = {}
        self.shrink = None
        self._queue.clear()
        self.forget_job(cancel)
        self._drawn = None

    def _mode_changed(self, *_: object) -> None:
        """A new mode set: ask again if anything was shown or asked (else wait for Compute)."""
        self._drawn = None
        if self.results or self._pending:
            self.request_job()

    def _invalidate(self, *_: object) -> None:
        self._drawn = None

    def _shown_hparams(self, run: str = "") -> object | None:
        """The settings of `run` (Compare mode) or of the single run."""
        snap = self._run_snaps.get(run) if run else self.snapshot
        return None if snap is None else snap.hparams

    def _hessian_for_shrink(self) -> HessianResult | None:
        return self.results.get("eval") or self.results.get("train")

    def _update_shrink(self) -> None:
        pair = self.shrink_pair()
        h = self._hessian_for_shrink()
        if pair is None or h is None or not all(n in self.weights for n in pair):
            return
        wn, wd = self.weights[pair[0]], self.weights[pair[1]]
        if wn.weights.size != h.n_params or wd.weights.size != h.n_params:
            self.status_label.setText("the two runs' networks differ in size: no shrinkage to compare")
            return
        if math.isfinite(wd.alpha):
            self.shrink = project_weights(h.eigenvectors, wd.weights, wn.weights, h.eigenvalues, wd.alpha)
        else:  # AdamW: no single α, so no prediction; the measured factors still say what decay did
            shrink = project_weights(h.eigenvectors, wd.weights, wn.weights, h.eigenvalues, 0.0)
            self.shrink = dataclasses.replace(shrink, alpha=math.nan,
                                              predicted=np.full_like(shrink.predicted, np.nan))
        self.shrink_runs = pair

    def _summary(self) -> str:
        """One short line for the status label (slide type must not push the plots down); the
        notes go into its tooltip."""
        parts, notes = [], []
        for mode, r in self.results.items():
            parts.append(f"{mode}: {r.iterations} HVPs{'' if r.converged else ' (not converged)'}, "
                         f"{r.elapsed:.1f} s")
            if r.note:
                notes.append(f"{mode} mode: {r.note}")
        if self._skipped_train:
            parts.append("train mode = eval mode (no dropout)")
        pair = self.shrink_pair()
        wd = self.weights.get(pair[1]) if pair else None
        if wd is not None:
            exact = math.isfinite(wd.alpha) and wd.uniform
            parts.append("AdamW: no single α" if not math.isfinite(wd.alpha) else
                         f"α = {wd.alpha:g}" + ("" if exact else " (approximate: see tooltip)"))
            notes.append(wd.note)
        self.status_label.setToolTip("\n".join(notes))
        return " · ".join(parts) or "no Hessian yet: press Compute (H)"

    # --------------------------------------------------------------------------------- drawing
    def _draw(self) -> None:
        t = self.theme
        fs = t.font_pt
        ev, tr = self.results.get("eval"), self.results.get("train")
        shown = [r for r in (ev, tr) if r is not None]
        both = ev is not None and tr is not None
        off = 0.2 if both else 0.0
        for bars, r, dx in ((self.eval_bars, ev, -off), (self.train_bars, tr, off)):
            if r is None:
                bars.setOpts(x=[], height=[])
            else:
                i = np.arange(1, len(r.eigenvalues) + 1)
                bars.setOpts(x=i + dx, height=r.eigenvalues, width=0.4 if both else 0.7)
        self.hints["bars"].setVisible(not shown)
        self.hints["bars"].setText(self.EMPTY_HINT)
        if shown:
            k = max(len(r.eigenvalues) for r in shown)
            hi = max(float(np.max(r.eigenvalues)) for r in shown)
            lo = min(0.0, min(float(np.min(r.eigenvalues)) for r in shown))
            self.bars_plot.setRange(xRange=(0.4, k + 0.6), yRange=(lo, hi * 1.05 or 1.0), padding=0)
            words = []
            for name, r in (("eval", ev), ("train", tr)):
                if r is not None:
                    c = t.train if name == "eval" else t.val
                    tr_text = f", tr H ≈ {r.trace:.3g}" if math.isfinite(r.trace) else ""
                    words.append(f"<span style='color:{c}'>■</span> {name}: "
                                 f"λ₁ {r.eigenvalues[0]:.3g}{tr_text}")
            of = f" of run {self._hessian_run}" if self._hessian_run else ""
            title = f"top-{k} eigenvalues{of} at step {shown[0].step}<br>" + "<br>".join(words)
            if both:
                n = min(len(ev.eigenvalues), len(tr.eigenvalues))
                a, b = ev.eigenvalues[:n], tr.eigenvalues[:n]
                rel = np.abs(b - a) / np.maximum(np.abs(a), 1e-30)
                title += f"<br>train − eval: up to {100 * float(rel.max()):.1f} %"
            set_title(self.bars_plot, title, t, fs)
        else:
            self.bars_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            set_title(self.bars_plot, "Hessian eigenvalues (Lanczos)", t, fs)
        # SLQ density
        dens = next((r for r in shown if r.density.size), None)
        if dens is not None and self.density_check.isChecked():
            self.density_plot.setLogMode(False, True)
            self.density_curve.setData(dens.density_grid, np.maximum(dens.density, 1e-12))
            self.hints["density"].setVisible(False)
            y = np.log10(np.maximum(dens.density, 1e-12))
            self.density_plot.setRange(xRange=(float(dens.density_grid[0]), float(dens.density_grid[-1])),
                                       yRange=(max(float(y.max()) - 8, float(y.min())), float(y.max()) + 0.3),
                                       padding=0)
            set_title(self.density_plot, f"SLQ density ({dens.mode})<br>"
                      f"{len(dens.density_nodes)} probes, log y", t, fs)
        else:
            self.density_curve.setData([], [])
            self.density_plot.setLogMode(False, False)
            self.hints["density"].setVisible(True)
            self.hints["density"].setText("press H for the density" if self.density_check.isChecked()
                                          else "tick SLQ density and\npress H")
            self.density_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            set_title(self.density_plot, "SLQ density", t, fs)
        self._draw_shrink()

    def _draw_shrink(self) -> None:
        t, fs = self.theme, self.theme.font_pt
        s = self.shrink
        snap = self.snapshot
        pair = self.shrink_pair()
        h = None if snap is None else (self._shown_hparams(pair[1]) if pair else snap.hparams)
        if s is not None:
            alpha, how = s.alpha, ""
        elif h is not None:
            alpha, how = nominal_alpha(h)  # Compare mode: the decay run's
        else:
            alpha, how = math.nan, ""
        if s is None:
            self.pred_bars.setOpts(x=[], height=[])
            self.meas_bars.setOpts(x=[], height=[])
            self.meas_points.setData([], [])
            self.hints["shrink"].setVisible(True)
            self.hints["shrink"].setText(self.SHRINK_HINT if self.shrink_pair() is None
                                         else "press H: the λ = 0 run's Hessian,\nthen both runs' weights")
            self.shrink_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            set_title(self.shrink_plot, "selective shrinkage λᵢ/(λᵢ+α): predicted vs measured", t, fs)
        else:
            i = np.arange(1, len(s.predicted) + 1)
            meas = np.where(np.isfinite(s.measured), s.measured, 0.0)
            has_pred = bool(np.isfinite(s.predicted).any())
            self.pred_bars.setOpts(x=i - 0.2 if has_pred else [], height=s.predicted if has_pred else [])
            self.meas_bars.setOpts(x=i + 0.2, height=meas)
            self.hints["shrink"].setVisible(False)
            lo = min(0.0, float(np.nanmin(meas)))
            hi = max(1.1, float(np.nanmax(meas)) + 0.05)
            self.shrink_plot.setRange(xRange=(0.4, len(i) + 0.6), yRange=(max(lo, -1.0), min(hi, 2.0)),
                                      padding=0)
            nd, d = self.shrink_runs
            slots = {n: s_ for n, _h, s_ in self._runs}
            cn, cd = (run_color(slots.get(n, 0), t.name) for n in (nd, d))
            err = np.abs(s.measured - s.predicted)
            worst = float(np.nanmax(err)) if np.isfinite(err).any() else float("nan")
            head = (f"□ predicted λᵢ/(λᵢ+α), α = {s.alpha:g}" if has_pred
                    else "AdamW: no single α, no prediction")
            tail = f"max |measured − predicted| {worst:.2f}" if has_pred else "(decay run: AdamW)"
            set_title(self.shrink_plot, f"{head}<br>■ measured qᵢᵀw<sub>"
                      f"<span style='color:{cd}'>{d}</span></sub> / qᵢᵀw<sub><span style='color:{cn}'>{nd}"
                      f"</span></sub><br>{tail}", t, fs)
        # the curve λ/(λ+α) from the decay strength (filled: the fraction of w*ᵢ kept)
        lam = float(getattr(h, "weight_decay", 0.0))
        if math.isfinite(alpha):
            curve_alpha = alpha
            title = (f"kept: λ/(λ+α), α = {alpha:.3g}" + (f"<br>({how})" if how else "")
                     if alpha > 0 else "λ = 0: nothing shrinks (factor 1)")
        else:  # AdamW: the L2 curve at α = λ, for reference
            curve_alpha = lam
            title = f"AdamW has no single α;<br>shown: L2 with α = λ = {lam:.3g}"
        if snap is None and s is None:
            self.theory_curve.setData([], [])
        else:
            self.theory_curve.setData(CURVE_X, shrink_factors(CURVE_X, curve_alpha))
        if s is not None:
            ok = np.isfinite(s.measured) & (s.eigenvalues > 0)
            self.meas_points.setData(s.eigenvalues[ok], s.measured[ok])
            title += "<br>● measured, at λᵢ"
        y0, y1 = -0.05, 1.1
        if s is not None and np.isfinite(s.measured).any():  # the measured points stay in view
            y0 = max(-1.0, min(y0, float(np.nanmin(s.measured)) - 0.05))
            y1 = min(2.0, max(y1, float(np.nanmax(s.measured)) + 0.05))
        self.curve_plot.setRange(xRange=(-5, 4), yRange=(y0, y1), padding=0)
        set_title(self.curve_plot, title, t, fs)
