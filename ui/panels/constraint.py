"""Constraint geometry: weight decay on a 2-D quadratic data loss, where every number is exact.

Blue ellipses are contours of the data loss ½(w − w*)ᵀH(w − w*), its minimum w* (blue, draggable);
orange circles are contours of the penalty λ/2‖w‖²; the green point is the regularized optimum
w_λ = (H + λI)⁻¹Hw* and the dashed green curve the path it takes as λ goes from 0 (w*) to ∞ (the
origin). The readout is "% shrunk" = 100·(1 − ‖w_λ‖/‖w*‖). Gradient descent with L2 (white) runs to
the green point; Adam with decoupled decay (AdamW, purple) converges elsewhere: on a deterministic
problem it ends at the minimum inside the box ‖w‖∞ ≤ 1/λ (regsim/quadratic.py has the derivation).

All the arithmetic is regsim.quadratic (numpy); this module only draws it. The optimizers' paths are
computed when a setting changes (< 5 ms) and drawn whole: the panel contract forbids pixels that
move between redraws with no new data, so there is no animation.

Beside it, the same picture on the real model (RealPlane, at the end of this module): the loss on the
plane of the live run's top two Hessian eigenvectors around its current weights, an engine job
(`hessian_plane`) whose lifecycle is JobPanel's (ui/panels/base.py): one job at a time, a newer
Compute cancels the older, Cancel (Esc), late events of a superseded job ignored.

Compare mode: the picture is a toy problem, not a run, so it does not multiply per run; a note under
the plot says so and names the run whose λ the slider starts at (the selected one).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from regsim import quadratic as qd
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History, Snapshot
from ui.panels.base import JobPanel
from ui.panels.style import color, fill_background, fix_axis_width, style_plot, style_text
from ui.theme import Theme

LEVELS = (0.125, 0.5, 1.125, 2.0, 3.125, 4.5)  # data-loss contour levels (c²/2 for c = 0.5, 1, …)
EXTENT = 3.2  # the plot shows [−EXTENT, EXTENT]²
GD_STEPS = 400  # gradient descent steps shown (η = 1/(λ_max + λ): converged well before)
ADAM_STEPS = 1500  # AdamW steps shown (η = 0.05, linear decay to 0)
BLUE, ORANGE, GREEN, PURPLE = "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"


def ellipse(q: qd.Quadratic2D, level: float, n: int = 120) -> np.ndarray:
    """Points (n, 2) of the contour L = level: w* + Q·diag(√(2·level/λᵢ))·(cos t, sin t)."""
    t = np.linspace(0, 2 * math.pi, n)
    radii = np.sqrt(2 * level / q.eigenvalues)
    return q.ws + (np.stack([np.cos(t), np.sin(t)], 1) * radii) @ q.eigenvectors.T


class ConstraintPanel(JobPanel):
    """The seed's constraint figure, live: drag w*, rotate and stretch the ellipse, move λ; beside
    it the real model's Hessian plane, a JobPanel job."""

    key = "constraint"
    title = "Constraint geometry"
    analysis = "hessian_plane"
    idle_text = ""

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._run_lam: float | None = None  # the live run's λ last seen
        self._pending_lam: float | None = None  # a new run λ for the slider, applied at redraw
        self._paths: tuple[np.ndarray, np.ndarray] = (np.zeros((1, 2)), np.zeros((1, 2)))
        self.widget = pg.PlotWidget()
        self.plot = self.widget.getPlotItem()
        self.plot.setAspectLocked(True)
        self.plot.setRange(xRange=(-EXTENT, EXTENT), yRange=(-EXTENT, EXTENT), padding=0)
        self.plot.setMouseEnabled(False, False)
        self.contours = [pg.PlotDataItem() for _ in LEVELS]
        self.circles = [pg.PlotDataItem() for _ in range(3)]
        self.path = pg.PlotDataItem()
        self.gd = pg.PlotDataItem()
        self.adamw = pg.PlotDataItem()
        self.green = pg.ScatterPlotItem(size=14)
        self.ends = pg.ScatterPlotItem(size=10)
        self.box_end = pg.ScatterPlotItem(size=14, symbol="o")  # AdamW's limit, hollow
        for item in (*self.contours, *self.circles, self.path, self.gd, self.adamw, self.green,
                     self.ends, self.box_end):
            self.plot.addItem(item)
        self.hint = pg.TextItem("waiting for a run: λ starts at its weight decay", anchor=(0.5, 0.5))
        self.plot.addItem(self.hint, ignoreBounds=True)
        self.target = pg.TargetItem(pos=(2.0, 1.5), size=14, movable=True)
        self.target.setToolTip("w*: the data loss's minimum. Drag it.")
        self.plot.addItem(self.target)
        self.target.sigPositionChanged.connect(lambda *_: self._recompute())

        def slider(lo: int, hi: int, value: int, tip: str) -> QSlider:
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(lo, hi)
            s.setValue(value)
            s.setToolTip(tip)
            s.valueChanged.connect(lambda _v: self._recompute())
            return s

        # λ on a log scale: 10^(v/25 − 3), v in [0, 100] → λ in [0.001, 10].
        self.lam = slider(0, 100, 75, "λ: the penalty λ/2‖w‖² (log scale, 0.001 to 10).\n"
                          "It starts at the live run's weight decay and follows it when that changes.")
        self.angle = slider(0, 180, 34, "rotation of the ellipse (degrees): its stiff axis")
        self.kappa = slider(0, 100, 50, "condition number κ = λ_max/λ_min (log scale, 1 to 100)")
        self.labels = [QLabel("λ"), QLabel("rotation"), QLabel("condition κ")]
        self.readout = QLabel()
        self.readout.setWordWrap(True)  # one long line would set the panel's minimum width
        self.readout.setToolTip("w_λ = (H + λI)⁻¹ H w*;  % shrunk = 100·(1 − ‖w_λ‖/‖w*‖).\n"
                                "Along H's eigenvector i, w*'s component is scaled by λᵢ/(λᵢ + λ):\n"
                                "the flat direction (small λᵢ) is given up first.")
        grid = QGridLayout(self)
        grid.addWidget(self.widget, 0, 0, 1, 6)
        for i, (label, s) in enumerate(zip(self.labels, (self.lam, self.angle, self.kappa))):
            grid.addWidget(label, 1, 2 * i)
            grid.addWidget(s, 1, 2 * i + 1)
        grid.addWidget(self.readout, 2, 0, 1, 6)
        self.compare_note = QLabel()  # Compare mode only (set_runs): hidden with one run
        self.compare_note.setWordWrap(True)
        self.compare_note.setVisible(False)
        grid.addWidget(self.compare_note, 3, 0, 1, 6)
        # The same picture on the real model (RealPlane below): a job on the live run. The export
        # clicks compute_button (ui/export/cli.py ANALYSIS_PANELS) and feeds on_job the result.
        self.build_job_controls(
            "Compute on the real model", "Q", "Ask the engine (a background job) for the top two "
            "Hessian eigenvectors q₁, q₂ of the selected run's training loss by Lanczos, and the "
            "loss on θ + a·q₁ + b·q₂ around its current weights θ.", progress_width=140)
        self.make_status_label()
        self.real = RealPlane(self.compute_button, self.status_label)
        self._job_run = ""  # Compare mode: the selected run ("" = the engine's only run)
        grid.addWidget(self.real.widget, 0, 6)
        row = QHBoxLayout()
        for w in (self.compute_button, self.cancel_button, self.progress):
            row.addWidget(w)
        row.addStretch(1)
        grid.addLayout(row, 1, 6)
        grid.addWidget(self.status_label, 2, 6, 2, 1)
        for col in range(6):  # the toy's six columns share half the width with the real plot
            grid.setColumnStretch(col, 1)
        grid.setColumnStretch(6, 5)
        grid.setRowStretch(0, 1)
        self.apply_theme(self.theme)
        self._recompute()

    # ---------------------------------------------------------------------------------------------
    def settings(self) -> tuple[qd.Quadratic2D, float]:
        pos = self.target.pos()
        q = qd.Quadratic2D(w_star=(float(pos.x()), float(pos.y())),
                           angle=math.radians(self.angle.value()),
                           condition=10 ** (self.kappa.value() / 50), scale=1.0)
        return q, 10 ** (self.lam.value() / 25 - 3)

    def _recompute(self) -> None:
        q, lam = self.settings()
        for item, level in zip(self.contours, LEVELS):
            pts = ellipse(q, level)
            item.setData(pts[:, 0], pts[:, 1])
        green = qd.regularized_optimum(q, lam)
        _, path = qd.lambda_path(q, n=120)
        self.path.setData(path[:, 0], path[:, 1])
        t = np.linspace(0, 2 * math.pi, 120)
        r0 = float(np.linalg.norm(green))
        for item, r in zip(self.circles, (0.5 * r0, r0, 1.5 * r0)):
            item.setData(r * np.cos(t), r * np.sin(t))
        self.green.setData([green[0]], [green[1]])
        lr = 1.0 / (float(q.eigenvalues.max()) + lam)
        self._paths = (qd.gd_l2(q, lam, lr, GD_STEPS),
                       qd.adam(q, lam, 0.05, ADAM_STEPS, decoupled=True, lr_decay=True))
        end = self._paths[1][-1]
        limit = qd.linf_box_optimum(q, lam)
        self.box_end.setData([limit[0]], [limit[1]])
        factors = q.eigenvalues / (q.eigenvalues + lam)
        self.readout.setText(
            f"λ = {lam:.3g}:  weights shrunk toward origin by {qd.shrunk_percent(q, lam):.1f} %\n"
            f"w_λ = ({green[0]:.3f}, {green[1]:.3f})   factors λᵢ/(λᵢ+λ) = {factors[0]:.3f} (stiff), "
            f"{factors[1]:.3f} (flat)\nAdamW after {ADAM_STEPS} steps: ({end[0]:.3f}, {end[1]:.3f}); "
            f"its limit, the minimum inside the box ‖w‖∞ ≤ 1/λ = {1 / lam:.3g} (hollow): "
            f"({limit[0]:.3f}, {limit[1]:.3f})")
        self.redraw()

    def ingest(self, snap: Snapshot) -> None:
        """Follow the live run's λ (its weight_decay), once per change of it: the picture opens on
        the decay the run uses, and the slider stays the user's until the run's λ changes again."""
        super().ingest(snap)
        lam = float(snap.hparams.weight_decay)
        if lam != self._run_lam:
            self._run_lam = lam
            self._pending_lam = lam

    def reset(self) -> None:
        super().reset()
        self._run_lam = None
        self.forget_job()  # the plane was of weights that are gone
        self.real.reset()
        self.redraw()

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode: say that this is one toy quadratic, not a per-run view."""
        several = len(runs) > 1
        self._job_run = selected if several else ""
        text = (f"A toy 2-D quadratic, not a run: the same picture for every run. λ starts at the "
                f"selected run's ({selected}); select another run or move λ to compare."
                if several else "")
        if text != self.compare_note.text():
            self.compare_note.setText(text)
        if self.compare_note.isHidden() == several:
            self.compare_note.setVisible(several)

    def lam_to_slider(self, lam: float) -> int:
        """The slider position for λ (clamped to [0.001, 10]; λ = 0 → the left end)."""
        if lam <= 0:
            return 0
        return int(round(min(100, max(0, 25 * (math.log10(lam) + 3)))))

    def redraw(self) -> None:
        if self._pending_lam is not None:
            lam, self._pending_lam = self._pending_lam, None
            if self.lam.value() != self.lam_to_slider(lam):
                self.lam.setValue(self.lam_to_slider(lam))  # recomputes and redraws
                return
        # Before a run's first snapshot there is no λ to show: the hint instead of the geometry.
        live = self.snapshot is not None
        for item in self._data_items():
            item.setVisible(live)
        self.hint.setVisible(not live)
        self.readout.setVisible(live)
        gd, ad = self._paths
        self.gd.setData(gd[:, 0], gd[:, 1])
        self.adamw.setData(ad[:, 0], ad[:, 1])
        self.ends.setData([gd[-1, 0], ad[-1, 0]], [gd[-1, 1], ad[-1, 1]],
                          brush=[pg.mkBrush(self.theme.foreground), pg.mkBrush(PURPLE)])

    def _data_items(self) -> tuple:
        return (*self.contours, *self.circles, self.path, self.gd, self.adamw, self.green, self.ends,
                self.box_end, self.target)

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (*self.labels, self.readout, self.compare_note):
            style_text(w, theme)
        style_plot(self.widget, theme, "Weight decay as a constraint (2-D quadratic)", "w₂", "w₁")
        lw = theme.line_width
        for item in self.contours:
            item.setPen(pg.mkPen(color(BLUE, 200), width=lw * 0.75))
        for item in self.circles:
            item.setPen(pg.mkPen(color(ORANGE, 170), width=lw * 0.75))
        self.path.setPen(pg.mkPen(GREEN, width=lw, style=Qt.PenStyle.DashLine))
        self.green.setBrush(pg.mkBrush(GREEN))
        self.green.setPen(pg.mkPen(theme.foreground, width=1))
        self.gd.setPen(pg.mkPen(theme.foreground, width=lw * 0.75))
        self.adamw.setPen(pg.mkPen(PURPLE, width=lw * 0.75))
        self.target.setPen(pg.mkPen(BLUE, width=lw))
        self.target.setBrush(pg.mkBrush(BLUE))
        self.box_end.setBrush(pg.mkBrush(None))
        self.box_end.setPen(pg.mkPen(PURPLE, width=2))
        self.hint.setColor(color(theme.foreground, 160))
        font = self.hint.textItem.font()
        font.setPointSize(theme.font_pt)
        self.hint.setFont(font)
        self.real.apply_theme(theme)
        self.redraw()

    # ------------------------------------------------------------------- the real-model job
    def params(self) -> dict:
        return {"resolution": REAL_RESOLUTION}

    def job_run(self) -> str:
        return self._job_run

    def job_started(self, params: dict) -> None:
        super().job_started(params)
        self.status_label.setText("computing the top two eigen-pairs…")

    def job_progress(self, done: int, total: int) -> None:
        super().job_progress(done, total)
        self.status_label.setText(f"computing… {100 * done // total} %")

    def job_result(self, event: JobEvent) -> None:
        self._show_progress(1, 1, "done")
        if event.result is not None:
            self.real.set_result(event.result)

    def _set_pending(self, on: bool) -> None:
        # One Lanczos run at a time is plenty on a shared CPU: Compute waits while one is in flight
        # (Cancel, Esc, ends it early).
        super()._set_pending(on)
        if self.compute_button is not None:
            self.compute_button.setEnabled(not on)

    def cleanup(self) -> None:
        """The toy's paths are computed on the GUI thread in < 5 ms; the real-model plane is an
        engine job, cancelled here."""
        self.cancel_job()


# -------------------------------------------------------------------------------------------------
# The same picture on the real model (the panel's second plot).
#
# The engine's `hessian_plane` job (regsim/analyses/hessian_plane.py) returns the loss on the plane
# θ + a·q₁ + b·q₂ of the live run's top two Hessian eigenvectors (λ₁ ≥ λ₂) around its current weights
# θ. Near θ the loss is ≈ L(θ) + gᵀ(aq₁ + bq₂) + ½(λ₁a² + λ₂b²): the toy's ellipses, stiff along a.
# Drawn: contours of the real loss (blue), θ at the centre (blue: it plays w*), the origin's projection
# onto the plane (orange ring: where decay pulls), the decay's pull −c⊙θ projected on the plane
# (orange), and, treating θ as the no-decay minimum, the quadratic theory's decayed optimum
# qᵢᵀw̃ = λᵢ/(λᵢ + α)·qᵢᵀθ (green): the stiff axis keeps more of its coordinate.

REAL_LEVELS = 9  # contour levels: L(θ) + Δ·(k/LEVELS)², Δ = the grid's loss range above L(θ)
REAL_RESOLUTION = 41


def contour_levels(loss: np.ndarray, center: float, n: int = REAL_LEVELS) -> np.ndarray:
    """n levels above the centre's loss, quadratically spaced (equal steps in √(L − L(θ)), as the
    toy's ellipses are equally spaced in distance), up to the grid's largest finite loss."""
    top = float(np.nanmax(loss)) if np.isfinite(loss).any() else center + 1.0
    span = max(top - center, 1e-12)
    return center + span * (np.arange(1, n + 1) / (n + 1)) ** 2


class RealPlane:
    """The plot of a hessian_plane result; `button` and `status` are the panel's Compute button and
    status line (the job itself is the panel's, JobPanel)."""

    def __init__(self, button: QPushButton, status: QLabel) -> None:
        self.widget = pg.PlotWidget()
        self.plot = self.widget.getPlotItem()
        self.plot.setAspectLocked(True)
        self.plot.setMouseEnabled(False, False)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.isos = [pg.IsocurveItem(level=0.0) for _ in range(REAL_LEVELS)]
        for iso in self.isos:
            iso.setParentItem(self.image)  # image coordinates; the image maps pixels to (a, b)
        self.center = pg.ScatterPlotItem(size=13)
        self.origin = pg.ScatterPlotItem(size=14)
        self.green = pg.ScatterPlotItem(size=13)
        self.pull = pg.PlotDataItem()
        self.reach = pg.PlotDataItem()  # dashed: θ to the origin's projection
        for item in (self.reach, self.pull, self.center, self.origin, self.green):
            self.plot.addItem(item)
        self.hint = pg.TextItem("press Compute: the loss on the\nplane of the live run's top two\n"
                                "Hessian eigenvectors", anchor=(0.5, 0.5))  # fits a 330 px plot
        self.plot.addItem(self.hint, ignoreBounds=True)
        self.button = button
        self.status = status
        self.status.setToolTip("α: the decay coefficient of the penalty α/2‖θ‖² the optimizer's fixed "
                               "points obey.\ngreen: qᵢᵀw̃ = λᵢ/(λᵢ+α)·qᵢᵀθ, θ taken as the no-decay "
                               "minimum (Goodfellow et al. 2016 eq. 7.13)")
        self.result = None  # the last HessianPlaneResult
        self._show(False)

    def reset(self) -> None:
        self.result = None
        self.status.setText("")
        self._show(False)

    # --------------------------------------------------------------------------------- drawing
    def _show(self, on: bool) -> None:
        for item in (self.image, *self.isos, self.center, self.origin, self.green, self.pull, self.reach):
            item.setVisible(on)
        self.hint.setVisible(not on)
        if not on:  # the hint sits at (0, 0): centre the empty plot on it
            self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def set_result(self, r) -> None:  # noqa: ANN001 - a regsim HessianPlaneResult (numpy only)
        self.result = r
        a, b = np.asarray(r.alphas), np.asarray(r.betas)
        loss = np.asarray(r.loss, dtype=np.float64)  # (B, A), rows = b
        # ImageItem wants (x, y) = (a, b) indexing: the transpose, placed on the grid's extent.
        img = loss.T
        da = (a[-1] - a[0]) / max(len(a) - 1, 1)
        db = (b[-1] - b[0]) / max(len(b) - 1, 1)
        shade = np.log1p(np.maximum(img - r.center_loss, 0) / max(float(np.nanmax(img)) - r.center_loss,
                                                                  1e-12) * 50)
        self.image.setImage(shade, levels=(0, float(np.nanmax(shade)) or 1.0))
        self.image.setRect(a[0] - da / 2, b[0] - db / 2, da * len(a), db * len(b))
        for iso, level in zip(self.isos, contour_levels(loss, r.center_loss)):
            iso.setData(img)
            iso.setLevel(float(level))
        # Isocurves live in pixel coordinates of the image: the image's transform maps them.
        self.center.setData([0.0], [0.0])
        ox, oy = float(r.origin[0]), float(r.origin[1])
        self.origin.setData([ox], [oy])
        self.reach.setData([0.0, ox], [0.0, oy])
        px, py = float(r.pull[0]), float(r.pull[1])
        norm = math.hypot(px, py)
        if norm > 0:  # the pull's direction, drawn a third of the way to the origin's projection
            length = 0.33 * math.hypot(ox, oy) / norm
            self.pull.setData([0.0, px * length], [0.0, py * length])
        else:
            self.pull.setData([], [])
        if np.all(np.isfinite(r.predicted)):
            self.green.setData([float(r.predicted[0])], [float(r.predicted[1])])
        else:
            self.green.setData([], [])
        self.plot.setRange(xRange=(a[0], a[-1]), yRange=(b[0], b[-1]), padding=0.02)
        lam = r.eigenvalues
        text = f"step {r.step}: λ₁ = {lam[0]:.3g}, λ₂ = {lam[1]:.3g}; L(θ) = {r.center_loss:.4g}"
        if r.alpha > 0 and math.isfinite(r.alpha):
            f = lam / (lam + r.alpha)
            text += (f"; α = {r.alpha:.3g}: kept λᵢ/(λᵢ+α) = {f[0]:.3f} along q₁, {f[1]:.3f} along q₂ "
                     "(green: where decay would move θ if θ were the no-decay minimum)")
        elif r.alpha == 0:
            text += "; no decay (λ = 0): nothing pulls toward the origin"
        else:
            text += f"; {r.note}"
        self.status.setText(text)
        self._show(True)
        self.green.setVisible(bool(np.all(np.isfinite(r.predicted))) and r.alpha > 0)

    def apply_theme(self, theme: Theme) -> None:
        style_text(self.status, theme)
        style_plot(self.widget, theme, "Real model: top-2 Hessian plane",
                   "b (along q₂)", "a (along q₁)")
        fix_axis_width(self.plot, theme)
        lw = theme.line_width
        self.image.setLookupTable(pg.ColorMap([0.0, 1.0], [color(theme.background, 255),
                                                            color(BLUE, 90)]).getLookupTable(nPts=64))
        for iso in self.isos:
            iso.setPen(pg.mkPen(color(BLUE, 220), width=lw * 0.75))
        self.center.setBrush(pg.mkBrush(BLUE))
        self.center.setPen(pg.mkPen(theme.foreground, width=1))
        self.origin.setBrush(pg.mkBrush(None))
        self.origin.setPen(pg.mkPen(ORANGE, width=2))
        self.green.setBrush(pg.mkBrush(GREEN))
        self.green.setPen(pg.mkPen(theme.foreground, width=1))
        self.pull.setPen(pg.mkPen(ORANGE, width=lw * 1.5))
        self.reach.setPen(pg.mkPen(color(ORANGE, 150), width=lw * 0.75, style=Qt.PenStyle.DashLine))
        self.hint.setColor(color(theme.foreground, 160))
        if self.result is None:  # the slide's aspect widened the empty range: the same one again
            self._show(False)
