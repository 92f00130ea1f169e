"""The race: Adam+L2, AdamW, SGD+L2 and SGDW on one 2-D loss with the same hyperparameters, then
Adam+L2 against AdamW on the real model.

Top, the seed's figure (regsim/race_np.py, the same arithmetic as the readable rules of
regsim/rules.py, checked against them): same loss, same start, same lr, λ, β — only where the decay
enters differs. L2 adds λθ to the gradient; Adam then divides it by √v̂, so the per-step decay of axis
i is  lr·λ/(√v̂ᵢ + ε): the steep axis (large gradients, large v̂) is decayed *less*. AdamW shrinks θ by
lr·λ on every axis (PyTorch's coupling of λ to lr). Plain SGD has no division, so SGD+L2 and SGDW at
lr·λ are the same update, θ ← θ − lr(g + λθ) = (1 − lr·λ)θ − lr·g: their paths lie exactly on top of
each other (and the paper's SGDW with λ_paper = lr·λ joins them). With momentum μ > 0 they part: λθ is
carried in SGD+L2's buffer. Drag the start point; the race reruns at once and replays on the GUI clock.
Right of the contours: the decay per step of each axis along the way (log scale).

Bottom, the live runs: in Compare mode (the button sets up the presets adam_l2 and adamw in
lockstep) every run's histogram of the effective decay its weights receive per step (snapshot part
"optstate", regsim/optstate.py: η_t·λ/(√v̂ + ε) for Adam+L2, η_t·λ for AdamW), the per-layer norms and
the validation loss, and the measured claim "weights with large gradients get less decay": the mean
decay of the top-√v̂ decile over that of the bottom decile, and corr(log decay, log √v̂).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from regsim import race_np
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import (
    LegendRow,
    color,
    fill_background,
    fix_axis_width,
    mix,
    set_axis_label,
    set_title,
    show_empty,
    style_legend,
    style_plot_item,
    style_text,
)
from ui.run_colors import run_color
from ui.theme import Theme
from ui.widgets import FlowLayout

SHOWN = ("Adam+L2", "AdamW", "SGD+L2", "SGDW", "SGDW (paper)")  # the racers drawn
COLOURS = {"Adam+L2": "#e15759", "AdamW": "#4e9ee8", "SGD+L2": "#f2b134", "SGDW": "#59a14f",
           "SGDW (paper)": "#b07aa1"}
SLIDE_COLOURS = {"Adam+L2": "#c0392b", "AdamW": "#1f5fbf", "SGD+L2": "#d68910", "SGDW": "#2b8a3e",
                 "SGDW (paper)": "#862e9c"}
# SGD+L2 is drawn wide, SGDW narrower and SGDW (paper) narrowest on top of it: where they coincide
# all three stay visible as one striped line.
WIDTH = {"Adam+L2": 1.0, "AdamW": 1.0, "SGD+L2": 2.6, "SGDW": 1.4, "SGDW (paper)": 0.6}
VIEW = {"quadratic": ((-3.0, -1.5), (3.5, 3.5)), "rosenbrock": ((-2.0, -1.0), (2.0, 3.0))}
START = {"quadratic": (-1.5, 2.0), "rosenbrock": (-1.2, 1.0)}
DEFAULTS = {"quadratic": dict(lr="0.05", lam="0.5", steps="200"),
            "rosenbrock": dict(lr="0.002", lam="0.1", steps="1000")}
LEVELS = 10
FRAMES = 90  # a replay shows the whole race in about this many GUI frames (~3 s at 30 Hz)
FRAME_MS = 33
MAX_RUNS = 4
MAX_LAYERS = 6
LAYER_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine,
                Qt.PenStyle.DashDotLine, Qt.PenStyle.DashDotDotLine, Qt.PenStyle.SolidLine)
FIELDS = (("lr", "lr", "learning rate lr, in (0, 10]"), ("lam", "λ", "weight decay λ, in [0, 10]"),
          ("b1", "β₁", "Adam's β₁, in [0, 1)"), ("b2", "β₂", "Adam's β₂, in [0, 1)"),
          ("mu", "μ", "SGD momentum μ, in [0, 1): with μ > 0 SGD+L2 and SGDW part"),
          ("steps", "steps", "steps of the race, whole numbers in [1, 100000]"))
TIP = ("Same loss, same start, same lr, λ, β for every racer.\n"
       "Adam+L2: g + λθ is divided by √v̂, so axis i loses lr·λ/(√v̂ᵢ + ε) of θᵢ per step (uneven).\n"
       "AdamW (PyTorch): θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + ε): the same fraction lr·λ on both axes.\n"
       "SGD+L2 ≡ SGDW at lr·λ without momentum: θ ← (1 − lr·λ)θ − lr·g, one path.\n"
       "Drag the cross (the start).")
HIST_TIP = ("Effective decay per step of every weight matrix element, from the optimizer's state:\n"
            "Adam+L2: η_t·λ/(√v̂ + ε), v̂ = exp_avg_sq/(1 − β₂ᵗ); AdamW: η_t·λ (PyTorch) or η_t/lr·λ (paper).")


class RacePanel(Panel):
    """The 2-D race on the contours, with the per-axis decay, and the live Adam+L2 vs AdamW runs."""

    key = "race"
    title = "The race"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.settings: race_np.RaceSettings | None = None
        self.result: dict[str, race_np.Trajectory] = {}
        self.shown = 0  # steps of the race drawn so far (the replay's position)
        self._closed = False
        self._runs: list[tuple[str, History, int]] = []
        self._run_snaps: dict[str, Snapshot] = {}
        self._selected = "A"
        self._drawn: tuple | None = None
        self._contour_key: tuple | None = None

        # ------------------------------------------------------------------ controls
        self.loss_combo = QComboBox()
        self.loss_combo.addItems(["ill-conditioned quadratic", "Rosenbrock"])
        self.loss_combo.setToolTip("quadratic: ½((x − 2)² + 25(y − 1)²), condition number 25\n"
                                   "Rosenbrock: (1 − x)² + 100(y − x²)², a curved valley, minimum (1, 1)")
        self.fields: dict[str, QLineEdit] = {}
        # Wraps in a narrow window (a QHBoxLayout asked for 811 px); each label stays with its field.
        controls = FlowLayout()
        controls.addWidget(self.loss_combo)
        values = dict(DEFAULTS["quadratic"], b1="0.9", b2="0.999", mu="0")
        for key, label, tip in FIELDS:
            lab = QLabel(label)
            edit = QLineEdit(values[key])
            edit.setMaximumWidth(70)
            # focus by click only: hiding the combo for a slide export must not hand the focus (and a
            # blinking cursor) to a field
            edit.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            edit.setToolTip(tip)
            edit.editingFinished.connect(self.rerun)
            pair = QWidget()
            row = QHBoxLayout(pair)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(3)
            row.addWidget(lab)
            row.addWidget(edit)
            controls.addWidget(pair)
            self.fields[key] = edit
        self.replay_button = QPushButton("Replay (R)")
        self.replay_button.setShortcut(QKeySequence("R"))
        self.replay_button.setToolTip("Run the race again step by step")
        self.replay_button.clicked.connect(self.replay)
        self.setup_button = QPushButton("Compare Adam+L2 vs AdamW")
        self.setup_button.setToolTip("Replace the runs by the presets adam_l2 and adamw, in lockstep "
                                     "(same data, weights, batches; only where λθ enters differs)")
        self.setup_button.clicked.connect(self.setup_comparison)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        controls.addWidget(self.replay_button)
        controls.addWidget(self.setup_button)
        self.loss_combo.currentIndexChanged.connect(self._loss_changed)

        # ------------------------------------------------------------------ the race
        self.race_view = pg.GraphicsLayoutWidget()
        self.race_view.setToolTip(TIP)
        self.contour_plot = self.race_view.addPlot(row=0, col=0, rowspan=2)
        self.contour_plot.setMouseEnabled(False, False)
        self.contour_plot.hideButtons()
        self.image = pg.ImageItem()
        self.contour_plot.addItem(self.image)
        self.isocurves = [pg.IsocurveItem(level=1.0) for _ in range(LEVELS)]
        for iso in self.isocurves:
            iso.setParentItem(self.image)
        self.race_legend = LegendRow(self.contour_plot, columns=3)
        self.paths = {n: self.contour_plot.plot([], [], name=self._legend_name(n)) for n in SHOWN}
        self.heads = pg.ScatterPlotItem(size=9)
        self.minimum = pg.ScatterPlotItem(size=16, symbol="star")
        self.contour_plot.addItem(self.heads)
        self.contour_plot.addItem(self.minimum)
        self.target = pg.TargetItem(pos=START["quadratic"], size=16, movable=True)
        self.target.setToolTip("the start θ₀ of every racer: drag it")
        self.contour_plot.addItem(self.target)
        self.target.sigPositionChanged.connect(self._start_moved)
        self.caption = pg.TextItem("", anchor=(0, 0))
        self.contour_plot.addItem(self.caption, ignoreBounds=True)

        self.rate_plot = self.race_view.addPlot(row=0, col=1)
        self.rate_plot.setLogMode(y=True)
        self.rate_plot.setMouseEnabled(False, False)
        self.rate_plot.hideButtons()
        self.rate_legend = LegendRow(self.rate_plot, columns=2)
        self.rates = {
            "Adam+L2 x": self.rate_plot.plot([], [], name="Adam+L2, x"),
            "Adam+L2 y": self.rate_plot.plot([], [], name="Adam+L2, y (steep)"),
            "AdamW": self.rate_plot.plot([], [], name="AdamW, x = y: lr·λ"),
            "SGD": self.rate_plot.plot([], [], name="SGD+L2 = SGDW: lr·λ"),
        }
        self.rate_cursor = pg.InfiniteLine(angle=90)
        self.rate_plot.addItem(self.rate_cursor, ignoreBounds=True)
        self.loss_plot = self.race_view.addPlot(row=1, col=1)
        self.loss_plot.setLogMode(y=True)
        self.loss_plot.setMouseEnabled(False, False)
        self.loss_plot.hideButtons()
        self.loss_plot.setXLink(self.rate_plot)
        self.losses = {n: self.loss_plot.plot([], []) for n in SHOWN}
        self.race_view.ci.layout.setColumnStretchFactor(0, 3)
        self.race_view.ci.layout.setColumnStretchFactor(1, 2)

        # ------------------------------------------------------------------ the live runs
        self.model_view = pg.GraphicsLayoutWidget()
        self.hist_plot = self.model_view.addPlot(row=0, col=0)
        self.hist_plot.setToolTip(HIST_TIP)
        self.hist_plot.setMouseEnabled(False, False)
        self.hist_plot.hideButtons()
        self.hist_legend = LegendRow(self.hist_plot, columns=2)
        self.hists = [pg.PlotDataItem([], [], stepMode="center", fillLevel=0) for _ in range(MAX_RUNS)]
        for item in self.hists:
            self.hist_plot.addItem(item)
        # A run shown alone gets the other rule on its own state: L2's η_t·λ/(√v̂ + ε) as an outline
        # (an AdamW run), or the uniform η_t·λ as a line (an Adam+L2 run).
        self.other_hist = pg.PlotDataItem([], [], stepMode="center")
        self.hist_plot.addItem(self.other_hist)
        self.other_line = pg.InfiniteLine(angle=90)
        self.hist_plot.addItem(self.other_line, ignoreBounds=True)
        self.other_line_key = pg.PlotDataItem([], [])  # the line's legend sample (never drawn)
        self.hint = pg.TextItem("", anchor=(0.5, 0.5))
        self.hist_plot.addItem(self.hint, ignoreBounds=True)
        self.norm_plot = self.model_view.addPlot(row=0, col=1)
        self.norm_plot.setMouseEnabled(False, False)
        self.norm_plot.hideButtons()
        self.norm_curves = [[pg.PlotDataItem([], []) for _ in range(MAX_LAYERS)] for _ in range(MAX_RUNS)]
        for row in self.norm_curves:
            for item in row:
                self.norm_plot.addItem(item)
        self.val_plot = self.model_view.addPlot(row=0, col=2)
        self.val_plot.setMouseEnabled(False, False)
        self.val_plot.hideButtons()
        self.val_curves = [pg.PlotDataItem([], []) for _ in range(MAX_RUNS)]
        for item in self.val_curves:
            self.val_plot.addItem(item)
        self.model_view.ci.layout.setColumnStretchFactor(0, 3)
        self.model_view.ci.layout.setColumnStretchFactor(1, 2)
        self.model_view.ci.layout.setColumnStretchFactor(2, 2)
        self.readout = QLabel("")
        self.readout.setWordWrap(True)
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addWidget(self.message)
        root.addWidget(self.race_view, 4)
        root.addWidget(self.model_view, 3)
        root.addWidget(self.readout)

        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._tick)
        self.apply_theme(self.theme)
        self.rerun()

    # ------------------------------------------------------------------------ the race
    def read_settings(self) -> race_np.RaceSettings:
        """The controls as RaceSettings; a ValueError naming the field and its range otherwise."""
        vals = {}
        for key, label, tip in FIELDS:
            text = self.fields[key].text().strip()
            try:
                vals[key] = int(text) if key == "steps" else float(text)
            except ValueError:
                allowed = tip.split(", ", 1)[-1].split(":")[0].removeprefix("in ")
                raise ValueError(f"{label} = {text!r} is not a number; allowed: {allowed}") from None
        if vals["steps"] < 1:
            raise ValueError(f"steps = {vals['steps']} is out of range; allowed: whole numbers in "
                             "[1, 100000]")
        loss = race_np.LOSSES[self.loss_combo.currentIndex()]
        pos = self.target.pos()
        return race_np.RaceSettings(loss=loss, start=(float(pos.x()), float(pos.y())), lr=vals["lr"],
                                    lam=vals["lam"], betas=(vals["b1"], vals["b2"]), momentum=vals["mu"],
                                    steps=vals["steps"])

    def rerun(self) -> None:
        """Run the race with the controls' settings (a few ms) and replay it if the panel is on screen."""
        if self._closed:
            return
        try:
            s = self.read_settings()
        except ValueError as e:
            self.message.setText(f"<span style='color:{self.theme.val}'>{e}</span>")
            self.status_message.emit(str(e))
            return
        if s == self.settings:
            return
        self.settings = s
        self.result = race_np.race(s, SHOWN)
        self.message.setText(self._race_summary())
        self._draw_contours()
        self.shown = 0 if self.isVisible() else s.steps
        if self.shown < s.steps:
            self._timer.start()
        self._draw_race()

    def replay(self) -> None:
        if self.settings is None or self._closed:
            return
        self.shown = 0
        self._timer.start()
        self._draw_race()

    def _tick(self) -> None:
        if self.settings is None or self._closed or not self.isVisible():
            self._timer.stop()
            if self.settings is not None:
                self.shown = self.settings.steps
            return
        self.shown = min(self.settings.steps, self.shown + max(1, math.ceil(self.settings.steps / FRAMES)))
        if self.shown >= self.settings.steps:
            self._timer.stop()
        self._draw_race()

    def _loss_changed(self, index: int) -> None:
        loss = race_np.LOSSES[index]
        for key, value in DEFAULTS[loss].items():
            self.fields[key].setText(value)
        self.target.blockSignals(True)
        self.target.setPos(*START[loss])
        self.target.blockSignals(False)
        self.rerun()

    def _start_moved(self, *_: object) -> None:
        """A drag of the start: clamp it into the view, rerun (cheap enough for every move)."""
        if self.settings is None:
            return
        (x0, y0), (x1, y1) = VIEW[self.settings.loss]
        pos = self.target.pos()
        x, y = min(max(pos.x(), x0), x1), min(max(pos.y(), y0), y1)
        if (x, y) != (pos.x(), pos.y()):
            self.target.blockSignals(True)
            self.target.setPos(x, y)
            self.target.blockSignals(False)
        self.rerun()

    def _race_summary(self) -> str:
        r, s = self.result, self.settings
        gap = float(np.nanmax(np.abs(r["SGD+L2"].path - r["SGDW"].path))) if s.steps else 0.0
        same = ("SGD+L2, SGDW (lr·λ) and the paper's SGDW (λ_p = lr·λ) lie on top of each other: "
                f"max distance {gap:.1g}") if s.momentum == 0 else \
            f"μ = {s.momentum:g}: SGD+L2 carries λθ in its buffer and leaves SGDW (max distance {gap:.2g})"
        gone = [f"{n} diverged at step {t.diverged_at}" for n, t in r.items() if t.diverged_at >= 0]
        return "; ".join([same, *gone]) + ("" if not gone else " (lr too large for this curvature)")

    def _legend_name(self, name: str) -> str:
        return {"SGD+L2": "SGD+L2 ≡", "SGDW": "SGDW (lr·λ) ≡",
                "SGDW (paper)": "SGDW paper (λ_p = lr·λ)"}.get(name, name)

    def _draw_contours(self) -> None:
        s = self.settings
        key = (s.loss, self.theme.name)
        if key == self._contour_key:
            return
        self._contour_key = key
        lo, hi = VIEW[s.loss]
        xs, ys, z = race_np.contours(s.loss, lo, hi, 200)
        logz = np.log10(z + 1e-3)
        self.image.setImage(logz.T, autoLevels=False,
                            levels=(float(logz.min()), float(np.percentile(logz, 99))))
        cmap = pg.colormap.get(self.theme.colormap)
        lut = cmap.getLookupTable(0.0, 1.0, 256, alpha=False)
        fade = np.asarray(pg.mkColor(self.theme.background).getRgb()[:3], dtype=float)
        self.image.setLookupTable((lut * 0.22 + fade * 0.78).astype(np.uint8))  # faint: paths on top
        self.image.setRect(QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]))
        for iso, level in zip(self.isocurves, race_np.contour_levels(s.loss, z, LEVELS)):
            iso.setData(logz.T, level=float(np.log10(level + 1e-3)))
        self.minimum.setData([race_np.minimum(s.loss)[0]], [race_np.minimum(s.loss)[1]])
        self.contour_plot.setRange(xRange=(lo[0], hi[0]), yRange=(lo[1], hi[1]), padding=0)
        self.caption.setPos(lo[0] + 0.02 * (hi[0] - lo[0]), hi[1] - 0.02 * (hi[1] - lo[1]))

    def _draw_race(self) -> None:
        s, r = self.settings, self.result
        if s is None:
            return
        k = self.shown
        xs, ys = [], []
        for n in SHOWN:
            p = r[n].path[: k + 1]
            self.paths[n].setData(p[:, 0], p[:, 1], connect="finite")
            head = p[np.isfinite(p).all(axis=1)][-1]
            xs.append(head[0])
            ys.append(head[1])
        cols = self._colours()
        self.heads.setData(xs, ys, brush=[color(cols[n]) for n in SHOWN], pen=pg.mkPen(self.theme.background))
        steps = np.arange(1, k + 1, dtype=float)
        rate_a = r["Adam+L2"].rate[:k]
        self.rates["Adam+L2 x"].setData(steps, rate_a[:, 0])
        self.rates["Adam+L2 y"].setData(steps, rate_a[:, 1])
        self.rates["AdamW"].setData(steps, r["AdamW"].rate[:k, 0])
        self.rates["SGD"].setData(steps, r["SGD+L2"].rate[:k, 0])
        self.rate_cursor.setPos(max(k, 1))
        for n in SHOWN:
            loss = r[n].loss[: k + 1]
            self.losses[n].setData(np.arange(k + 1, dtype=float), np.where(loss > 0, loss, np.nan),
                                   connect="finite")
        self.rate_plot.setXRange(0, max(s.steps, 1), padding=0.02)
        self.rate_plot.setYRange(*self._decades(), padding=0)
        t = self.theme
        if k:
            ratio = rate_a[k - 1, 1] / rate_a[k - 1, 0] if rate_a[k - 1, 0] > 0 else float("nan")
            text = (f"step {k}: Adam+L2 decays y {ratio:.2g}× as much as x;\n"
                    f"AdamW and SGD {s.lr * s.lam:.2g} of θ on both")
        else:
            text = "step 0"
        self.caption.setText(text)
        set_title(self.rate_plot, "decay per step (fraction of θ)", t, t.font_pt)
        set_title(self.loss_plot, "loss along the way", t, t.font_pt)
        set_title(self.contour_plot, f"{self.loss_combo.currentText()}: lr {s.lr:g}, λ {s.lam:g}, "
                  f"β ({s.betas[0]:g}, {s.betas[1]:g})", t, t.font_pt)

    def _decades(self) -> tuple[float, float]:
        """The rate plot's log₁₀ range, whole decades around the whole race (so the ticks are decades
        and the range does not jump during a replay)."""
        r = self.result
        vals = np.concatenate([r["Adam+L2"].rate.ravel(), r["AdamW"].rate[:, 0], r["SGD+L2"].rate[:, 0]])
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if not len(vals):
            return -6.0, 0.0
        lo, hi = math.floor(math.log10(vals.min())), math.ceil(math.log10(vals.max()))
        return float(lo), float(max(hi, lo + 1))

    def _colours(self) -> dict[str, str]:
        return SLIDE_COLOURS if self.theme.name == "slide" else COLOURS

    # ------------------------------------------------------------------------ the live runs
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        self._runs = [(n, h, slot) for n, h, slot in runs][:MAX_RUNS]  # type: ignore[misc]
        self._selected = selected

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        self._run_snaps = dict(snapshots)

    def runs_shown(self) -> list[tuple[str, History, Snapshot | None, int]]:
        """(name, history, newest snapshot, colour slot) per run: every run in Compare mode, else the
        selected one (its snapshot is the panel's own)."""
        if len(self._runs) > 1:
            return [(n, h, self._run_snaps.get(n), slot) for n, h, slot in self._runs]
        return [(self._selected if self._runs else "A", self.history, self.snapshot, 0)]

    def histogram_of(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(edges, counts) of run `name`'s effective-decay histogram as drawn, or None."""
        for n, _h, snap, _slot in self.runs_shown():
            if n == name:
                o = self._opt_state(snap)
                return None if o is None or o.note else (o.edges, o.counts)
        return None

    @staticmethod
    def _opt_state(snap: Snapshot | None):
        if snap is None or "optstate" not in snap.measured:
            return None
        return snap.opt_state

    def redraw(self) -> None:
        rows = self.runs_shown()
        key = (self.theme.name, tuple((n, id(h), len(h), id(s), slot) for n, h, s, slot in rows))
        if key == self._drawn:
            return
        self._drawn = key
        self._draw_model(rows)

    def _draw_model(self, rows: list) -> None:
        t = self.theme
        states = [(n, self._opt_state(s), slot) for n, _h, s, slot in rows]
        have = [(n, o, slot) for n, o, slot in states if o is not None and not o.note]
        self.hist_legend.clear()
        for i, item in enumerate(self.hists):
            if i < len(have):
                n, o, slot = have[i]
                c = run_color(slot, t.name)
                share = o.counts / max(o.counts.sum(), 1.0)
                item.setData(o.edges, share, stepMode="center", fillLevel=0,
                             pen=pg.mkPen(c, width=t.line_width), brush=color(c, 110))
                self.hist_legend.addItem(item, n if n == o.rule else f"{n}: {o.rule}")
                item.setVisible(True)
            else:
                item.setData([], [])
                item.setVisible(False)
        compare = len(rows) > 1
        self._draw_other_rule(None if compare or not have else have[0])
        rules = {o.rule for _n, o, _s in have}
        if not have:
            note = next((o.note for _n, o, _s in states if o is not None and o.note), "")
            self.hint.setText(note or ("Train (Space) to see the decay\neach weight receives"
                                       if compare or rows[0][2] is not None else "press Space to train"))
        elif not (compare and {"Adam+L2", "AdamW"} <= rules):
            self.hint.setText("For the comparison press\n“Compare Adam+L2 vs AdamW”")
        else:
            self.hint.setText("")
        self.hint.setVisible(bool(self.hint.toPlainText()))
        top = max([1e-3] + [float((o.counts / max(o.counts.sum(), 1)).max()) for _n, o, _s in have]) * 1.08
        self.hint.setPos(-4.5, top / 2)
        self.hist_plot.setRange(xRange=(-10, 1), yRange=(0, top), padding=0)
        set_title(self.hist_plot, "effective decay per step, per weight", t, t.font_pt)
        set_axis_label(self.hist_plot, "bottom", "log₁₀ (fraction of θ removed per step)", t)
        set_axis_label(self.hist_plot, "left", "share of weights", t)
        # per-layer norms and val loss, from each run's History
        for r, row in enumerate(self.norm_curves):
            h = rows[r][1] if r < len(rows) else None
            norms = h.layer_norm_series() if h is not None and len(h) else np.zeros((0, 0))
            steps = h.series("step") if h is not None and len(h) else np.zeros(0)
            c = run_color(rows[r][3], t.name) if r < len(rows) else t.foreground
            for li, item in enumerate(row):
                if li < norms.shape[1]:
                    item.setData(steps, norms[:, li], pen=pg.mkPen(c, width=max(1.0, t.line_width * 0.75),
                                                                   style=LAYER_STYLES[li]))
                else:
                    item.setData([], [])
        for r, item in enumerate(self.val_curves):
            h = rows[r][1] if r < len(rows) else None
            if h is not None and len(h):
                c = run_color(rows[r][3], t.name)
                val = np.asarray(h.series("val_loss"))
                ok = np.isfinite(val)
                # filled to 0 (translucent, each run's own colour): where the runs differ stays readable
                item.setData(h.series("step")[ok], val[ok], pen=pg.mkPen(c, width=t.line_width),
                             fillLevel=0.0, brush=color(c, 45 if len(rows) > 1 else 70))
            else:
                item.setData([], [])
        for plot in (self.norm_plot, self.val_plot):  # fixed ranges before any point, not ±0.4
            show_empty(plot, not any(len(h) for _n, h, _s, _slot in rows), hint="", theme=t)
        set_title(self.norm_plot, "‖W‖ per layer (solid, dashed, dotted: in → out)", t, t.font_pt)
        set_title(self.val_plot, "validation loss", t, t.font_pt)
        set_axis_label(self.norm_plot, "bottom", "step", t)
        set_axis_label(self.val_plot, "bottom", "step", t)
        self.readout.setText(self._readout_html(have))

    def _draw_other_rule(self, run: tuple | None) -> None:
        """For one run alone: what the other rule would do with the same state (see OptState)."""
        t = self.theme
        o = None if run is None else run[1]
        l2 = o is not None and o.uniform and o.counts_l2 is not None and o.counts_l2.sum() > 0
        if l2:
            c = mix(t.foreground, t.background, 0.25)
            self.other_hist.setData(o.edges, o.counts_l2 / max(o.counts_l2.sum(), 1.0), stepMode="center",
                                    pen=pg.mkPen(c, width=max(1.0, t.line_width * 0.75),
                                                 style=Qt.PenStyle.DashLine))
            self.hist_legend.addItem(self.other_hist, "L2 on these v̂: η_t·λ/(√v̂+ε)")
        else:
            self.other_hist.setData([], [])
        line = o is not None and not o.uniform and o.decoupled_rate > 0
        self.other_line.setVisible(line)
        if line:
            self.other_line.setPos(math.log10(o.decoupled_rate))
            pen = pg.mkPen(mix(t.foreground, t.background, 0.25), width=t.line_width,
                           style=Qt.PenStyle.DashLine)
            self.other_line.setPen(pen)
            self.other_line_key.setPen(pen)
            self.hist_legend.addItem(self.other_line_key, "AdamW at this λ: η_t·λ")

    def _readout_html(self, have: list) -> str:
        if not have:
            return ("Parameters with large gradients get less decay under Adam+L2: measured here as the "
                    "mean decay of the top-√v̂ decile ÷ the bottom decile's, once the runs have trained.")
        parts = []
        for n, o, slot in have:
            c = run_color(slot, self.theme.name)
            if o.uniform:
                what = f"uniform {o.mean:.2g} per step"
            else:
                what = (f"median {np.nanmedian(o.layer_median):.2g}; top-√v̂ decile gets "
                        f"{o.decile_ratio:.2g}× the bottom decile's; corr(log decay, log √v̂) {o.corr:+.2f}")
            parts.append(f"<b style='color:{c}'>{n}</b> ({o.rule}, step {o.step}): {what}")
        return " · ".join(parts)

    def setup_comparison(self) -> None:
        """Ask the window for the presets adam_l2 and adamw as a lockstep comparison."""
        self.request.emit("compare", {"runs": {"Adam+L2": "adam_l2", "AdamW": "adamw"}})

    # ------------------------------------------------------------------------ contract
    def reset(self) -> None:
        super().reset()
        self._run_snaps = {}
        self._drawn = None

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.message, self.readout):
            style_text(w, theme)
        cols = SLIDE_COLOURS if theme.name == "slide" else COLOURS
        for view in (self.race_view, self.model_view):
            view.setBackground(theme.background)
        for plot in (self.contour_plot, self.rate_plot, self.loss_plot, self.hist_plot, self.norm_plot,
                     self.val_plot):
            style_plot_item(plot, theme)
            plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)
        for legend in (self.race_legend, self.rate_legend, self.hist_legend):
            style_legend(legend, theme)
        w = theme.line_width
        for n, item in self.paths.items():
            dash = Qt.PenStyle.DashLine if n == "SGDW" else Qt.PenStyle.SolidLine
            item.setPen(pg.mkPen(cols[n], width=w * WIDTH[n], style=dash))
        for n, item in self.losses.items():
            item.setPen(pg.mkPen(cols[n], width=max(1.0, w * 0.6 * WIDTH[n])))
        self.rates["Adam+L2 x"].setPen(pg.mkPen(cols["Adam+L2"], width=w))
        self.rates["Adam+L2 y"].setPen(pg.mkPen(cols["Adam+L2"], width=w, style=Qt.PenStyle.DashLine))
        self.rates["AdamW"].setPen(pg.mkPen(cols["AdamW"], width=w))
        self.rates["SGD"].setPen(pg.mkPen(cols["SGD+L2"], width=w, style=Qt.PenStyle.DotLine))
        self.rate_cursor.setPen(pg.mkPen(mix(theme.foreground, theme.background, 0.5), width=1))
        for iso in self.isocurves:
            iso.setPen(pg.mkPen(mix(theme.foreground, theme.background, 0.55), width=1))
        self.minimum.setBrush(color(theme.accent))
        self.minimum.setPen(pg.mkPen(theme.background))
        self.target.setPen(pg.mkPen(theme.foreground, width=2))
        font = self.font()
        font.setPointSize(theme.font_pt)
        for item in (self.caption, self.hint):
            item.setColor(mix(theme.foreground, theme.background, 0.2))
            item.setFont(font)
        set_axis_label(self.rate_plot, "left", "lr·λ/(√v̂+ε) or lr·λ", theme)
        set_axis_label(self.loss_plot, "bottom", "step", theme)
        self._fix_left_axes(theme)
        self._contour_key = None
        self._drawn = None
        if self.settings is not None:
            self._draw_contours()
            self._draw_race()
        self.redraw()

    def _fix_left_axes(self, theme: Theme) -> None:
        """Fixed widths for the left axes (ui.panels.style.fix_axis_width): the rate and loss plots
        stay aligned and the layout the same after a slide export."""
        for plot in (self.rate_plot, self.loss_plot):
            fix_axis_width(plot, theme, "10⁻¹⁰")
        fix_axis_width(self.contour_plot, theme, "−0.00")  # the contours' ticks: -1.5 … 2.5

    def hideEvent(self, event) -> None:  # noqa: N802
        """Off screen the replay jumps to its end: no timer runs for a hidden panel."""
        self._timer.stop()
        if self.settings is not None and self.shown < self.settings.steps:
            self.shown = self.settings.steps
            self._draw_race()
        super().hideEvent(event)

    def cleanup(self) -> None:
        self._closed = True
        self._timer.stop()
