"""Grokking (Power et al. 2022): validation accuracy jumps long after the training set is fitted.

On a ∘ b mod p with half of the pairs for training, a network reaches 100 % train accuracy within
~50 steps at chance validation accuracy (1/p): it has memorised the table. With weight decay the
weights keep shrinking, θ ← (1 − ηλ)θ − η·m̂/(√v̂ + ε), and hundreds of steps later the network
moves to the low-norm solution that computes a ∘ b, and validation accuracy jumps to ~100 %. Without
decay nothing pulls it off the memorising solution (issue 13's measurement: λ = 0, val 0.000 at
step 1500). The time to grok scales roughly with 1/(lr·λ): lr·λ is the share of every weight that
AdamW removes per step (λ = 0.3 took ~2000 steps where λ = 1 took ~550).

The panel: train (solid) and validation (dashed) accuracy on a logarithmic step axis, where "fitted
at step 50, generalised at step 550" reads as two separate events; the weight norm below on the same
axis, ‖θ‖ = √(Σ_l ‖W_l‖²) over the weight matrices (History.weight_norm: for embed_mlp the (2p, H)
embedding table and the output matrix; biases not included, they add < 0.3 %); a "grokked at step
N" marker at the first measured step with validation accuracy ≥ GROK_THRESHOLD, and the val jump
(val from JUMP_START to GROK_THRESHOLD) shaded on both plots, so the norm during the jump is read
off directly. The readout states, from the drawn data, each run's largest fall of ‖θ‖ (from an
earlier peak to a later low, the max drawdown) and how much ‖θ‖ changed during the jump.

What the norm does here (measured, grokking preset, seeds 0 and 1, regsim.Trainer evaluated every
10–50 steps to 700, ‖θ‖ as drawn): it does NOT fall during the jump. λ = 1: ‖θ‖ rises to 74 at
step 50 (the table memorised), falls 8 % to its low ~68 at step ~200, just as val leaves chance (1 % at 150,
8–14 % at 200), then RISES again while val climbs to 95 % (68 → 74 by step 550–600; 77 at 700).
λ = 0: ‖θ‖ grows the whole time (103 at step 50, 128 at 700). What decay does to the norm is hold it
at ~0.6 × the λ = 0 run's (0.72 × at step 50, 0.62 × at 200, 0.60 × from 400 on). The embedding
table alone (52 → 58 during the jump) and all parameters (68.1 → 73.8) behave the same. The
"weight norm falls as it groks" of accounts with long runs (Power et al. 2022; Nanda et al. 2023's
clean-up phase) is therefore not claimed here: with lr·λ = 0.02 the fall comes first and is small.

Compare mode: every run's curves and marker in its colour; the button "add the
λ = 0 control" restarts the selected run beside a copy with λ = 0, both from step 0 in lockstep (the
same data, initial weights and batches: λ is the only difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from regsim.snapshot import History
from ui.panels.base import Panel
from ui.panels.style import color, fill_background, show_empty, style_plot, style_text
from ui.run_colors import run_color

GROK_THRESHOLD = 0.95  # "grokked": the first measured step with validation accuracy at least this
JUMP_START = 0.10  # the val jump runs from the first step with val ≥ this to the grokking step
MAX_RUNS_SHOWN = 4  # a comparison holds at most 4 runs (regsim.runs.MAX_RUNS)
EMPTY_HINT = "load the grokking preset (a + b mod 47) to see grokking"
TIP = ("Grokking: the network fits the training pairs first (train accuracy 100 %) at chance "
       "validation accuracy, then, with weight decay, generalises hundreds of steps later.\n"
       "AdamW: θ ← (1 − ηλ)θ − η·m̂/(√v̂ + ε): every step removes the share lr·λ of each weight; "
       "the grokking step scales roughly with 1/(lr·λ) (λ = 1: ~550 steps, λ = 0.3: ~2000, "
       "λ = 0: never).\n"
       "‖θ‖ = √Σ‖W‖² of the weight matrices. Measured on the preset: it does not fall during the "
       "jump (it dips ~8 % from its step-50 peak before val leaves chance, then rises ~9 % while "
       "val climbs); decay holds it at ~0.6 × the λ = 0 run's, whose norm grows throughout.")


def grok_step(steps: np.ndarray, val_acc: np.ndarray, threshold: float = GROK_THRESHOLD) -> int | None:
    """The first measured step with val_acc ≥ threshold (None if none yet)."""
    steps, val = np.asarray(steps), np.asarray(val_acc, dtype=np.float64)
    hit = np.nonzero(np.nan_to_num(val, nan=-1.0) >= threshold)[0]
    return int(steps[hit[0]]) if len(hit) else None


def fit_step(steps: np.ndarray, train_acc: np.ndarray, threshold: float = 0.99) -> int | None:
    """The first measured step with train_acc ≥ threshold: when the table was memorised."""
    return grok_step(steps, train_acc, threshold)


@dataclass(frozen=True)
class NormStory:
    """What the drawn ‖θ‖ curve did, for the readout (every value read off the curve itself)."""

    peak: float  # the start of the curve's largest fall (its max drawdown): ‖θ‖ at peak_step
    peak_step: int
    low: float  # the end of that fall (= peak, low_step = peak_step, if the curve never fell)
    low_step: int
    jump: tuple[int, int] | None  # (first step with val ≥ JUMP_START, grokking step), None if not grokked
    jump_norms: tuple[float, float] | None  # ‖θ‖ at those two steps

    @property
    def jump_change(self) -> float | None:
        """Relative change of ‖θ‖ over the jump: (‖θ‖_end − ‖θ‖_start) / ‖θ‖_start."""
        if self.jump_norms is None:
            return None
        a, b = self.jump_norms
        return (b - a) / a if a > 0 else None


def norm_story(steps: np.ndarray, val_acc: np.ndarray, norm: np.ndarray) -> NormStory | None:
    """The largest fall of one run's ‖θ‖ curve (max over i < j of ‖θ‖_i − ‖θ‖_j: from `peak` to
    `low`) and its change during the val jump (None if nothing finite was drawn)."""
    steps = np.asarray(steps)
    norm = np.asarray(norm, dtype=np.float64)
    ok = np.isfinite(norm)
    if not ok.any():
        return None
    s, n = steps[ok], norm[ok]
    va = np.asarray(val_acc, dtype=np.float64)[ok]
    run_max = np.maximum.accumulate(n)
    j = int(np.argmax(run_max - n))  # the deepest point below an earlier maximum
    i = int(np.argmax(n[:j + 1]))  # that maximum (the first, if it repeats)
    jump = norms = None
    g = grok_step(s, va)
    start = grok_step(s, va, JUMP_START)
    if g is not None and start is not None:
        jump = (start, g)
        norms = (float(n[s == start][0]), float(n[s == g][0]))
    return NormStory(float(n[i]), int(s[i]), float(n[j]), int(s[j]), jump, norms)


class _RunItems:
    """One run's curves and marker: created once, then setData."""

    def __init__(self, acc: pg.PlotItem, norm: pg.PlotItem) -> None:
        self.train = pg.PlotDataItem(antialias=True)
        self.val = pg.PlotDataItem(antialias=True)
        self.norm = pg.PlotDataItem(antialias=True)
        self.marker = pg.InfiniteLine(angle=90, movable=False,
                                      # the label left of the line: the grokking step sits near
                                      # the right edge, where a label right of it was cut off
                                      label="", labelOpts={"position": 0.12, "anchors": [(1, 1), (1, 1)]})
        acc.addItem(self.train)
        acc.addItem(self.val)
        acc.addItem(self.marker, ignoreBounds=True)
        norm.addItem(self.norm)
        self.step: int | None = None  # where the marker stands (None: hidden)
        self.show(False)

    def show(self, on: bool) -> None:
        for item in (self.train, self.val, self.norm):
            item.setVisible(on)
        if not on:
            self.marker.setVisible(False)
            self.step = None



