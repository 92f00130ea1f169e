"""MC dropout: dropout kept on at inference, T passes on the live weights (Gal & Ghahramani 2016).

The engine computes the passes as a background job (regsim.analyses.mc_dropout) when asked (Compute,
or automatically every K steps); the panel draws what comes back:
- 1-D regression: the mean of the T passes with ±1σ and ±2σ bands over the data and the gap, where
  the bands should widen, beside the eval-mode (weight-scaled) curve of the live snapshot;
- 2-D classification: a map of the predictive entropy H[p̄] or of the mutual information
  H[p̄] − E_t H[p_t] (the epistemic part: the passes disagree), with the training points;
- digits: the most and the least certain validation images (by predictive entropy).
Before a result arrives it shows the snapshot's own view of the data (the eval-mode curve or map).

Compare mode (two or more runs): the panel shows the selected run (the one the controls edit), says
so in its title in the run's colour, and Compute asks the engine for that run's passes (a
run-addressed job). Each run keeps its last result: selecting another run shows that run's, so A's
and B's uncertainty can be flipped between with the run buttons.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QSpinBox, QVBoxLayout, QWidget

from regsim.analyses.jobs import JobEvent
from regsim.analyses.mc_dropout import MCResult
from regsim.snapshot import History, Snapshot
from ui.panels.base import JobPanel
from ui.panels.style import FastFillBetween, color, fill_background, style_plot, style_text
from ui.run_colors import run_color, run_settings_text
from ui.theme import Theme

MAPS = ("entropy", "mutual information")
MOSAIC_K = 8  # images per row of the digits mosaic (most certain above, least certain below)


def mosaic(images: np.ndarray, cols: int) -> np.ndarray:
    """(K, 8, 8) images → one (rows·9 − 1, cols·9 − 1) array with 1-pixel gaps (NaN)."""
    rows = max(1, -(-len(images) // cols))
    out = np.full((rows * 9 - 1, cols * 9 - 1), np.nan, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = img
    return out


class MCDropoutPanel(JobPanel):
    """Predictive mean and spread (1-D), entropy / mutual information maps (2-D), certain digits."""

    key = "uncertainty"  # no underscore: file names split on it (ui/export)
    title = "MC dropout"
    analysis = "mc_dropout"
    job_unit = "passes"
    idle_text = "no MC result yet: press Compute (M)"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.result: MCResult | None = None
        self._last_request_step: int | None = None
        self._drawn: tuple | None = None
        # Compare mode: which run is shown (the selected one) and each run's last result.
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self._run_snaps: dict[str, Snapshot] = {}
        self.run_results: dict[str, MCResult] = {}
        self._job_run = ""  # the run the request in flight is for ("" with one run)

        # No Cancel button and no bar: T passes take a moment; the status line counts them.
        self.build_job_controls("Compute", "M", "Ask the engine for T passes with dropout on (a "
                                "background job)", cancel=False, progress=False)
        self.t_spin = QSpinBox()
        self.t_spin.setRange(1, 200)
        self.t_spin.setValue(50)
        self.t_spin.setPrefix("T = ")
        self.t_spin.setToolTip("Stochastic passes, each with fresh dropout masks at every site")
        self.auto_check = QCheckBox("auto every 200 steps")
        self.auto_check.setToolTip("Recompute as training advances (one request in flight at most)")
        self.map_combo = QComboBox()
        self.map_combo.addItems(MAPS)
        self.map_combo.setToolTip("2-D: colour by the predictive entropy H[p̄], or by the mutual "
                                  "information H[p̄] − E_t H[p_t] (the passes' disagreement)")
        self.map_combo.currentIndexChanged.connect(self._invalidate)
        self.make_status_label()
        controls = QHBoxLayout()
        for w in (self.compute_button, self.t_spin, self.auto_check, self.map_combo):
            controls.addWidget(w)
        controls.addWidget(self.status_label, 1)

        self.view = pg.PlotWidget()
        plot = self.view.getPlotItem()
        self.image = pg.ImageItem(axisOrder="row-major")
        plot.addItem(self.image)
        self.lo2, self.hi2 = pg.PlotDataItem(), pg.PlotDataItem()
        self.lo1, self.hi1 = pg.PlotDataItem(), pg.PlotDataItem()
        self.band2 = FastFillBetween(self.lo2, self.hi2)
        self.band1 = FastFillBetween(self.lo1, self.hi1)
        for item in (self.band2, self.band1):
            plot.addItem(item)
        self.det_curve = pg.PlotDataItem()
        self.mean_curve = pg.PlotDataItem()
        self.points = pg.ScatterPlotItem(size=6, pxMode=True)
        for item in (self.det_curve, self.mean_curve, self.points):
            plot.addItem(item)
        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addWidget(self.view, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap
        if self._last_request_step is not None and snap.step < self._last_request_step:
            self._last_request_step = None  # a new run
        if (self.auto_check.isChecked() and not self._pending and snap.status not in ("diverged", "error")
                and (self._last_request_step is None or snap.step - self._last_request_step >= 200)):
            self.request_job()

    def redraw(self) -> None:
        snap = self.snapshot
        data = None if snap is None else snap.data
        key = (None if data is None else (data.kind, id(data)), id(self.result),
               self.map_combo.currentIndex(), self.theme.name, self._run_title())
        if key == self._drawn:
            return
        self._drawn = key
        self._draw(data)

    def job_result(self, event: JobEvent) -> None:
        if self._job_run:
            self.run_results[self._job_run] = event.result
            if self._job_run != self._selected:
                return  # another run is shown now; this one's result waits for its selection
        self.result = r = event.result
        self.status_label.setText(f"T = {r.T} passes at step {r.step} · {r.elapsed * 1e3:.0f} ms"
                                  + (f" · {r.note}" if r.note else ""))

    def job_failed(self, event: JobEvent) -> None:
        self.status_label.setText(event.message or event.kind)

    def job_progress(self, done: int, total: int) -> None:
        self.status_label.setText(f"computing: {self.job_progress_text(done, total)}")

    def reset(self) -> None:
        super().reset()
        self.result = None
        if self._job_run:  # Compare mode: a run-addressed job's result is filed under its run
            self._set_pending(False)
        else:  # the one run restarted: its job analyses weights that are gone
            self.forget_job()
        self._last_request_step = None
        self._drawn = None

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.status_label, self.auto_check):
            style_text(w, theme)
        style_plot(self.view, theme, "MC dropout")
        self.det_curve.setPen(pg.mkPen(theme.foreground, width=theme.line_width, style=pg.QtCore.Qt.DashLine))
        self.mean_curve.setPen(pg.mkPen(theme.accent, width=theme.line_width))
        self.band1.setBrush(color(theme.accent, 90))
        self.band2.setBrush(color(theme.accent, 45))
        self.image.setColorMap(pg.colormap.get(theme.colormap))
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        self.auto_check.setChecked(False)

    # -------------------------------------------------------------------------------- requests
    def params(self) -> dict:
        """The Request fields the controls ask for (regsim.analyses.mc_dropout.MCRequest)."""
        return {"T": int(self.t_spin.value())}

    def job_run(self) -> str:
        """Compare mode: the passes of the run shown."""
        self._job_run = self._selected if self.comparing else ""
        return self._job_run

    def job_started(self, params: dict) -> None:
        if self.snapshot is not None:
            self._last_request_step = self.snapshot.step
        self.status_label.setText("computing…")

    # ------------------------------------------------------------------------------ Compare mode
    @property
    def comparing(self) -> bool:
        return len(self._runs) > 1

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window, every tick): the runs and the selected one, which the
        panel shows. A new selection brings that run's own last result back (or none)."""
        self._runs = list(runs)
        if selected != self._selected:
            self._selected = selected
            if self.comparing:
                self.result = self.run_results.get(selected)
                self._drawn = None
                r = self.result
                self.status_label.setText(
                    f"run {selected}: T = {r.T} passes at step {r.step}" if r is not None
                    else f"run {selected}: no MC result yet: press Compute (M)")
        if not self.comparing:
            self.run_results.clear()

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        """Compare mode: each run's latest Snapshot (for the settings named in the title). A run
        whose step went back (reset) drops its stored result."""
        self._run_snaps = dict(snapshots)
        for name in list(self.run_results):
            snap = snapshots.get(name)
            if snap is None or snap.step < self.run_results[name].step:
                del self.run_results[name]

    def _run_title(self) -> str:
        """"<b>B</b> p 0.5 · λ 0: " in B's colour in Compare mode; "" with one run."""
        if not self.comparing:
            return ""
        slot = next((s for n, _h, s in self._runs if n == self._selected), 0)
        what = run_settings_text({n: s.hparams for n, s in self._run_snaps.items()}).get(
            self._selected, "")
        c = run_color(slot, self.theme.name)
        return (f"<span style='color:{c}'><b>run {self._selected}</b></span>"
                + (f" ({what})" if what else "") + " · ")

    def _invalidate(self, *_: object) -> None:
        self._drawn = None

    # --------------------------------------------------------------------------------- drawing
    def _draw(self, data: object) -> None:
        r = self.result
        plot = self.view.getPlotItem()
        for item in (self.lo1, self.hi1, self.lo2, self.hi2, self.det_curve, self.mean_curve):
            item.setData([], [])
        self.points.setData([], [])
        self.image.clear()
        self.map_combo.setVisible(data is not None and data.kind == "2d")
        plot.setAspectLocked(False)
        t = self.theme
        if data is None:  # the same empty state whatever was shown before (a fixed range)
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            plot.setTitle(self._run_title() + "MC dropout: waiting for the run's data", color=t.foreground,
                          size=f"{t.title_pt}pt")
            return
        if data.kind == "1d":
            self.points.setData(data.x_train[:, 0], np.asarray(data.y_train).reshape(-1),
                                brush=color(t.train), pen=None)
            if data.curve_x is not None:
                self.det_curve.setData(data.curve_x, data.curve_y)
            if r is not None and r.mean is not None:
                x = r.x[:, 0]
                for lo, hi, k in ((self.lo1, self.hi1, 1), (self.lo2, self.hi2, 2)):
                    lo.setData(x, r.mean - k * r.std)
                    hi.setData(x, r.mean + k * r.std)
                self.mean_curve.setData(x, r.mean)
                title = f"MC mean ± 1σ, 2σ of {r.T} passes (dashed: eval mode)"
            else:
                title = "eval-mode curve (press Compute for the MC bands)"
            plot.setRange(xRange=(-4, 4), yRange=(-2.5, 2.5), padding=0)
        elif data.kind == "2d":
            plot.setAspectLocked(True)  # x₁ and x₂ share a scale
            if r is not None and r.entropy is not None and len(r.grid_shape) == 2:
                values = r.entropy if self.map_combo.currentIndex() == 0 else r.mutual_info
                img = values.reshape(r.grid_shape)
                x0, x1 = float(r.x[:, 0].min()), float(r.x[:, 0].max())
                y0, y1 = float(r.x[:, 1].min()), float(r.x[:, 1].max())
                self.image.setImage(img, levels=(0.0, float(np.log(r.probs.shape[1]))))
                title = f"{MAPS[self.map_combo.currentIndex()]} of {r.T} MC passes (nats)"
            elif data.grid_prob is not None:
                img = data.grid_prob
                x0, x1 = float(data.grid_x[0]), float(data.grid_x[-1])
                y0, y1 = float(data.grid_y[0]), float(data.grid_y[-1])
                self.image.setImage(img, levels=(0.0, 1.0))
                title = "eval-mode P(class 1) (press Compute for the MC maps)"
            else:
                plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
                plot.setTitle("MC dropout", color=t.foreground, size=f"{t.title_pt}pt")
                return
            self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            labels = np.asarray(data.y_train)
            brushes = [color(t.train) if v == 0 else color(t.val) for v in labels]
            self.points.setData(data.x_train[:, 0], data.x_train[:, 1], brush=brushes, pen=None)
            plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        else:
            plot.setAspectLocked(True)  # square pixels for the digits
            if r is not None and r.entropy is not None and r.x.shape[1] == 64:
                k = min(MOSAIC_K, len(r.most_certain))
                idx = np.concatenate([r.most_certain[:k], r.least_certain[:k]])
                img = mosaic(r.x[idx].reshape(-1, 8, 8), max(k, 1))
                title = f"top: most certain · bottom: least certain ({r.T} MC passes)"
            elif data.images is not None:
                img = mosaic(np.asarray(data.images), MOSAIC_K)
                title = "validation digits (press Compute for the most / least certain)"
            else:
                plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
                plot.setTitle("MC dropout", color=t.foreground, size=f"{t.title_pt}pt")
                return
            self.image.setImage(img[::-1], levels=(0.0, 1.0))  # row 0 on top
            self.image.setRect(QRectF(0, 0, img.shape[1], img.shape[0]))
            plot.setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0)
        plot.setTitle(self._run_title() + title, color=t.foreground, size=f"{t.title_pt}pt")
