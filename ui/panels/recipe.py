"""The recipe: the LLaMA recipe against the original Transformer's, in lockstep on the same data.

    LLaMA (Touvron et al. 2023):     AdamW λ = 0.1, β = (0.9, 0.95), warm-up + cosine to 10 %,
                                     clip ‖g‖ at 1.0, no dropout, no label smoothing
    original (Vaswani et al. 2017):  dropout 0.1 at the embedding, the attention weights and every
                                     sub-layer output, label smoothing 0.1

Left, each run's learning-rate schedule η_t over the whole run (regsim.recipe.lr_curve, the trainer's
lr_at) with the current step marked; middle, each run's train and validation accuracy on the same
step axis; right, what each recipe sets and how many steps its gradient clipping acted on
(‖g‖ > c, counted by the trainer on the device: Snapshot.clip_events). "Load both recipes" replaces
the runs by the two presets, both at step 0 with the same seed: the same data split and
initial weights.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from regsim.recipe import PRESETS, lr_curve, recipe_rows
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import fill_background, mix, set_title, style_plot_item, style_text
from ui.run_colors import run_color
from ui.theme import Theme

MAX_RUNS_SHOWN = 4
CURVE_POINTS = 400


class RecipePanel(Panel):
    key = "recipe"
    title = "The recipe"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._runs: list[tuple[str, History, int]] = []
        self._run_snaps: dict[str, Snapshot] = {}
        self._drawn: tuple | None = None
        self.load_button = QPushButton("Load both recipes")
        self.load_button.setToolTip(f"Replace the runs by {PRESETS[0]} and {PRESETS[1]}, both at "
                                    "step 0 on the same data (a lockstep comparison)")
        self.load_button.setProperty("export_hidden", True)
        self.load_button.clicked.connect(
            lambda: self.request.emit("runs", {"presets": {"LLaMA": PRESETS[0],
                                                           "original": PRESETS[1]}}))
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        self.hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.addWidget(self.load_button)
        top.addWidget(self.hint, 1)
        self.view = pg.GraphicsLayoutWidget()
        self.lr_plot = self.view.addPlot(row=0, col=0)
        self.acc_plot = self.view.addPlot(row=0, col=1)
        self.acc_plot.setXLink(self.lr_plot)
        for plot in (self.lr_plot, self.acc_plot):
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
        self.lr_curves = [pg.PlotDataItem() for _ in range(MAX_RUNS_SHOWN)]
        self.lr_now = [pg.ScatterPlotItem(size=12) for _ in range(MAX_RUNS_SHOWN)]
        self.now_line = pg.InfiniteLine(angle=90)
        self.train_curves = [pg.PlotDataItem() for _ in range(MAX_RUNS_SHOWN)]
        self.val_curves = [pg.PlotDataItem() for _ in range(MAX_RUNS_SHOWN)]
        for c, d in zip(self.lr_curves, self.lr_now):
            self.lr_plot.addItem(c)
            self.lr_plot.addItem(d)
        self.lr_plot.addItem(self.now_line)
        for tr, va in zip(self.train_curves, self.val_curves):
            self.acc_plot.addItem(tr)
            self.acc_plot.addItem(va)
        self.empty_text = pg.TextItem("", anchor=(0.5, 0.5))
        self.acc_plot.addItem(self.empty_text, ignoreBounds=True)
        self.table = QLabel("")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        self.table.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.table.setMinimumWidth(300)
        self.table.setMaximumWidth(420)
        self.table.setWordWrap(True)
        body = QHBoxLayout()
        body.addWidget(self.view, 1)
        body.addWidget(self.table)
        root = QVBoxLayout(self)
        root.addLayout(top)
        root.addLayout(body, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window, every tick): (name, History, colour slot) per run."""
        self._runs = [r for r in runs if isinstance(r[1], History)][:MAX_RUNS_SHOWN]

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        self._run_snaps = dict(snapshots)

    def redraw(self) -> None:
        runs = self._shown()
        key = (tuple((n, id(s), len(h), h.events_revision) for n, h, _slot, s in runs),
               self.theme.name, id(self.theme))
        if key == self._drawn:
            return
        self._drawn = key
        self._draw(runs)

    def reset(self) -> None:
        super().reset()
        self._drawn = None

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.hint, self.table):
            style_text(w, theme)
        self.view.setBackground(theme.background)
        style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
        for plot in (self.lr_plot, self.acc_plot):
            style_plot_item(plot, theme)
            plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)
            plot.setLabel("bottom", "step", **style)
        self.lr_plot.setLabel("left", "learning rate η_t", **style)
        self.acc_plot.setLabel("left", "accuracy", **style)
        self.now_line.setPen(pg.mkPen(mix(theme.foreground, theme.background, 0.4), width=1,
                                      style=Qt.PenStyle.DashLine))
        font = self.font()
        font.setPointSize(theme.font_pt)
        self.empty_text.setFont(font)
        self.empty_text.setColor(mix(theme.foreground, theme.background, 0.3))
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        """No timers or threads to stop."""

    # -------------------------------------------------------------------------------- drawing
    def _shown(self) -> list[tuple[str, History, int, Snapshot]]:
        """(name, history, colour slot, latest snapshot) per run: every run of a comparison, or the
        single run."""
        if len(self._runs) > 1:
            return [(n, h, slot, self._run_snaps[n]) for n, h, slot in self._runs
                    if n in self._run_snaps]
        if self.snapshot is None:
            return []
        return [("run", self.history, 0, self.snapshot)]

    def _draw(self, runs: list[tuple[str, History, int, Snapshot]]) -> None:
        t = self.theme
        for items in (self.lr_curves, self.train_curves, self.val_curves):
            for c in items:
                c.setData([], [])
        for d in self.lr_now:
            d.setData([], [])
        if not runs:
            self.empty_text.setText("Press Space to train, or\nLoad both recipes")
            self.empty_text.setVisible(True)
            self.acc_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            self.empty_text.setPos(0.5, 0.5)
            self.hint.setText("")
            self.table.setText("")
            set_title(self.lr_plot, "Learning-rate schedule", t, t.font_pt)
            set_title(self.acc_plot, "Train and validation accuracy", t, t.font_pt)
            self.now_line.setVisible(False)
            return
        self.empty_text.setVisible(False)
        step = max(s.step for *_r, s in runs)
        total = max(s.hparams.total_steps if s.hparams.schedule != "constant" else 0 for *_r, s in runs)
        end = max(total * 1.05, step * 1.1, 100)
        # At whole optimizer steps: η_t is one value per step, and between steps the warm-up formula
        # η·(t+1)/T_w overshot η by 5 % at t = T_w − 0.5 (seen on screen).
        xs = np.unique(np.round(np.linspace(0, end, CURVE_POINTS)))
        cells = []
        for i, (name, hist, slot, snap) in enumerate(runs):
            colour = run_color(slot, t.name)
            h = snap.hparams
            self.lr_curves[i].setData(xs, lr_curve(h, xs), pen=pg.mkPen(colour, width=t.line_width))
            self.lr_now[i].setData([snap.step], [float(lr_curve(h, np.array([snap.step]))[0])],
                                   brush=colour, pen=pg.mkPen(t.background))
            if len(hist):
                x = hist.series("step")
                self.train_curves[i].setData(x, hist.series("train_acc"), connect="finite",
                                             pen=pg.mkPen(colour, width=max(1.0, t.line_width / 2),
                                                          style=Qt.PenStyle.DashLine))
                self.val_curves[i].setData(x, hist.series("val_acc"), connect="finite",
                                           pen=pg.mkPen(colour, width=t.line_width))
            clip = (f"{snap.clip_events} of {snap.step} steps ({snap.clip_events / snap.step:.0%})"
                    if h.grad_clip and snap.step else "off" if not h.grad_clip else "no step yet")
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                           for k, v in [*recipe_rows(h), ("clip events", clip)])
            val = f"{snap.val_acc:.3f}" if np.isfinite(snap.val_acc) else "–"
            cells.append(f"<p><b style='color:{colour}'>{html.escape(name)}</b> · step "
                         f"{snap.step} · val acc {val}</p>"
                         f"<table cellspacing='0' cellpadding='1'>{rows}</table>")
        self.table.setText("".join(cells))
        self.now_line.setVisible(True)
        self.now_line.setValue(step)
        top = max(float(s.hparams.lr) for *_r, s in runs)
        self.lr_plot.setRange(xRange=(0, end), yRange=(0, top * 1.08), padding=0.02)
        self.acc_plot.setRange(yRange=(0, 1.02), padding=0)
        set_title(self.lr_plot, f"Learning-rate schedule · step {step}", t, t.font_pt)
        set_title(self.acc_plot, "Accuracy: validation (solid), train (dashed)", t, t.font_pt)
        if len(runs) < 2:
            self.hint.setText("Needs a comparison run: Load both recipes to train LLaMA's and the "
                              "original Transformer's side by side on the same data")
        else:
            self.hint.setText("")
