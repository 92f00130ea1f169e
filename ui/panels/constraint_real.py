"""The Constraint geometry panel's second plot: the same picture on the real model.

The engine's `hessian_plane` job (regsim/analyses/hessian_plane.py) returns the loss on the plane
θ + a·q₁ + b·q₂ of the live run's top two Hessian eigenvectors (λ₁ ≥ λ₂) around its current weights
θ. Near θ the loss is ≈ L(θ) + gᵀ(aq₁ + bq₂) + ½(λ₁a² + λ₂b²): the toy's ellipses, stiff along a.
Drawn: contours of the real loss (blue), θ at the centre (blue, it plays w*), the origin's projection
onto the plane (orange ring: where the decay pulls), the decay's pull −c⊙θ projected on the plane
(orange arrow, scaled to reach the ring's direction), and — treating θ as the no-decay minimum — the
quadratic theory's decayed optimum qᵢᵀw̃ = λᵢ/(λᵢ + α)·qᵢᵀθ (green): the stiff axis keeps more.

This module is a helper of ui/panels/constraint.py (not a panel of its own): it owns the items and
the job's bookkeeping; the panel forwards its job events and theme.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton

from regsim.analyses.jobs import JobEvent
from ui.panels.style import color, style_plot, style_text
from ui.theme import Theme

LEVELS = 9  # contour levels: L(θ) + Δ·(k/LEVELS)², Δ = the grid's loss range above L(θ)
RESOLUTION = 41
BLUE, ORANGE, GREEN = "#4e79a7", "#f28e2b", "#59a14f"
_JOB_IDS = itertools.count(1)


def contour_levels(loss: np.ndarray, center: float, n: int = LEVELS) -> np.ndarray:
    """n levels above the centre's loss, quadratically spaced (equal steps in √(L − L(θ)), as the
    toy's ellipses are equally spaced in distance), up to the grid's largest finite loss."""
    top = float(np.nanmax(loss)) if np.isfinite(loss).any() else center + 1.0
    span = max(top - center, 1e-12)
    return center + span * (np.arange(1, n + 1) / (n + 1)) ** 2


class RealPlane(QObject):
    """The plot, its button and status line, and one hessian_plane job at a time."""

    request = Signal(str, dict)  # the panel re-emits it as its own request

    def __init__(self) -> None:
        super().__init__()
        self.widget = pg.PlotWidget()
        self.plot = self.widget.getPlotItem()
        self.plot.setAspectLocked(True)
        self.plot.setMouseEnabled(False, False)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.isos = [pg.IsocurveItem(level=0.0) for _ in range(LEVELS)]
        for iso in self.isos:
            iso.setParentItem(self.image)  # image coordinates; the image maps pixels to (a, b)
        self.center = pg.ScatterPlotItem(size=13)
        self.origin = pg.ScatterPlotItem(size=14)
        self.green = pg.ScatterPlotItem(size=13)
        self.pull = pg.PlotDataItem()
        self.reach = pg.PlotDataItem()  # dashed: θ to the origin's projection
        for item in (self.reach, self.pull, self.center, self.origin, self.green):
            self.plot.addItem(item)
        self.hint = pg.TextItem("press Compute: the loss on the plane of the live run's\n"
                                "top two Hessian eigenvectors", anchor=(0.5, 0.5))
        self.plot.addItem(self.hint, ignoreBounds=True)
        self.button = QPushButton("Compute on the real model")
        self.button.setToolTip("Ask the engine (a background job) for the top two Hessian eigenvectors "
                               "q₁, q₂ of the selected run's training loss by Lanczos, and the loss on "
                               "θ + a·q₁ + b·q₂ around its current weights θ.")
        self.button.clicked.connect(self.compute)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setToolTip("α: the decay coefficient of the penalty α/2‖θ‖² the optimizer's fixed "
                               "points obey.\ngreen: qᵢᵀw̃ = λᵢ/(λᵢ+α)·qᵢᵀθ, θ taken as the no-decay "
                               "minimum (Goodfellow et al. 2016 eq. 7.13)")
        self.run = ""  # the run the next job asks about ("" = the engine's only run)
        self.result = None  # the last HessianPlaneResult
        self._job: str | None = None
        self._show(False)

    # --------------------------------------------------------------------------------- the job
    def compute(self) -> None:
        self.cancel()
        self._job = f"plane-{next(_JOB_IDS)}"
        payload = {"id": self._job, "analysis": "hessian_plane", "params": {"resolution": RESOLUTION}}
        if self.run:
            payload["run"] = self.run
        self.status.setText("computing the top two eigen-pairs…")
        self.button.setEnabled(False)
        self.request.emit("analyze", payload)

    def cancel(self) -> None:
        if self._job is not None:
            self.request.emit("cancel", {"id": self._job})
            self._job = None
        self.button.setEnabled(True)

    def on_job(self, event: JobEvent) -> None:
        if event.id != self._job:
            return
        if event.kind == "result" and event.result is not None:
            self._job = None
            self.button.setEnabled(True)
            self.set_result(event.result)
        elif event.kind in ("failed", "cancelled"):
            self._job = None
            self.button.setEnabled(True)
            self.status.setText(f"{event.kind}: {event.message}" if event.message else event.kind)
        elif event.kind == "progress" and event.total:
            self.status.setText(f"computing… {100 * event.done // event.total} %")

    def reset(self) -> None:
        self.cancel()
        self.result = None
        self.status.setText("")
        self._show(False)

    # --------------------------------------------------------------------------------- drawing
    def _show(self, on: bool) -> None:
        for item in (self.image, *self.isos, self.center, self.origin, self.green, self.pull, self.reach):
            item.setVisible(on)
        self.hint.setVisible(not on)

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
                     "(green: θ moved by the quadratic theory)")
        elif r.alpha == 0:
            text += "; no decay (λ = 0): nothing pulls toward the origin"
        else:
            text += f"; {r.note}"
        self.status.setText(text)
        self._show(True)
        self.green.setVisible(bool(np.all(np.isfinite(r.predicted))) and r.alpha > 0)

    def apply_theme(self, theme: Theme) -> None:
        style_text(self.status, theme)
        style_plot(self.widget, theme, "The real model: plane of its top-2 Hessian eigenvectors",
                   "b (along q₂)", "a (along q₁)")
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
