"""Compression over time: the weight histogram on a fixed axis, replayed over the run's history.

The seed's picture of weight decay — "the histogram compressing toward zero" — as an animation. The
History keeps a frame of every measured snapshot (regsim.compression.FrameRing: the fixed-axis counts,
‖W_l‖, the lr and the settings; at most 256 frames, thinned evenly). A scrub slider and Play (P) walk
through them on an axis that never moves, so a shrink reads as a shrink and not as a rescale.

Decoupled decay multiplies every decayed weight by f = 1 − lr·λ per step (PyTorch's AdamW; the
paper's mode uses 1 − η_t·λ, η_t the schedule multiplier), so with no gradient pushing back
‖W_t‖ = Π_s f_s·‖W_0‖ = (1 − lr·λ)^t·‖W_0‖ and the half-life is ln 2 / −ln f ≈ ln 2 /(lr·λ) steps. The
norm plot draws the measured ‖W‖ and that decay-alone curve; the gap between them is what the data
gradient pushes back. With Adam + L2 there is no single factor (λθ is divided by √v̂): the panel
says so instead of drawing one.

Compare mode: every run's histogram of the chosen layer in its run colour at the same step
(lockstep: each run's last frame at or before the selected run's frame), the selected run filled,
and every run's ‖W‖ curve. "Add λ = 0 run" asks the window for a fresh run with the selected run's
settings and λ = 0, which shares its initial weights and batches and catches up to its step.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from regsim.compression import Frame, FrameRing
from regsim.snapshot import History
from ui.panels.base import Panel
from ui.panels.style import color, fill_background, show_empty, style_plot, style_text
from ui.run_colors import run_color
from ui.theme import Theme

MAX_RUNS_SHOWN = 4  # a comparison holds at most 4 runs (regsim.runs.MAX_RUNS)
PLAY_MS = 40  # one animation frame every 40 ms (25 fps)
PLAY_SECONDS = 8.0  # Play walks through the whole history in about this long
MAX_FRAME_MS = 150  # a short history plays slower than PLAY_SECONDS, never slower than this
GREY = "#9a9a9a"

HIST_TIP = ("Fraction of the layer's weights in each bin, on the run's fixed axis (locked when the "
            "run started,\nwidened only if a weight outgrows it), at the frame the slider shows.\n"
            "Decoupled decay: θ ← (1 − lr·λ)·θ − (gradient step) every step, so without a gradient\n"
            "the whole histogram is squeezed toward 0 by (1 − lr·λ)ᵗ after t steps.\n"
            "Grey: the first frame (step 0), to see how far it has come.")
NORM_TIP = ("‖W‖ = √(Σ_l ‖W_l‖²) over the weight matrices, per frame.\n"
            "Dotted: decay alone, ‖W₀‖·Π_s f_s with f_s = 1 − lr_s·λ (PyTorch) or 1 − η_s·λ (paper):\n"
            "(1 − lr·λ)ᵗ·‖W₀‖ at a constant lr. The gap is what the data gradient pushes back.\n"
            "The vertical line is the frame shown.")
READOUT_TIP = ("Per step: decoupled (AdamW, SGDW) θ ← (1 − lr·λ)θ; paper mode θ ← (1 − η_t·λ)θ;\n"
               "SGD + L2 θ ← θ − lr(g + λθ) = (1 − lr·λ)θ − lr·g, the same factor;\n"
               "SGD + momentum + L2: λθ rides in the velocity, ≈ (1 − lr·λ/(1 − μ)) per step;\n"
               "Adam + L2: λθ is divided by √v̂, every weight its own rate: no single factor.\n"
               "Half-life = ln 2 / −ln f steps ≈ ln 2 /(lr·λ).")


class CompressionPanel(Panel):
    """The fixed-axis weight histogram over the run's history, with (1 − ηλ), half-life and ‖W‖."""

    key = "compression"
    title = "Compression over time"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._key: tuple | None = None
        self._runs: list[tuple[str, History, int]] = []
        self._selected = ""
        self._step: int | None = None  # the frame shown, by step; None = follow the newest
        self._choice: int | None = None  # the layer chosen; None: the largest (the least noisy)

        self.layer_label = QLabel("layer")
        self.layer_label.setProperty("export_hidden", True)
        self.layer_box = QComboBox()
        self.layer_box.setMinimumContentsLength(6)
        self.layer_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_box.setToolTip("The weight matrix whose histogram is replayed")
        self.layer_box.setProperty("export_hidden", True)
        self.layer_box.currentIndexChanged.connect(lambda _i: self._force())
        self.play_btn = QPushButton("Play")
        self.play_btn.setCheckable(True)
        self.play_btn.setToolTip("Play the run's history from the start (P); press again to pause")
        self.play_btn.setProperty("export_hidden", True)
        self.play_btn.toggled.connect(self._on_play)
        self.play_action = QAction("Play / pause the compression history", self)
        self.play_action.setShortcut(QKeySequence("P"))
        self.play_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.play_action.triggered.connect(self.toggle_play)
        self.addAction(self.play_action)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub through the run's frames (the right end follows training)")
        self.slider.setProperty("export_hidden", True)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self._on_slider)
        self.frame_label = QLabel("")
        self.add_zero_btn = QPushButton("Add λ = 0 run")
        self.add_zero_btn.setToolTip("A fresh run with these settings but λ = 0: the same initial "
                                     "weights, data and batches (lockstep),\ntrained up to this "
                                     "run's step, so its histogram plays beside this one.\n"
                                     "(Settings changed during this run are not replayed.)")
        self.add_zero_btn.setProperty("export_hidden", True)
        self.add_zero_btn.clicked.connect(self._add_zero_run)
        self.timer = QTimer(self)
        self.timer.setInterval(PLAY_MS)
        self.timer.timeout.connect(self._tick)

        self.hist_widget = pg.PlotWidget()
        self.hist_plot = self.hist_widget.getPlotItem()
        self.hist_plot.setMouseEnabled(x=False, y=False)
        self.first = pg.PlotDataItem(stepMode="center", antialias=True)
        self.hist_plot.addItem(self.first)
        self.hists: list[pg.PlotDataItem] = []
        for _ in range(MAX_RUNS_SHOWN):
            item = pg.PlotDataItem(stepMode="center", antialias=True)
            self.hist_plot.addItem(item)
            self.hists.append(item)
        self.hist_widget.setToolTip(HIST_TIP)

        self.norm_widget = pg.PlotWidget()
        self.norm_plot = self.norm_widget.getPlotItem()
        self.norms: list[pg.PlotDataItem] = []
        for _ in range(MAX_RUNS_SHOWN):
            item = pg.PlotDataItem(antialias=True)
            self.norm_plot.addItem(item)
            self.norms.append(item)
        self.predicted = pg.PlotDataItem(antialias=True)
        self.norm_plot.addItem(self.predicted)
        self.cursor = pg.InfiniteLine(angle=90, movable=False)
        self.norm_plot.addItem(self.cursor, ignoreBounds=True)
        self.norm_widget.setToolTip(NORM_TIP)

        self.readout = QLabel("")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setWordWrap(True)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.readout.setToolTip(READOUT_TIP)

        top = QHBoxLayout()
        top.addWidget(self.layer_label)
        top.addWidget(self.layer_box)
        top.addWidget(self.play_btn)
        top.addWidget(self.slider, 1)
        top.addWidget(self.frame_label)
        top.addWidget(self.add_zero_btn)
        grid = QGridLayout(self)
        grid.addLayout(top, 0, 0, 1, 2)
        grid.addWidget(self.hist_widget, 1, 0)
        grid.addWidget(self.norm_widget, 1, 1)
        grid.addWidget(self.readout, 2, 0, 1, 2)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setRowStretch(1, 1)
        self.apply_theme(self.theme)

    # ------------------------------------------------------------------------------ the runs
    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window): (name, History, colour slot) per run."""
        self._runs = [(n, h, slot) for n, h, slot in list(runs)[:MAX_RUNS_SHOWN]
                      if isinstance(h, History)]
        self._selected = selected

    def shown_runs(self) -> list[tuple[str, FrameRing, int]]:
        """(name, frames, slot): the selected run first, then the other runs that have frames."""
        runs = [(n, h.frames, slot) for n, h, slot in self._runs if len(h.frames)]
        if len(runs) < 2:
            return [(self._selected or "A", self.history.frames, 0)]
        runs.sort(key=lambda r: r[0] != self._selected)
        return runs

    def ring(self) -> FrameRing:
        return self.history.frames

    def frame_index(self) -> int:
        ring = self.ring()
        if not len(ring):
            return -1
        return len(ring) - 1 if self._step is None else ring.index_at(self._step)

    # ------------------------------------------------------------------------------ scrub / play
    def _on_slider(self, value: int) -> None:
        ring = self.ring()
        if not len(ring):
            return
        self._step = None if value >= len(ring) - 1 and not self.timer.isActive() \
            else int(ring.frames[value].step)
        self._draw()

    def show_frame(self, index: int) -> None:
        """Show frame `index` of the selected run (the last one follows training)."""
        ring = self.ring()
        if not len(ring):
            return
        index = max(0, min(int(index), len(ring) - 1))
        self._step = None if index == len(ring) - 1 else int(ring.frames[index].step)
        self._force()

    def toggle_play(self) -> None:
        self.play_btn.setChecked(not self.play_btn.isChecked())

    def _on_play(self, on: bool) -> None:
        if on and len(self.ring()) > 1:
            if self._step is None:  # at the end: play from the start
                self._step = int(self.ring().frames[0].step)
            self.play_btn.setText("Pause")
            # About PLAY_SECONDS for the whole history, but no frame shorter than PLAY_MS nor
            # longer than MAX_FRAME_MS: 36 frames at 40 ms flashed by in 1.4 s (seen on screen).
            n = len(self.ring())
            self.timer.setInterval(int(max(PLAY_MS, min(MAX_FRAME_MS, PLAY_SECONDS * 1000 / n))))
            self.timer.start()
        else:
            self.timer.stop()
            self.play_btn.blockSignals(True)
            self.play_btn.setChecked(False)
            self.play_btn.blockSignals(False)
            self.play_btn.setText("Play")
        self._force()

    def _tick(self) -> None:
        ring = self.ring()
        n = len(ring)
        i = self.frame_index()
        if n < 2 or i >= n - 1:
            self._step = None
            self._on_play(False)
            return
        advance = max(1, round(n * self.timer.interval() / 1000 / PLAY_SECONDS))
        j = min(n - 1, i + advance)
        self._step = int(ring.frames[j].step)
        self._force()

    def _add_zero_run(self) -> None:
        self.request.emit("add_run", {"changes": {"weight_decay": 0.0}})
        self.status_message.emit("Adding a λ = 0 run beside this one (it catches up while training)")

    # ------------------------------------------------------------------------------ drawing
    def _force(self) -> None:
        self._key = None
        self._draw()

    def reset(self) -> None:
        super().reset()
        self._step = None
        self._on_play(False)

    def redraw(self) -> None:
        self._draw()

    def _draw(self) -> None:
        runs = self.shown_runs()
        key = (tuple((n, id(r), r.revision, slot) for n, r, slot in runs), self._step,
               self.layer_box.currentIndex(), id(self.theme), self.timer.isActive())
        if key == self._key:
            return
        self._key = key
        ring = self.ring()
        empty = not len(ring)
        hint = "press Space to train: every snapshot's histogram becomes a frame"
        show_empty(self.hist_plot, empty, x=(-1.0, 1.0), y=(0.0, 1.0), hint=hint, theme=self.theme)
        show_empty(self.norm_plot, empty, y=(0.0, 1.0), hint="", theme=self.theme)
        self._sync_layers(ring)
        several = len(runs) > 1
        sel = ring.frames[-1].hparams if len(ring) else None
        self.add_zero_btn.setVisible(sel is not None and sel.weight_decay > 0 and not any(
            r.frames[-1].hparams.weight_decay == 0 for _n, r, _s in runs if len(r)))
        if empty:
            for item in [self.first, self.predicted, *self.hists, *self.norms]:
                item.setData([], [])
            self.cursor.setVisible(False)
            self.slider.blockSignals(True)
            self.slider.setRange(0, 0)
            self.slider.blockSignals(False)
            self.slider.setEnabled(False)
            self.frame_label.setText("no frames yet")
            self.readout.setText("The histogram of every measured snapshot is kept as a frame "
                                 "(press Space to train), then scrub or Play (P).")
            return
        layer = max(0, min(self.layer_box.currentIndex(), ring.frames[-1].counts.shape[0] - 1))
        i = self.frame_index()
        self.slider.setEnabled(len(ring) > 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(ring) - 1)
        self.slider.setValue(i)
        self.slider.blockSignals(False)
        cur = ring.frames[i]
        live = self._step is None
        self.frame_label.setText(f"step {cur.step:,}" + (" (live)" if live else
                                                           f" · frame {i + 1}/{len(ring)}")
                                 + " · grey: step 0")
        # The frame of every run at the selected run's step: lockstep.
        shown = [(n, r, slot, r.frames[r.index_at(cur.step)]) for n, r, slot in runs]
        self._draw_histograms(shown, ring, layer, several)
        self._draw_norms(shown, ring, cur, several)
        self.readout.setText(self._readout(shown, ring, i))

    def _sync_layers(self, ring: FrameRing) -> None:
        n = ring.frames[-1].counts.shape[0] if len(ring) else 0
        snap = self.snapshot
        names = tuple(snap.layer_names[:n]) if snap is not None and len(snap.layer_names) >= n \
            else tuple(f"layer {k + 1}" for k in range(n))
        have = tuple(self.layer_box.itemText(k) for k in range(self.layer_box.count()))
        if have != names:
            if self.layer_box.count():
                self._choice = self.layer_box.currentIndex()
            self.layer_box.blockSignals(True)
            self.layer_box.clear()
            self.layer_box.addItems(list(names))
            if names:
                # By default the layer with the most weights: on moons 2-64-64-2, fc1 has 128 and
                # its histogram is mostly noise; fc2's 4096 show the shape.
                choice = self._choice if self._choice is not None \
                    else int(np.argmax(ring.frames[-1].counts.sum(axis=1)))
                self.layer_box.setCurrentIndex(max(0, min(choice, len(names) - 1)))
            self.layer_box.blockSignals(False)

    def _draw_histograms(self, shown, ring: FrameRing, layer: int, several: bool) -> None:
        t = self.theme
        lo, hi = ring.axis(layer)
        top = 0.0
        for _n, r, _slot, _f in shown:
            for f in r.frames:
                if layer < f.counts.shape[0]:
                    c = f.counts[layer]
                    top = max(top, float(c.max()) / max(1, int(c.sum())))
            a, b = r.axis(layer)
            lo, hi = min(lo, a), max(hi, b)
        first = ring.frames[0]
        self.first.setData(*_fractions(first, layer))
        for k, item in enumerate(self.hists):
            if k >= len(shown) or layer >= shown[k][3].counts.shape[0]:
                item.setVisible(False)
                item.setData([], [])
                continue
            name, _r, slot, f = shown[k]
            c = run_color(slot, t.name) if several else t.train
            selected = k == 0
            item.setPen(pg.mkPen(c, width=t.line_width * (1.25 if selected else 1.0)))
            item.setFillLevel(0 if selected else None)
            item.setBrush(pg.mkBrush(color(c, 90)) if selected else None)
            item.setZValue(1 if selected else 2)
            item.setData(*_fractions(f, layer))
            item.setVisible(True)
        # A fixed axis: the widest range any frame had, the tallest bar of any frame.
        self.hist_plot.setRange(xRange=(lo, hi), yRange=(0.0, max(top, 1e-3) * 1.05), padding=0)
        name = self.layer_box.currentText() or "a layer"
        style_plot(self.hist_widget, t, f"{name} over time, fixed axis", "fraction of weights",
                   "weight value")

    def _draw_norms(self, shown, ring: FrameRing, cur: Frame, several: bool) -> None:
        t = self.theme
        for k, item in enumerate(self.norms):
            if k >= len(shown):
                item.setVisible(False)
                item.setData([], [])
                continue
            _name, r, slot, _f = shown[k]
            c = run_color(slot, t.name) if several else t.train
            item.setPen(pg.mkPen(c, width=t.line_width * (1.25 if k == 0 else 1.0)))
            item.setData(r.steps().astype(np.float64), [f.total_norm for f in r.frames])
            item.setVisible(True)
        base = ring.frames[0]
        pred = np.array([base.total_norm * ring.predicted_ratio(j) for j in range(len(ring))])
        if np.all(np.isfinite(pred)) and pred[-1] < base.total_norm:
            self.predicted.setData(ring.steps().astype(np.float64), pred)
        else:  # no decay, or no single factor (Adam + L2)
            self.predicted.setData([], [])
        self.cursor.setPos(cur.step)
        self.cursor.setVisible(True)

    def _readout(self, shown, ring: FrameRing, i: int) -> str:
        t = self.theme
        rows = []
        pad = f"style='padding-left:{t.font_pt}px'"
        notes = []
        for k, (name, r, slot, f) in enumerate(shown):
            s = f.shrink
            h = f.hparams
            c = run_color(slot, t.name) if len(shown) > 1 else t.foreground
            j = r.index_at(f.step)
            meas = r.measured_ratio(j)
            pred = r.predicted_ratio(j)
            if s.factor is None:
                factor, half = "no single factor", "—"
                notes.append(f"{name}: {s.note}")
            else:
                factor = f"{s.formula} = {s.factor:.6f}"
                hl = s.half_life
                half = "∞" if hl == math.inf else (f"{hl:,.0f} steps" if math.isfinite(hl) else "—")
                if not s.exact:
                    notes.append(f"{name}: {s.note}")
            alone = f"×{pred:.3f}" if math.isfinite(pred) else "—"
            # A run added later catches up: say where its frame is when it is not at the step shown.
            at = "" if k == 0 or f.step == shown[0][3].step else f" @{f.step:,}"
            rows.append(f"<tr><td nowrap><span style='color:{c}'><b>{name}</b></span>{at}</td>"
                        f"<td nowrap {pad}>λ {h.weight_decay:g} ({h.decay_mode})</td>"
                        f"<td nowrap {pad}>{factor}</td><td nowrap {pad}>{half}</td>"
                        f"<td nowrap align='right' {pad}>{f.total_norm:.3f}</td>"
                        f"<td nowrap align='right' {pad}>×{meas:.3f}</td>"
                        f"<td nowrap align='right' {pad}>{alone}</td></tr>")
            if k == 0 and len(r) and r.thinned:
                notes.append(f"{len(r)} frames kept of a longer history (thinned {r.thinned}×, "
                             "evenly; the newest is always the last)")
        head = (f"<tr><th align='left'>run</th><th align='left' {pad}>decay</th>"
                f"<th nowrap align='left' {pad}>per step</th><th nowrap align='left' {pad}>half-life</th>"
                f"<th nowrap align='right' {pad}>‖W‖ here</th><th nowrap align='right' {pad}>"
                f"÷ ‖W₀‖</th><th nowrap align='right' {pad}>decay alone</th></tr>")
        table = f"<table cellspacing='0' cellpadding='2'>{head}{''.join(rows)}</table>"
        return table + "".join(f"<div>{n}</div>" for n in notes[:3])

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.layer_label, self.frame_label, self.readout):
            style_text(w, theme)
        for w in (self.layer_box, self.play_btn, self.add_zero_btn):
            w.setStyleSheet(f"font-size: {theme.font_pt}pt;")
        style_plot(self.hist_widget, theme, "Weights over time, fixed axis", "fraction of weights",
                   "weight value")
        style_plot(self.norm_widget, theme, "‖W‖ and decay alone", "‖W‖", "step")
        # Solid: a dash pattern on the narrow bins of step 0 read as scribbled text (seen on screen).
        self.first.setPen(pg.mkPen(color(GREY, 200), width=max(1.0, theme.line_width * 0.75)))
        self.predicted.setPen(pg.mkPen(GREY, width=theme.line_width, style=Qt.PenStyle.DotLine))
        self.cursor.setPen(pg.mkPen(color(theme.foreground, 120), width=1))
        self._force()

    def cleanup(self) -> None:
        """Stop the Play timer."""
        self.timer.stop()


def _fractions(frame: Frame, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges, fraction of the layer's weights per bin) of one frame."""
    counts = frame.counts[layer].astype(np.float64)
    return frame.edges[layer], counts / max(1.0, float(counts.sum()))
