"""The (lr × λ) sweep: Loshchilov & Hutter (2019) Fig. 2 at small scale, one heatmap per decay variant.

Each cell is a fresh short run of the live run's settings with one (variant, lr, λ), trained for N
steps per seed; its colour is the final validation error, on one colour scale shared by every
heatmap. Rows: SGD (momentum 0.9) and Adam. Columns: where the decay enters the update

    L2 in the gradient:       g ← ∇L + λθ                  (Adam then divides it by √v̂ + ε)
    decoupled, the paper's:   θ ← θ − η_t·λ·θ − …           (η_t: the schedule multiplier only)
    decoupled, PyTorch's:     θ ← θ − lr·λ·θ − …            (torch.optim.AdamW: lr·λ, coupled again)

The paper's claim is about the valley's shape: with L2 the best λ moves as lr moves (for SGD lr·λ ≈
const: a diagonal), decoupled as the paper does it the best λ stays put (a vertical line), so lr and
λ can be tuned one at a time. Marks: the 10 best cells circled (the best one thicker), the best λ
at each lr joined by a line, cells hatched when their mean is within one standard error (of the
difference) of the best cell's: those are not distinguishable from the best with these seeds.
Hover a cell for mean ± SE and n. The engine computes the grid (regsim.analyses.sweep) as a
background job; each finished batch of runs fills its cells in.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSpinBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from regsim.analyses.jobs import JobEvent
from regsim.analyses.sweep import SweepRequest, SweepResult
from regsim.snapshot import History, Snapshot
from ui.panels.base import JobPanel
from ui.panels.style import color, fill_background, mix, set_title, style_plot_item, style_text
from ui.theme import Theme
from ui.widgets import FlowLayout

# Heatmap slots: (row, column) → variant. Rows SGD / Adam, columns L2 | paper | PyTorch.
SLOTS = (("sgd-l2", "SGD+L2"), ("sgdw-paper", "SGDW (paper)"), ("sgdw", "SGDW (lr·λ)"),
         ("adam-l2", "Adam+L2"), ("adamw-paper", "AdamW (paper)"), ("adamw", "AdamW (PyTorch)"))
DEFAULT_VARIANTS = ("sgd-l2", "sgdw-paper", "adam-l2", "adamw-paper", "adamw")
TOP_K = 10
SCALE_PERCENTILE = 70  # colours span the best cell to this percentile of all cells; worse saturate
CAPTION = ("Colour: final validation error after {steps} steps, mean over the seeds trained, one scale for "
           "all maps (best cell → {pct}th percentile; worse cells saturate). ○ the 10 best cells (thick: the "
           "best), line: best λ at each usable lr (best cell inside the scale), hatched: within 1 SE of "
           "the best (not distinguishable from it), "
           "×: diverged. Shows where a short run's error is low; not long training, schedules or test "
           "error. Measured on digits (issue 12): SGD shows the paper's effect (SGD+L2's best λ moves with "
           "lr, SGDW's stays), while Adam's best cells differ by less than one SE.")
TIP = ("One cell = a fresh run of this run's settings with that (lr, λ), N steps, per seed.\n"
       "L2: g ← ∇L + λθ.  Paper: θ ← θ − η_t·λ·θ − ….  PyTorch AdamW: θ ← θ − lr·λ·θ − ….\n"
       "With L2 the best λ moves with lr (SGD: lr·λ ≈ const); decoupled (paper) it stays put.\n"
       "Hatched cells: mean − best ≤ √(SE_cell² + SE_best²): the seeds cannot tell them from the best.\n"
       "Title: 'best λ fixed' when one λ is within 1 SE of its row's best at every usable lr;\n"
       "'top 2 tie': the two best cells are within 1 SE of their difference.")


def tick_text(x: float) -> str:
    """0 → "0", 0.001 → "1e-3", 0.0032 → "3.2e-3", 0.3 → "0.3": short labels for log-spaced values."""
    if x == 0:
        return "0"
    if 0.01 <= abs(x) < 100:
        return f"{x:.2g}"
    m, e = f"{x:.1e}".split("e")
    m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def log_axis(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """n log-spaced values from lo to hi, rounded to 2 significant digits (readable tick labels)."""
    if n == 1:
        return (float(f"{lo:.2g}"),)
    return tuple(float(f"{math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * k / (n - 1)):.2g}")
                 for k in range(n))


HATCH = 3  # strokes per hatched cell


def hatch_segments(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of HATCH parallel strokes per (lr index, λ index) cell, as pairs for connect="pairs":
    the diagonal and one either side of it (an × would read as the diverged mark)."""
    i, j = cells[:, 0].astype(float)[:, None], cells[:, 1].astype(float)[:, None]
    c = np.array([-0.5, 0.0, 0.5])[None, :]  # offset of each stroke from the diagonal
    x0, y0 = j + np.maximum(c, 0), i + np.maximum(-c, 0)
    x1, y1 = j + 1 + np.minimum(c, 0), i + 1 - np.maximum(c, 0)
    xs = np.stack([x0, x1], -1).ravel()
    ys = np.stack([y0, y1], -1).ravel()
    return xs, ys