class StepAxis(pg.AxisItem):
    """A log step axis labelled 1, 2, 5, 10, 20, 50, …: pyqtgraph's own log labels put a label on
    every minor tick once a decade is wide, "5·10¹ 6·10¹ 7·10¹ 8·10¹ 9·10¹ 10²" ran into each other
    (seen on screen at 1600 px). The other minor ticks keep their grid lines, unlabelled."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802, ANN001, ANN201 (pyqtgraph's API)
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        out = []
        for v in values:
            step = 10.0 ** v
            lead = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
            keep = min(abs(lead - m) for m in (1.0, 2.0, 5.0)) < 1e-6
            out.append(_step_text(step) if keep else "")
        return out


def _step_text(step: float) -> str:
    """20, 500, 2000; 10⁴ style beyond 10 000 (shorter than 20000)."""
    n = round(step)
    if n < 10_000:
        return str(n)
    k = math.floor(math.log10(n) + 1e-9)
    lead = round(n / 10 ** k)
    sup = str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{sup}" if lead == 1 else f"{lead}·10{sup}"

class GrokkingPanel(Panel):
    """Train/val accuracy and ‖θ‖ on a log step axis, with the "grokked at step N" marker."""

    key = "grokking"
    title = "Grokking"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._key: tuple | None = None
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(TIP)
        self.acc = self.view.addPlot(row=0, col=0, axisItems={"bottom": StepAxis("bottom")})
        self.norm_plot = self.view.addPlot(row=1, col=0, axisItems={"bottom": StepAxis("bottom")})
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 2)
        for plot in (self.acc, self.norm_plot):
            plot.setLogMode(x=True, y=False)
        self.norm_plot.setXLink(self.acc)
        self.acc.setYRange(0.0, 1.02, padding=0)
        self.acc.getViewBox().setLimits(yMin=-0.02, yMax=1.05)
        self.threshold_line = pg.InfiniteLine(pos=GROK_THRESHOLD, angle=0, movable=False)
        self.acc.addItem(self.threshold_line, ignoreBounds=True)
        # The val jump (JUMP_START → GROK_THRESHOLD) of the first run that grokked, on both plots.
        self.jump_regions = [pg.LinearRegionItem(movable=False) for _ in range(2)]
        for plot, region in zip((self.acc, self.norm_plot), self.jump_regions):
            region.setZValue(-10)
            plot.addItem(region, ignoreBounds=True)
            region.setVisible(False)
        self.items = [_RunItems(self.acc, self.norm_plot) for _ in range(MAX_RUNS_SHOWN)]
        self.readout = QLabel()
        self.readout.setWordWrap(True)
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setToolTip(TIP)
        self.control_button = QPushButton("add the λ = 0 control")
        self.control_button.setToolTip("Restart the selected run beside a copy with λ = 0, both "
                                       "from step 0 in lockstep (same data, weights, batches)")
        self.control_button.setProperty("export_hidden", True)
        self.control_button.clicked.connect(self._ask_control)
        self.preset_button = QPushButton("load the grokking preset")
        self.preset_button.setProperty("export_hidden", True)
        self.preset_button.clicked.connect(lambda: self.request.emit("preset", {"name": "grokking"}))
        self.hint = QLabel("λ slider (dock): the grokking step scales with 1/(lr·λ)")
        self.hint.setToolTip(TIP)
        top = QHBoxLayout()
        top.addWidget(self.hint, 1)
        top.addWidget(self.preset_button)
        top.addWidget(self.control_button)
        root = QVBoxLayout(self)
        root.addLayout(top)
        root.addWidget(self.view, 1)
        root.addWidget(self.readout)
        self.apply_theme(self.theme)

    # ------------------------------------------------------------------------------ compare mode
    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window): (name, History, colour slot) per run."""
        self._runs = list(runs)[:MAX_RUNS_SHOWN]
        self._selected = selected

    def _ask_control(self) -> None:
        self.request.emit("control", {"changes": {"weight_decay": 0.0}})

    # ------------------------------------------------------------------------------ drawing
    def _shown(self) -> list[tuple[str, History, int]]:
        """The runs to draw: every run in Compare mode, else the window's history alone."""
        if len(self._runs) > 1:
            return [(n, h, slot) for n, h, slot in self._runs]  # type: ignore[misc]
        return [(self._selected or "A", self.history, -1)]

    def _is_modular(self) -> bool:
        snap = self.snapshot
        return snap is not None and snap.hparams.dataset == "modular"

    def redraw(self) -> None:
        runs = self._shown()
        # The dataset is in the key: the first snapshot of a restored modular run arrives with an
        # empty History, and the hint must turn from "load the preset" into "press Space".
        key = (self.data_key(), self._selected, self._is_modular(),
               tuple((n, slot, id(h), len(h)) for n, h, slot in runs))
        if key == self._key:
            return
        self._key = key
        modular = self._is_modular()
        # Any classification run is drawn (its accuracies on the log axis); only modular data
        # groks, which the readout says with the preset button beside it.
        have = self.snapshot is not None and any(
            len(h) and np.any(h.series("step") > 0) and np.any(np.isfinite(h.series("val_acc")))
            for _n, h, _s in runs)
        self.preset_button.setVisible(not modular)
        self.control_button.setVisible(modular and len(self._runs) <= 1)
        hint = EMPTY_HINT if not modular else "press Space to train"
        for plot in (self.acc, self.norm_plot):
            show_empty(plot, not have, x=(0.0, 3.0), y=(0.0, 1.0), theme=self.theme,
                       hint=hint if plot is self.acc else "")
        if not have:
            for it in self.items:
                it.show(False)
            for region in self.jump_regions:
                region.setVisible(False)
            self.readout.setText("" if modular else "This panel needs the modular-arithmetic "
                                 "dataset (dataset = modular): load the grokking preset.")
            return
        lines = []
        stories: list[tuple[str, int, NormStory | None, float]] = []
        t = self.theme
        for i, it in enumerate(self.items):
            if i >= len(runs):
                it.show(False)
                continue
            name, h, slot = runs[i]
            steps = np.asarray(h.series("step"))
            keep = steps > 0  # a log axis has no step 0
            s = steps[keep]
            tr, va = np.asarray(h.series("train_acc"))[keep], np.asarray(h.series("val_acc"))[keep]
            wn = np.asarray(h.series("weight_norm"))[keep]
            c_train = t.train if slot < 0 else run_color(slot, t.name)
            c_val = t.val if slot < 0 else run_color(slot, t.name)
            w = t.line_width
            it.train.setPen(pg.mkPen(c_train, width=w))
            it.val.setPen(pg.mkPen(c_val, width=w, style=Qt.PenStyle.DashLine if slot >= 0 else
                                   Qt.PenStyle.SolidLine))
            it.norm.setPen(pg.mkPen(c_train if slot >= 0 else t.accent, width=w))
            it.train.setData(s, tr)
            it.val.setData(s, va)
            it.norm.setData(s, wn)
            it.show(True)
            g = grok_step(s, va)
            fitted = fit_step(s, tr)
            it.step = g
            if g is not None:
                # Shown first: InfLineLabel.setFormat re-texts (and places) a label only while it is
                # visible, so a marker shown after it kept its old text, "" on a slide export's
                # single redraw (the dotted line, no "grokked at step N").
                it.marker.setVisible(True)
                it.marker.setPos(np.log10(g))
                it.marker.setPen(pg.mkPen(c_val, width=max(1.0, w / 2), style=Qt.PenStyle.DotLine))
                it.marker.label.setFormat(f"grokked at step {g}" + (f" ({name})" if slot >= 0 else ""))
                it.marker.label.setColor(color(c_val))
            else:
                it.marker.setVisible(False)
            story = norm_story(s, va, wn)
            stories.append((name, slot, story, float(wn[-1]) if len(wn) else float("nan")))
            lines.append(self._run_line(name, h, slot, g, fitted, s, va, wn, story))
        jump = next((st.jump for _n, _s, st, _w in stories if st is not None and st.jump), None)
        for region in self.jump_regions:
            if jump is not None:
                region.setRegion((np.log10(jump[0]), np.log10(max(jump[1], jump[0]))))
            region.setVisible(jump is not None)
        ratio = self._ratio_line(stories)
        if ratio:
            lines.append(ratio)
        if not modular:
            lines.insert(0, "Not modular arithmetic: no grokking to see here. Load the grokking "
                            "preset (a + b mod 47).")
        self.readout.setText("<br>".join(lines))

    def _hp(self, name: str):
        return getattr(self, "_run_hparams", {}).get(
            name, self.snapshot.hparams if self.snapshot is not None else None)

    def _ratio_line(self, stories: list) -> str:
        """"‖θ‖ now: A (λ = 1) 77 = 0.60 × B's (λ = 0) 128": a decayed run beside its λ = 0 control."""
        if len(stories) < 2:
            return ""
        lam = {n: (hp.weight_decay if (hp := self._hp(n)) is not None else None) for n, *_ in stories}
        zero = [(n, w) for n, _s, _st, w in stories if lam[n] == 0]
        decayed = [(n, w) for n, _s, _st, w in stories if lam[n] is not None and lam[n] > 0]
        if not zero or not decayed or not zero[0][1] > 0:
            return ""
        (zn, zw), (dn, dw) = zero[0], decayed[0]
        return (f"‖θ‖ now: {dn} (λ = {lam[dn]:g}) {dw:.3g} = {dw / zw:.2f} × {zn}'s (λ = 0) {zw:.3g}: "
                "decay holds the norm down; it does not have to fall during the jump")

    def _run_line(self, name: str, h: History, slot: int, g: int | None, fitted: int | None,
                  steps: np.ndarray, val: np.ndarray, norm: np.ndarray,
                  story: NormStory | None = None) -> str:
        hp = self.snapshot.hparams if self.snapshot is not None else None
        snaps = getattr(self, "_run_hparams", {})
        hp = snaps.get(name, hp)
        lam = "" if hp is None else f"λ = {hp.weight_decay:g}, lr·λ = {hp.lr * hp.weight_decay:.3g}: "
        who = f"<b>{name}</b> " if slot >= 0 else ""
        fit = f"fitted (train ≥ 99 %) at step {fitted}" if fitted is not None else "not fitted yet"
        if g is not None:
            what = f"grokked (val ≥ {GROK_THRESHOLD:.0%}) at step {g}"
        else:
            what = (f"not grokked (val ≥ {GROK_THRESHOLD:.0%}) by step {int(steps[-1])}, "
                    f"val {val[-1]:.1%}")
        c = self.theme.foreground if slot < 0 else run_color(slot, self.theme.name)
        told = f"‖θ‖ {norm[0]:.3g} → {norm[-1]:.3g}"
        if story is not None and story.low < story.peak:
            told += (f" (largest fall {story.peak:.3g} → {story.low:.3g}, steps {story.peak_step}–"
                     f"{story.low_step}, {(story.peak - story.low) / story.peak:.0%})")
        change = story.jump_change if story is not None else None
        if story is not None and story.jump is not None and change is not None:
            a, b = story.jump
            verb = "fell" if change < 0 else "rose"
            told += (f"; during the jump (val {JUMP_START:.0%} → {GROK_THRESHOLD:.0%}, steps {a}–{b}) "
                     f"‖θ‖ {verb} {abs(change):.1%}")
        return f"<span style='color:{c}'>{who}{lam}{fit}; {what}; {told}</span>"

    def set_run_snapshots(self, snapshots: dict) -> None:
        """Compare mode: each run's latest snapshot, for its λ in the readout."""
        self._run_hparams = {n: s.hparams for n, s in snapshots.items()}

    # ------------------------------------------------------------------------------ contract
    def reset(self) -> None:
        super().reset()
        self._key = None
        for it in self.items:
            it.show(False)

    def apply_theme(self, theme) -> None:
        super().apply_theme(theme)
        style_plot(_Wrap(self.view, self.acc), theme, title="Accuracy: train (solid), val (dashed)",
                   left="accuracy", bottom="step (log)")
        style_plot(_Wrap(self.view, self.norm_plot), theme,
                   # Short: a title wider than the plot widens the layout past the view (the slide
                   # export then cut the step axis at ~350). The full definition is in TIP.
                   title="‖θ‖ = √Σ‖W‖² (weight matrices) · shaded: val 10 → 95 %", left="‖θ‖",
                   bottom="step (log)")
        for region in self.jump_regions:
            region.setBrush(pg.mkBrush(color(theme.val, 40)))
            for line in region.lines:
                line.setPen(pg.mkPen(color(theme.val, 90), width=1))
        self.threshold_line.setPen(pg.mkPen(color(theme.foreground, 90), width=1,
                                            style=Qt.PenStyle.DashLine))
        for label in (self.readout, self.hint):
            style_text(label, theme)
        for it in self.items:  # the "grokked at step N" label: the theme's size (slide: 22 pt, not 9)
            font = it.marker.label.textItem.font()
            font.setPointSize(theme.font_pt)
            it.marker.label.setFont(font)
        fill_background(self, theme)
        self._key = None
        self.redraw()

    def cleanup(self) -> None:
        self._runs = []


class _Wrap:
    """style_plot takes a PlotWidget; this gives it a layout's PlotItem and the view's background."""

    def __init__(self, view: pg.GraphicsLayoutWidget, plot: pg.PlotItem) -> None:
        self._view, self._plot = view, plot

    def getPlotItem(self) -> pg.PlotItem:
        return self._plot

    def setBackground(self, bg: str) -> None:
        self._view.setBackground(bg)