class _Heatmap:
    """The items of one variant's heatmap, created once."""

    def __init__(self, plot: pg.PlotItem, slug: str, name: str) -> None:
        self.plot, self.slug, self.name = plot, slug, name
        self.image = pg.ImageItem(axisOrder="row-major")
        self.hatch = pg.PlotDataItem(connect="pairs")
        self.line = pg.PlotDataItem(symbol="o", symbolSize=6)
        self.rings = pg.ScatterPlotItem(symbol="o", pxMode=False, brush=None)
        self.crosses = pg.ScatterPlotItem(symbol="x", pxMode=False)
        self.own = pg.ScatterPlotItem(symbol="+", pxMode=False)  # the live run's own (lr, λ)
        self.hint = pg.TextItem("", anchor=(0.5, 0.5))
        for z, item in enumerate((self.image, self.hatch, self.crosses, self.line, self.rings, self.own)):
            item.setZValue(z)
            plot.addItem(item)
        plot.addItem(self.hint, ignoreBounds=True)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        plot.setMenuEnabled(False)


class SweepPanel(JobPanel):
    """Heatmaps of final validation error over (lr × λ), one per decay variant (L&H 2019 Fig. 2)."""

    key = "sweep"
    title = "lr × λ sweep"
    analysis = "sweep"
    idle_text = "no sweep yet: press Start (S)"

    EMPTY_HINT = "Press Start (S)\nto train the grid"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self.result: SweepResult | None = None
        self._drawn: tuple | None = None

        # --- controls -------------------------------------------------------------------------
        def field(text: str, tip: str) -> QLineEdit:
            e = QLineEdit(text)
            e.setMaximumWidth(64)
            # focus on click only: a field focused on show blinks its cursor (and the panel's
            # keyboard shortcuts, S and Esc, would type into it)
            e.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            e.setToolTip(tip)
            return e

        def spin(lo: int, hi: int, value: int, prefix: str, tip: str) -> QSpinBox:
            s = QSpinBox()
            s.setRange(lo, hi)
            s.setValue(value)
            s.setPrefix(prefix)
            s.setToolTip(tip)
            s.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # as the fields: no blinking cursor on show
            return s

        self.lr_lo = field("3e-4", "smallest learning rate, in (0, 10]")
        self.lr_hi = field("0.3", "largest learning rate, in (0, 10]")
        self.lr_n = spin(1, 24, 6, "× ", "learning rates, log-spaced (1–24)")
        self.wd_lo = field("1e-4", "smallest weight decay λ > 0, in (0, 10]")
        self.wd_hi = field("1", "largest weight decay λ, in (0, 10]")
        self.wd_n = spin(1, 24, 5, "× ", "weight decays, log-spaced (1–24)")
        self.wd_zero = QCheckBox("+ λ = 0")
        self.wd_zero.setToolTip("Add a column without decay: the baseline every λ is compared with")
        self.seeds_spin = spin(1, 16, 2, "seeds ", "seeds per cell (1–16): the spread, mean ± SE")
        self.steps_spin = spin(1, 20_000, 200, "steps ", "optimizer steps per run (1–20000)")
        self.steps_spin.setSingleStep(50)
        self.variant_boxes: dict[str, QCheckBox] = {}
        for slug, name in SLOTS:
            box = QCheckBox(name)
            box.setChecked(slug in DEFAULT_VARIANTS)
            box.setToolTip(f"Sweep {name}: " + ("λθ added to the gradient" if slug.endswith("l2") else
                                                "θ ← θ − η_t·λ·θ (η_t the schedule only)" if
                                                slug.endswith("paper") else "θ ← θ − lr·λ·θ"))
            self.variant_boxes[slug] = box
        self.build_job_controls("Start", "S", "Train the grid as a background job (a newer Start "
                                "replaces it)", progress_width=220)
        self.start_button = self.compute_button
        self.make_status_label(wrap=False)
        # the hovered cell, also as a line here: a tooltip shows only in the active window
        self.hover_label = QLabel("")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.hover_label.setProperty("export_hidden", True)

        controls = QWidget()
        controls.setProperty("export_hidden", True)  # the slide shows the maps and the caption
        # Groups that wrap in a narrow window (a grid of every field asked for 802 px, which with the
        # dock ruled out a 1 024 px lecture window); each range stays on one line.
        flow = FlowLayout(controls)
        flow.setContentsMargins(0, 0, 0, 0)
        self._labels = []
        for group in ([QLabel("lr"), self.lr_lo, QLabel("to"), self.lr_hi, self.lr_n],
                      [QLabel("λ"), self.wd_lo, QLabel("to"), self.wd_hi, self.wd_n, self.wd_zero],
                      [self.seeds_spin, self.steps_spin]):
            box = QWidget()
            row = QHBoxLayout(box)
            row.setContentsMargins(0, 0, 0, 0)
            for w in group:
                row.addWidget(w)
            self._labels += [w for w in group if isinstance(w, QLabel)]
            flow.addWidget(box)
        for check in self.variant_boxes.values():
            flow.addWidget(check)
        status = QHBoxLayout()
        for w in (self.start_button, self.cancel_button, self.progress):
            status.addWidget(w)
        status.addWidget(self.status_label, 1)
        status.addWidget(self.hover_label, 1)

        # --- heatmaps -------------------------------------------------------------------------
        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip(TIP)
        self.maps: list[_Heatmap] = []
        for k, (slug, name) in enumerate(SLOTS):
            plot = self.view.addPlot(row=k // 3, col=k % 3)
            self.maps.append(_Heatmap(plot, slug, name))
        self.colorbar = pg.ColorBarItem(interactive=False, width=18)
        self.colorbar.setImageItem([m.image for m in self.maps])
        self.view.addItem(self.colorbar, row=0, col=3, rowspan=2)
        self.view.ci.layout.setHorizontalSpacing(10)
        self.view.scene().sigMouseMoved.connect(self._hover)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        root = QVBoxLayout(self)
        root.addWidget(controls)
        root.addLayout(status)
        root.addWidget(self.view, 1)
        root.addWidget(self.caption)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap

    def redraw(self) -> None:
        snap = self.snapshot
        key = (id(self.result), self.theme.name, id(self.theme),
               None if snap is None else (snap.hparams.optimizer, snap.hparams.decay_mode,
                                          snap.hparams.lr, snap.hparams.weight_decay))
        if key == self._drawn:
            return
        self._drawn = key
        self._draw()

    def job_partial(self, event: JobEvent) -> None:
        self.show_result(event.result, event.done, event.total)

    def job_result(self, event: JobEvent) -> None:
        if event.result is not None:
            self.show_result(event.result, event.done, event.total)

    def job_progress_text(self, done: int, total: int) -> str:
        return f"{100 * done / total:.0f} %"

    def show_result(self, r: SweepResult, done: int = 0, total: int = 0) -> None:
        """Draw a (partial) grid: the cells trained so far."""
        self.result = r
        self._drawn = None
        if r.complete:
            self._show_progress(1, 1, f"{r.total} runs")
            self.status_label.setText(f"{r.total} runs × {r.steps} steps in {r.seconds:.1f} s "
                                      f"({r.total / max(r.seconds, 1e-9):.1f} runs/s"
                                      f"{', batched' if r.batched else ''})")
        else:
            self._show_progress(done, total, f"{r.done} / {r.total} runs")
            self.status_label.setText(f"{r.done} / {r.total} runs, {r.seconds:.0f} s …")
        self.redraw()

    def reset(self) -> None:
        super().reset()
        self._drawn = None

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        for w in (self.status_label, self.hover_label, self.caption, *self._labels):
            style_text(w, theme)
        self.view.setBackground(theme.background)
        font = self.font()
        font.setPointSize(theme.font_pt)
        for m in self.maps:
            style_plot_item(m.plot, theme)
            m.hint.setColor(mix(theme.foreground, theme.background, 0.3))
            m.hint.setFont(font)
            m.plot.getViewBox().setBackgroundColor(mix(theme.foreground, theme.background, 0.8))
            w = max(1.5, theme.line_width * 0.6)
            # white: the near-best cells are the dark end of viridis on either theme
            m.hatch.setPen(pg.mkPen("#ffffff", width=max(1.0, w / 2)))
            m.line.setPen(pg.mkPen(theme.val, width=w))
            m.line.setSymbolBrush(color(theme.val))
            m.line.setSymbolPen(pg.mkPen(theme.val))
            m.crosses.setPen(pg.mkPen(theme.foreground, width=w))
            m.crosses.setBrush(color(theme.foreground))
            m.own.setPen(pg.mkPen(theme.accent, width=w))
            m.own.setBrush(color(theme.accent))
        self.colorbar.setColorMap(pg.colormap.get(theme.colormap))
        self.colorbar.axis.setPen(pg.mkPen(theme.foreground))
        self.colorbar.axis.setTextPen(pg.mkPen(theme.foreground))
        self.colorbar.axis.setTickFont(font)
        self.colorbar.axis.enableAutoSIPrefix(False)  # "(x0.001)" reads as another quantity
        self.colorbar.axis.autoSIPrefixScale = 1.0
        # room for "0.15" plus the label at this theme's font (the axis does not widen itself in
        # the slide render: its tick labels vanished)
        self.colorbar.axis.setWidth(int(theme.font_pt * 5.6))
        self.colorbar.axis.setLabel("final val error", color=theme.foreground,
                                    **{"font-size": f"{theme.font_pt}pt"})
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        try:
            self.view.scene().sigMouseMoved.disconnect(self._hover)
        except (RuntimeError, TypeError):
            pass

    # -------------------------------------------------------------------------------- requests
    def params(self) -> dict:
        """The Request fields the controls ask for; ValueError naming the field when one is bad."""
        def number(edit: QLineEdit, name: str) -> float:
            try:
                x = float(edit.text().strip())
            except ValueError:
                raise ValueError(f"{name} = {edit.text()!r}: expected a number in (0, 10]") from None
            if not (math.isfinite(x) and 0 < x <= 10):
                raise ValueError(f"{name} = {edit.text()}: out of range; allowed: (0, 10]")
            return x

        lr_lo, lr_hi = number(self.lr_lo, "smallest lr"), number(self.lr_hi, "largest lr")
        wd_lo, wd_hi = number(self.wd_lo, "smallest λ"), number(self.wd_hi, "largest λ")
        if lr_lo > lr_hi:
            raise ValueError(f"lr range {lr_lo:g} to {lr_hi:g}: the smallest must not exceed the largest")
        if wd_lo > wd_hi:
            raise ValueError(f"λ range {wd_lo:g} to {wd_hi:g}: the smallest must not exceed the largest")
        lrs = log_axis(lr_lo, lr_hi, self.lr_n.value())
        decays = log_axis(wd_lo, wd_hi, self.wd_n.value())
        if len(set(lrs)) < len(lrs) or len(set(decays)) < len(decays):
            raise ValueError("the range is too narrow for that many values (two round to the same)")
        variants = tuple(s for s, box in self.variant_boxes.items() if box.isChecked())
        if not variants:
            raise ValueError("variants: tick at least one")
        params = {"lrs": lrs, "decays": ((0.0,) if self.wd_zero.isChecked() else ()) + decays,
                  "variants": variants, "seeds": int(self.seeds_spin.value()),
                  "steps": int(self.steps_spin.value())}
        SweepRequest(**params)  # the job's own checks (the grid's size), before asking
        return params

    def job_started(self, params: dict) -> None:
        runs = len(params["lrs"]) * len(params["decays"]) * len(params["variants"]) * params["seeds"]
        self._show_progress(0, 1, "starting…")
        self.status_label.setText(f"training {runs} runs × {params['steps']} steps …")

    def job_cancelled_text(self) -> str:
        return "cancelled" + (" (the cells done so far stay)" if self.result else "")

    # ------------------------------------------------------------------------------- internals
    def map_of(self, slug: str) -> _Heatmap:
        return next(m for m in self.maps if m.slug == slug)

    def cell_text(self, v: int, i: int, j: int) -> str:
        """What hovering cell (lr index i, λ index j) of heatmap v of the result says."""
        r = self.result
        assert r is not None
        what = "val loss" if r.regression else "val error"
        head = f"{r.names[v]}, lr {tick_text(r.lrs[i])}, λ {tick_text(r.decays[j])}"
        n = int(r.n[v, i, j])
        if n == 0:
            return f"{head}: not trained yet"
        se = r.se[v, i, j]
        spread = f" ± {se:.3f} (SE)" if np.isfinite(se) else " (one seed: no spread)"
        rank = next((k + 1 for k, c in enumerate(r.top[v]) if tuple(c) == (i, j)), None)
        notes = [f"rank {rank}" if rank else "", "within 1 SE of the best" if r.near_best[v, i, j] and
                 rank != 1 else "", f"{int(r.diverged[v, i, j].sum())} diverged"
                 if r.diverged[v, i, j].any() else ""]
        extra = " · ".join(x for x in notes if x)
        return f"{head}: {what} {r.mean[v, i, j]:.3f}{spread}, n = {n}" + (f" · {extra}" if extra else "")

    def _hover(self, pos: QPointF) -> None:
        r = self.result
        if r is None:
            return
        for m in self.maps:
            if m.slug not in r.variants or not m.plot.vb.sceneBoundingRect().contains(pos):
                continue
            p = m.plot.vb.mapSceneToView(pos)
            i, j = int(math.floor(p.y())), int(math.floor(p.x()))
            if 0 <= i < len(r.lrs) and 0 <= j < len(r.decays):
                text = self.cell_text(r.variants.index(m.slug), i, j)
                self.view.setToolTip(text)
                self.hover_label.setText(text)
                if self.isVisible():
                    QToolTip.showText(QCursor.pos(), text, self.view)
                return
        self.view.setToolTip(TIP)

    # --------------------------------------------------------------------------------- drawing
    def levels(self) -> tuple[float, float]:
        """The shared colour scale: the best cell's mean to the SCALE_PERCENTILE-th percentile."""
        r = self.result
        vals = r.mean[np.isfinite(r.mean)] if r is not None else np.array([])
        if vals.size == 0:
            return 0.0, 1.0
        lo, hi = float(vals.min()), float(np.percentile(vals, SCALE_PERCENTILE))
        if hi - lo < 1e-9:
            hi = max(float(vals.max()), lo + 1e-3)
        return lo, hi

    def _axes(self, m: _Heatmap, lrs: np.ndarray, decays: np.ndarray, left: bool) -> None:
        t = self.theme
        m.plot.getAxis("bottom").setTicks([[(j + 0.5, tick_text(x)) for j, x in enumerate(decays)], []])
        m.plot.getAxis("left").setTicks([[(i + 0.5, tick_text(x)) for i, x in enumerate(lrs)], []])
        style = {"color": t.foreground, "font-size": f"{t.font_pt}pt"}
        m.plot.setLabel("bottom", "λ", **style)
        m.plot.setLabel("left", "lr" if left else "", **style)
        m.plot.setRange(xRange=(0, max(1, len(decays))), yRange=(0, max(1, len(lrs))), padding=0)

    def _draw(self) -> None:
        t = self.theme
        r = self.result
        snap = self.snapshot
        empty = np.zeros((0, 2))
        lo, hi = self.levels()
        self.colorbar.setLevels((lo, hi))
        if r is not None:
            lrs, decays = r.lrs, r.decays
        else:
            try:
                p = self.params()
                lrs, decays = np.asarray(p["lrs"]), np.asarray(p["decays"])
            except ValueError:
                lrs, decays = np.asarray([1e-3]), np.asarray([1e-3])
        for k, m in enumerate(self.maps):
            v = r.variants.index(m.slug) if r is not None and m.slug in r.variants else -1
            set_title(m.plot, m.name, t, t.font_pt)
            self._axes(m, lrs, decays, left=k % 3 == 0)
            m.hatch.setData(empty[:, 0], empty[:, 1])
            m.line.setData(empty[:, 0], empty[:, 1])
            m.rings.setData([], [])
            m.crosses.setData([], [])
            m.own.setData([], [])
            m.hint.setPos(len(decays) / 2, len(lrs) / 2)
            # no snapshot yet: no settings to sweep from, so no grid either
            m.plot.getViewBox().setBackgroundColor(
                mix(t.foreground, t.background, 0.8) if snap is not None or r is not None
                else color(t.background))
            if v < 0:
                m.image.setImage(np.full((1, 1), np.nan), levels=(lo, hi), autoLevels=False)
                m.image.setRect(0, 0, 1, 1)
                m.image.setVisible(False)
                m.hint.setVisible(True)
                if r is not None:
                    m.hint.setText("not in this sweep")
                elif snap is None:
                    m.hint.setText("waiting for the run's\nsettings" if k == 0 else "")
                else:
                    m.hint.setText(self.EMPTY_HINT if k == 0 else "")
                if snap is not None:
                    self._mark_own(m, snap, lrs, decays)
                continue
            m.hint.setVisible(False)
            m.image.setVisible(True)
            m.image.setImage(r.mean[v], levels=(lo, hi), autoLevels=False)
            m.image.setRect(0, 0, len(decays), len(lrs))
            # hatching: HATCH parallel strokes (slope 1) per cell within 1 SE of the best, not
            # the best itself
            near = self.hatched(v)
            if len(near):
                xs, ys = hatch_segments(near)
                m.hatch.setData(xs, ys)
            ranked = np.array([c for c in r.top[v] if c[0] >= 0]).reshape(-1, 2)
            if len(ranked):
                w = max(1.5, t.line_width * 0.6)
                pens = [pg.mkPen(t.accent, width=2 * w if k2 == 0 else w) for k2 in range(len(ranked))]
                m.rings.setData(ranked[:, 1] + 0.5, ranked[:, 0] + 0.5, size=[0.9 if k2 == 0 else 0.75
                                                                             for k2 in range(len(ranked))],
                                pen=pens, brush=None)
            rows = self.usable_rows(v)
            m.line.setData(r.best_decay[v][rows] + 0.5, rows + 0.5)
            bad = np.argwhere(r.diverged[v].any(axis=2))
            if len(bad):
                m.crosses.setData(bad[:, 1] + 0.5, bad[:, 0] + 0.5, size=0.35)
            self._mark_own(m, snap, lrs, decays)
            if r.complete:
                # short: three maps and the colour bar must fit a slide's width at 22 pt
                noise = "" if r.seeds < 2 or r.resolved[v] else "; top 2 tie"
                set_title(m.plot, f"{m.name}<br>{self.valley(v)}{noise}", t, t.font_pt)
        self._caption()

    def hatched(self, v: int) -> np.ndarray:
        """(k, 2) (lr index, λ index) of the cells hatched in heatmap v: within 1 SE of the best."""
        r = self.result
        best = tuple(r.top[v, 0])
        return np.array([c for c in np.argwhere(r.near_best[v]) if tuple(c) != best],
                        dtype=np.int64).reshape(-1, 2)

    def usable_rows(self, v: int) -> np.ndarray:
        """The lr indices whose best cell lies inside the colour scale: at the other lrs nothing
        trains well in N steps, and "the best λ" there is the best of bad runs."""
        r = self.result
        _, hi = self.levels()
        best = np.where(r.best_decay[v] >= 0, r.best_decay[v], 0)
        rowbest = r.mean[v][np.arange(len(r.lrs)), best]
        return np.flatnonzero((r.best_decay[v] >= 0) & (rowbest <= hi))

    def valley(self, v: int) -> str:
        """Does the best λ move with lr? "best λ fixed" when one λ is within one SE (of the
        difference) of its row's best at every usable lr, "best λ moves" when no λ is: the
        argmin alone would call seed noise a move."""
        r = self.result
        rows = self.usable_rows(v)
        if not len(rows):
            return "no usable lr"
        common = None
        for i in rows:
            b = int(r.best_decay[v][i])
            m, se = r.mean[v][i], np.nan_to_num(r.se[v][i])
            with np.errstate(invalid="ignore"):
                near = set(np.flatnonzero(m - m[b] <= np.sqrt(se ** 2 + se[b] ** 2)).tolist())
            common = near if common is None else common & near
        return "best λ fixed" if common else "best λ moves"

    def _mark_own(self, m: _Heatmap, snap: Snapshot | None, lrs: np.ndarray, decays: np.ndarray) -> None:
        """'+' on the cell nearest the live run's own (lr, λ), in its own variant's map."""
        if snap is None:
            return
        h = snap.hparams
        slug = {("momentum", "l2"): "sgd-l2", ("momentum", "decoupled"): "sgdw",
                ("momentum", "decoupled_paper"): "sgdw-paper", ("adam", "l2"): "adam-l2",
                ("adam", "decoupled"): "adamw", ("adam", "decoupled_paper"): "adamw-paper"}.get(
            (h.optimizer, getattr(h, "decay_mode", "l2")))
        if slug != m.slug or h.lr <= 0:
            return
        i = int(np.argmin(np.abs(np.log(lrs) - math.log(h.lr))))
        logs = np.log(np.where(decays > 0, decays, np.nan))
        j = (int(np.flatnonzero(decays == 0)[0]) if h.weight_decay == 0 and (decays == 0).any()
             else int(np.nanargmin(np.abs(logs - math.log(h.weight_decay)))) if h.weight_decay > 0
             and np.isfinite(logs).any() else -1)
        if j >= 0:
            m.own.setData([j + 0.5], [i + 0.5], size=0.5)

    def _caption(self) -> None:
        r = self.result
        steps = r.steps if r is not None else self.steps_spin.value()
        text = CAPTION.format(steps=steps, pct=SCALE_PERCENTILE)
        if r is not None:
            text = (f"{r.done}/{r.total} runs of {r.base}, {r.seeds} seed{'s' if r.seeds > 1 else ''} per "
                    f"cell. ") + text
        self.caption.setText(text)

