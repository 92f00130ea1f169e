"""Dropout panel: the batch's masks, the thinned network, and inverted-dropout scaling.

Dropout is easy to state and easy to misremember (who is scaled, when, by how much). This panel
shows the live answer from the trainer rather than a cartoon:

* one image per dropout site of the batch's masks (rows = examples, columns = units), with the
  *measured* fraction dropped next to the nominal p, so sampling noise around p is visible;
* the network as neurons and connections, with the neurons dropped in the first example's mask
  greyed out: the sub-network that example actually trained;
* one example's activations before dropout (h) and after inverted dropout (y = m ⊙ h / (1 − p)):
  survivors are scaled up by 1/(1 − p) during training so that E[y] = h, which is why inference
  needs no change at all (the Inference toggle shows y = h);
* a p per layer, y_l = m_l ⊙ h_l / (1 − p_l), m_l ~ Bernoulli(1 − p_l), with a slider each under
  the network (the seed's table: input 0–0.2, fully-connected hidden 0.5, conv 0.1–0.3). The
  input slider is `input_dropout`, the hidden ones set `layer_dropout`, which overrides the
  global p until "use global p" clears it; a change applies at the next step;
* for the conv net, each conv site's mask flattened channel-major (C × 8·8 columns per example):
  channel-wise dropout (nn.Dropout2d) zeroes whole 64-column blocks, element-wise scatters zeros.

Plot items are created once; `redraw` only feeds them new data.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from regsim.hparams import SETTINGS
from regsim.snapshot import History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import mix as _mix
from ui.panels.style import set_axis_label as _set_label
from ui.panels.style import set_title as _set_title
from ui.panels.style import style_legend as _style_legend
from ui.panels.style import style_plot_item as _style_plot
from ui.run_colors import run_color
from ui.theme import Theme
from ui.widgets import LiveLabel

MAX_DRAWN_NEURONS = 16  # per layer; wider layers are drawn as their first 16 units with a "…" note
MAX_SITES = 10  # input + at most 8 hidden layers (HParams allows 8), with one to spare
MASK_COLUMNS = 5  # more sites than this wrap onto a second row of mask images
MAX_RUNS_SHOWN = 4  # Compare mode: one mask per run (regsim.runs.MAX_RUNS)

EQUATION_TIP = (
    "Inverted dropout (training):  y = m ⊙ h / (1 − p),   m ~ Bernoulli(1 − p) for each unit.\n"
    "Each unit is kept with probability 1 − p and survivors are scaled by 1/(1 − p), so\n"
    "E[y] = (1 − p) · h / (1 − p) = h: the expected output equals the original activation.\n"
    "Inference: y = h. No scaling is needed at test time; that is why it is called 'inverted'.\n"
    "A network with n hidden units has 2^n possible masks, i.e. 2^n sub-networks sharing the same\n"
    "weights; each minibatch trains a different one, an implicit ensemble. At test time the full\n"
    "network approximates the geometric mean of all these sub-networks' predictions."
)

INFERENCE_NOTE = ("Inference: no masks. Every unit of every example is kept and the weights are used "
                  "as trained: inverted dropout already scaled survivors by 1/(1 − p) in training, "
                  "so nothing is rescaled now (y = h).")
TRAIN_NOTE = ("Masks of the current batch: rows = examples, columns = units; coloured = kept, "
              "grey = dropped.")
OFF_NOTE = ("Dropout is off (p = 0 at every site): no mask, nothing dropped, and training runs the "
            "same network as inference. Raise Dropout p to see the masks.")
NICE_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
P_SLIDER_STEPS = 100  # a layer's slider moves p in steps of 0.01 over [0, 0.99]
# The seed's table ("What gets dropped where"), as each layer's slider tooltip.
LAYER_P_TIPS = {
    "input": "Input layer: p = 0.0–0.2 is typical (rarely used: corrupting inputs can hurt more "
             "than help). Sets input_dropout.",
    "fc": "Fully-connected hidden layer: p = 0.5, the original paper's default (high-capacity "
          "layers need strong regularization). Sets this layer's entry of layer_dropout.",
    "conv": "Convolutional layer: p = 0.1–0.3 (fewer parameters per feature); channel-wise "
            "dropout (Dropout kind) drops entire feature maps. Sets this layer's entry of "
            "layer_dropout.",
}


def plural(n: int, word: str) -> str:
    """'1 unit', '2 units', '0 units'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def nice_ceil(v: float) -> float:
    """The smallest 1, 1.5, 2, 3, 4, 5, 6 or 8 × 10^k that is ≥ v (v > 0): round axis limits whose
    ticks stay put while the data moves under them."""
    k = math.floor(math.log10(v))
    for step in NICE_STEPS:
        # Divide for negative k: 6 / 10 is 0.6 exactly, 6 * 0.1 is not (tick labels would say so).
        limit = step * 10.0**k if k >= 0 else step / 10.0**-k
        if limit >= v * (1 - 1e-12):
            return limit
    return 10.0 ** (k + 1)


class StableScale:
    """A y-range for bars that change every frame (a new example each snapshot, ~30 Hz).

    Fitting each frame made the axis jump 30 times a second and its ticks never settled. Here the
    range grows at once (a bar is never cut off), to a round limit with some headroom, and shrinks
    only after the data has needed less than half of it for SHRINK_AFTER updates in a row (~1 s at
    30 Hz), so a lull of a few frames does not shrink and re-grow it. Zero is always inside.
    """

    SHRINK_AFTER = 30
    HEADROOM = 1.1

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lo = self.hi = 0.0
        self._fitted = False
        self._small = 0

    def _target(self, lo: float, hi: float) -> tuple[float, float]:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        if hi <= 0 and lo >= 0:
            return 0.0, 1.0  # all zero: a unit range, not a collapsed axis
        return (-nice_ceil(-lo * self.HEADROOM) if lo < 0 else 0.0,
                nice_ceil(hi * self.HEADROOM) if hi > 0 else 0.0)

    def update(self, lo: float, hi: float) -> tuple[float, float]:
        """Feed the data's extent, get the range to show (lo ≤ 0 ≤ hi)."""
        t_lo, t_hi = self._target(lo, hi)
        if not self._fitted:
            self.lo, self.hi, self._fitted = t_lo, t_hi, True
        elif min(lo, 0.0) < self.lo or max(hi, 0.0) > self.hi:
            self.lo, self.hi = min(self.lo, t_lo), max(self.hi, t_hi)  # grow now
            self._small = 0
        elif (t_hi - t_lo) < 0.5 * (self.hi - self.lo):
            self._small += 1
            if self._small >= self.SHRINK_AFTER:
                self.lo, self.hi, self._small = t_lo, t_hi, 0
        else:
            self._small = 0
        return self.lo, self.hi


def _pow2_html(n: int) -> str:
    """2^n as rich text, exactly when short and as a power of ten when not."""
    if n <= 30:
        return f"2<sup>{n}</sup> = {2**n:,}"
    exponent = n * math.log10(2.0)
    mantissa = 10 ** (exponent - math.floor(exponent))
    return f"2<sup>{n}</sup> ≈ {mantissa:.1f} × 10<sup>{math.floor(exponent)}</sup>"


class DropoutPanel(Panel):
    """Dropout masks, the thinned network and the inverted-dropout scaling of one example."""

    key = "dropout"
    title = "Dropout masks"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._mode = "train"
        self._dirty = True
        self._net_key: tuple | None = None  # what the network's ticks and title show
        self._styles: dict = {}
        self._styles_theme: Theme | None = None
        self._drawn: Snapshot | None = None
        self._mask_count = -1  # how many mask plots are in the layout
        self._sites: tuple[str, ...] = ()
        self.mask_captions: list[str] = []  # plain-text caption of each shown mask (tests read it)
        self._bar_axes_shown: bool | None = None
        self._unit_ticks = -1  # unit count the bar chart's ticks were made for

        # --- controls -------------------------------------------------------------------------
        self.train_button = QPushButton("Train")
        self.inference_button = QPushButton("Inference")
        self.mode_group = QButtonGroup(self)
        self.mode_group.setExclusive(True)
        for button in (self.train_button, self.inference_button):
            button.setCheckable(True)
            button.setToolTip(EQUATION_TIP)
            self.mode_group.addButton(button)
        self.train_button.setChecked(True)
        self.train_button.toggled.connect(self._on_mode_toggled)
        self.site_combo = QComboBox()
        self.site_combo.setToolTip("Dropout site whose activations the bar chart shows")
        self.site_combo.currentIndexChanged.connect(self._mark_dirty)
        # One line, elided with the whole text in the tooltip (LiveLabel): a word-wrapped header
        # took its height from whichever text was current when Qt last asked for its hint, so a
        # theme round trip (a slide export) left the header 48 px tall instead of 24 and moved
        # everything below it (163 000 pixels).
        self.status_label = LiveLabel("waiting for the first snapshot…")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)

        controls = QHBoxLayout()
        controls.addWidget(self.train_button)
        controls.addWidget(self.inference_button)
        controls.addSpacing(16)
        site_label = QLabel("activations at:")
        site_label.setProperty("export_hidden", True)  # its box is hidden in figures too
        controls.addWidget(site_label)
        controls.addWidget(self.site_combo)
        controls.addSpacing(16)
        controls.addWidget(self.status_label, 1)

        # --- the network ----------------------------------------------------------------------
        self.net_view = pg.GraphicsLayoutWidget()
        self.net_plot = self.net_view.addPlot()
        self.net_plot.setMouseEnabled(x=False, y=False)
        self.net_plot.hideButtons()
        self.net_plot.setMenuEnabled(False)
        self.net_plot.hideAxis("left")
        self.net_plot.getAxis("bottom").setStyle(tickLength=0)
        self.net_plot.getAxis("bottom").setTicks([[], []])  # no made-up 0.2…0.8 before data
        self.edges_on = pg.PlotDataItem(connect="pairs", antialias=True)
        self.edges_off = pg.PlotDataItem(connect="pairs", antialias=True)
        self.neurons = pg.ScatterPlotItem(pxMode=True, antialias=True)
        for item in (self.edges_off, self.edges_on, self.neurons):
            self.net_plot.addItem(item)

        # --- a p per layer: one slider per dropout site, under the network -------------------
        self.layer_box = QWidget()
        layer_row = QHBoxLayout(self.layer_box)
        layer_row.setContentsMargins(0, 0, 0, 0)
        self.layer_box.setProperty("export_hidden", True)  # the network's captions say each p
        layer_row.addWidget(QLabel("p per layer:"))
        self.layer_names: list[QLabel] = []
        self.layer_sliders: list[QSlider] = []
        self.layer_values: list[QLabel] = []
        for i in range(MAX_SITES):
            name, slider, value = QLabel(), QSlider(Qt.Orientation.Horizontal), QLabel("0.00")
            slider.setRange(0, P_SLIDER_STEPS - 1)
            slider.setMinimumWidth(40)
            slider.valueChanged.connect(lambda v, i=i: self._on_layer_slider(i, v))
            for w in (name, slider, value):
                layer_row.addWidget(w)
                w.setVisible(False)
            self.layer_names.append(name)
            self.layer_sliders.append(slider)
            self.layer_values.append(value)
        self.global_p_button = QPushButton("use global p")
        self.global_p_button.setToolTip("Clear the per-layer rates (layer_dropout = []): every "
                                        "hidden layer uses the global Dropout p again")
        self.global_p_button.clicked.connect(self.use_global_p)
        layer_row.addWidget(self.global_p_button)
        self.layer_message = QLabel("")  # a rejected value: which layer, which range
        self.layer_message.setWordWrap(True)
        self._wanted: tuple[float, ...] | None = None  # hidden rates sent, not yet in a snapshot
        self._layer_sites: tuple[str, ...] = ()
        self.layer_updates: list[dict] = []  # every update sent (tests read it)

        # --- one example's activations before / after dropout ---------------------------------
        self.bar_view = pg.GraphicsLayoutWidget()
        self.bar_plot = pg.PlotItem()
        self.bar_plot.setLabel("left", "activation")
        self.bar_plot.setLabel("bottom", "unit")
        self.bar_plot.setMenuEnabled(False)
        # The range is ours (StableScale), not pyqtgraph's per-frame fit: that fit made the scale
        # jump at 30 Hz and, applied lazily at paint time, left ticks and bars out of step.
        self.bar_plot.setMouseEnabled(x=False, y=False)
        self.bar_plot.hideButtons()
        self.bar_plot.disableAutoRange()
        self.bar_scale = StableScale()
        self._scale_key: tuple | None = None  # (site, units): a new one refits the scale
        self.bar_zero = pg.InfiniteLine(pos=0.0, angle=0, movable=False)
        self.bar_plot.addItem(self.bar_zero)
        self.bar_empty = pg.TextItem(anchor=(0.5, 0.5))  # the empty state's message
        self.bar_plot.addItem(self.bar_empty, ignoreBounds=True)
        self.bar_pre = pg.BarGraphItem(x=[], height=[], width=0.4)
        self.bar_post = pg.BarGraphItem(x=[], height=[], width=0.4)
        self.bar_dropped = pg.ScatterPlotItem(symbol="x", pxMode=True)
        for item in (self.bar_pre, self.bar_post, self.bar_dropped):
            self.bar_plot.addItem(item)
        # The legend sits in its own layout row under the title, so it never hides a bar.
        self.bar_legend = pg.LegendItem(colCount=2)
        self.bar_view.addItem(self.bar_legend, row=0, col=0)
        self.bar_view.addItem(self.bar_plot, row=1, col=0)
        self.bar_legend.addItem(self.bar_pre, "h  (before dropout)")
        self.bar_legend.addItem(self.bar_post, "y  (after dropout)")
        self._show_bars_empty("waiting for the first snapshot…")
        self.explain_label = LiveLabel()
        self.explain_label.setWordWrap(True)
        self.explain_label.setToolTip(EQUATION_TIP)

        # --- masks: a pool of plots, laid out for the number of sites in the snapshot ----------
        self.mask_view = pg.GraphicsLayoutWidget()
        self.mask_plots: list[pg.PlotItem] = []
        self.mask_images: list[pg.ImageItem] = []
        for _ in range(MAX_SITES):
            plot = pg.PlotItem()
            plot.hideAxis("left")
            plot.hideAxis("bottom")
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.getViewBox().invertY(True)  # example 0 at the top, like a table
            image = pg.ImageItem(axisOrder="row-major")
            plot.addItem(image)
            self.mask_plots.append(plot)
            self.mask_images.append(image)
        # --- Compare mode: the chosen site's mask of every run, side by side (set_runs) ---------
        self._runs: list[tuple[str, object, int]] = []
        self._selected = ""
        self._run_snaps: dict[str, Snapshot] = {}
        self.run_mask_captions: list[str] = []  # plain text per shown run mask (tests read it)
        self.run_mask_view = pg.GraphicsLayoutWidget()
        self.run_mask_view.setToolTip("Compare mode: the same site's mask in every run. Runs in "
                                      "lockstep share the dropout stream, so a larger p drops a "
                                      "superset of the units a smaller p drops.")
        self.run_mask_plots: list[pg.PlotItem] = []
        self.run_mask_images: list[pg.ImageItem] = []
        for i in range(MAX_RUNS_SHOWN):
            plot = pg.PlotItem()
            for side in ("left", "bottom"):
                plot.hideAxis(side)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.getViewBox().invertY(True)
            image = pg.ImageItem(axisOrder="row-major")
            plot.addItem(image)
            self.run_mask_view.ci.addItem(plot, row=0, col=i)
            self.run_mask_plots.append(plot)
            self.run_mask_images.append(image)
        self.run_mask_view.setVisible(False)
        self.mask_note = QLabel(TRAIN_NOTE)
        self.mask_note.setWordWrap(True)
        self.mask_note.setToolTip(EQUATION_TIP)

        grid = self._grid = QGridLayout()
        net_column = QVBoxLayout()
        net_column.addWidget(self.net_view, 1)
        net_column.addWidget(self.layer_box)
        net_column.addWidget(self.layer_message)
        grid.addLayout(net_column, 0, 0, 2, 1)
        grid.addWidget(self.bar_view, 0, 1)
        grid.addWidget(self.explain_label, 1, 1)
        grid.addWidget(self.mask_note, 2, 0, 1, 2)
        grid.addWidget(self.mask_view, 3, 0, 1, 2)
        grid.addWidget(self.run_mask_view, 4, 0, 1, 2)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setRowStretch(0, 4)
        grid.setRowStretch(3, 3)
        root = QVBoxLayout(self)
        root.addLayout(controls)
        root.addLayout(grid, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        """Keep the newest snapshot; drawing waits for `redraw`."""
        self.snapshot = snap

    def redraw(self) -> None:
        """Draw the newest snapshot if it (or the mode, site or theme) changed since last time."""
        snap = self.snapshot
        if snap is None or (snap is self._drawn and not self._dirty):
            return
        if "masks" not in snap.measured:  # the engine measures them only while this panel shows
            self._sync_sites(snap)  # the sites are always in: the site choice survives
            self._sync_layer_controls(snap)
            self._clear("masks are measured while this panel is shown…")
            self._drawn, self._dirty = snap, False
            return
        self._sync_sites(snap)
        self._sync_layer_controls(snap)
        self._draw_network(snap)
        self._draw_masks(snap)
        self._draw_run_masks()
        self._draw_bars(snap)
        self._draw_status(snap)
        self._drawn = snap
        self._dirty = False

    def reset(self) -> None:
        """Forget the run: empty every item so nothing stale is shown for the next one."""
        super().reset()
        self._clear("waiting for the first snapshot…")

    def _clear(self, message: str) -> None:
        """Empty every item, titles and captions included, and say why (`message`)."""
        self._drawn = None
        self._dirty = True
        self.net_plot.setTitle(None)
        self.bar_plot.setTitle(None)
        self._layout_masks(0)
        self.neurons.setData([], [])
        self._net_key = None
        self.net_plot.getAxis("bottom").setTicks([[], []])
        self.mask_view.setVisible(True)
        self._grid.setRowStretch(3, 3)
        self.edges_on.setData([], [])
        self.edges_off.setData([], [])
        self.bar_pre.setOpts(x=[], height=[])
        self.bar_post.setOpts(x=[], height=[])
        self.bar_dropped.setData([], [])
        self.bar_scale.reset()
        self._scale_key = None
        self._show_bars_empty(message)
        for image in self.mask_images:
            image.clear()
        self._show_run_masks(False)
        self.mask_captions = []
        self.status_label.setText(message)
        self.explain_label.setText("")

    def apply_theme(self, theme: Theme) -> None:
        """Restyle backgrounds, axes, fonts, pens and fixed colours, then redraw."""
        super().apply_theme(theme)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, pg.mkColor(theme.background))
        palette.setColor(QPalette.ColorRole.WindowText, pg.mkColor(theme.foreground))
        self.setPalette(palette)
        self.setAutoFillBackground(True)
        font = self.font()
        font.setPointSize(theme.font_pt)
        self.setFont(font)
        for view in (self.net_view, self.bar_view, self.mask_view, self.run_mask_view):
            view.setBackground(theme.background)
        for plot in (self.net_plot, self.bar_plot, *self.mask_plots, *self.run_mask_plots):
            _style_plot(plot, theme)
        self.net_plot.getAxis("bottom").setPen(pg.mkPen(None))
        # Opaque 1-px edges: visible on a projector, and ~10× cheaper to paint than
        # translucent or fractional-width ones (1.3 s → 0.1 s per slide export, measured).
        self.edges_on.setPen(pg.mkPen(_mix(theme.background, theme.foreground, 0.45), width=1))
        self.edges_off.setPen(pg.mkPen(_mix(theme.background, theme.foreground, 0.1), width=1))
        self.bar_pre.setOpts(brush=_mix(theme.background, theme.foreground, 0.45),
                             pen=pg.mkPen(theme.foreground, width=1))
        self.bar_post.setOpts(brush=pg.mkBrush(theme.train), pen=pg.mkPen(theme.train, width=1))
        self.bar_dropped.setPen(pg.mkPen(theme.val, width=max(1.5, theme.line_width / 2)))
        self.bar_dropped.setSize(theme.font_pt)
        self.bar_zero.setPen(pg.mkPen(_mix(theme.background, theme.foreground, 0.7), width=1))
        self.bar_empty.setColor(theme.foreground)
        empty_font = self.font()
        empty_font.setPointSize(theme.font_pt)
        self.bar_empty.setFont(empty_font)
        _style_legend(self.bar_legend, theme)
        # Layer captions under the network are three lines of tick text: make room for them.
        metrics = QFontMetrics(font)
        self.net_plot.getAxis("bottom").setHeight(int(3 * metrics.lineSpacing() + 12))
        lut = np.array([_mix(theme.background, theme.foreground, 0.12).getRgb(),
                        pg.mkColor(theme.train).getRgb()], dtype=np.ubyte)
        for image in self.mask_images + self.run_mask_images:
            image.setLookupTable(lut)
            image.setLevels((0, 1))
        self._dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------ public API
    @property
    def mode(self) -> str:
        """"train" (masks applied) or "inference" (every neuron active, y = h)."""
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Switch between the training-time and the inference-time network."""
        if mode not in ("train", "inference"):
            raise ValueError(f"mode must be 'train' or 'inference', not {mode!r}")
        (self.train_button if mode == "train" else self.inference_button).setChecked(True)

    def set_layer_p(self, site: str, p: object) -> bool:
        """Ask for drop rate `p` at dropout site `site` from the next step on (what its slider
        does). A value outside [0, 1) or an unknown site is refused with a message naming the
        layer and the range, and nothing is sent; returns whether the change was sent."""
        snap = self.snapshot
        setting = SETTINGS["layer_dropout"]
        if snap is None or site not in snap.dropout_sites:
            known = ", ".join(snap.dropout_sites) if snap is not None else "none yet"
            return self._refuse(f"no dropout site {site!r}; sites: {known}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not setting.in_range(float(p)):
            return self._refuse(f"{site}: p = {p!r} is out of range; allowed: {setting.range_text()}")
        p = float(p)
        i = snap.dropout_sites.index(site)
        if i == 0:
            changes: dict = {"input_dropout": p}
        else:
            rates = list(self._wanted or snap.hparams.hidden_dropout())
            rates[i - 1] = p
            self._wanted = tuple(rates)
            changes = {"layer_dropout": self._wanted}
        try:
            snap.hparams.replace(**changes)
        except ValueError as e:
            return self._refuse(f"{site}: {e}")
        self.layer_message.setText("")
        self.layer_updates.append(changes)
        self.request.emit("update", changes)
        return True

    def use_global_p(self) -> None:
        """Clear the per-layer rates: every hidden layer follows the global p again."""
        self._wanted = None
        self.layer_message.setText("")
        self.layer_updates.append({"layer_dropout": ()})
        self.request.emit("update", {"layer_dropout": ()})

    def _refuse(self, message: str) -> bool:
        self.layer_message.setText(message)
        self.status_message.emit(message)
        return False

    def _on_layer_slider(self, i: int, value: int) -> None:
        if 0 <= i < len(self._layer_sites):
            self.layer_values[i].setText(f"{value / P_SLIDER_STEPS:.2f}")
            self.set_layer_p(self._layer_sites[i], value / P_SLIDER_STEPS)

    def _sync_layer_controls(self, snap: Snapshot) -> None:
        """One slider per site, following the snapshot's rates unless the user holds it."""
        sites = tuple(snap.dropout_sites[:MAX_SITES])
        if sites != self._layer_sites:
            self._layer_sites = sites
            self._wanted = None
            for i in range(MAX_SITES):
                shown = i < len(sites)
                for w in (self.layer_names[i], self.layer_sliders[i], self.layer_values[i]):
                    w.setVisible(shown)
                if shown:
                    kind = ("input" if sites[i] == "input" else
                            "conv" if sites[i].startswith("conv") else "fc")
                    self.layer_names[i].setText(sites[i])
                    tip = (f"{sites[i]}: y = m ⊙ h / (1 − p), m ~ Bernoulli(1 − p).\n"
                           f"{LAYER_P_TIPS[kind]}\nAllowed: {SETTINGS['layer_dropout'].range_text()}; "
                           "applied at the next step.")
                    for w in (self.layer_names[i], self.layer_sliders[i], self.layer_values[i]):
                        w.setToolTip(tip)
        hidden = tuple(float(r) for r in snap.hparams.hidden_dropout())
        if self._wanted is not None and np.allclose(hidden, self._wanted):
            self._wanted = None  # the run has caught up with what was sent
        for i, rate in enumerate(snap.dropout_rates[:len(sites)]):
            slider = self.layer_sliders[i]
            value = int(round(float(rate) * P_SLIDER_STEPS))
            if not slider.isSliderDown() and slider.value() != value and self._wanted is None:
                slider.blockSignals(True)
                slider.setValue(min(value, P_SLIDER_STEPS - 1))
                slider.blockSignals(False)
            self.layer_values[i].setText(f"{float(rate):.2f}")
        self.global_p_button.setEnabled(bool(snap.hparams.layer_dropout))

    def neuron_active(self) -> np.ndarray:
        """(N,) bool per drawn neuron, in the scatter's order: True = drawn as active."""
        data = self.neurons.data["data"]
        return np.asarray([bool(d) for d in data], dtype=bool)

    # ------------------------------------------------------------------------------- internals
    def _on_mode_toggled(self, train_checked: bool) -> None:
        self._mode = "train" if train_checked else "inference"
        self._mark_dirty()

    def _mark_dirty(self, *_args: object) -> None:
        self._dirty = True
        self.redraw()

    def _sync_sites(self, snap: Snapshot) -> None:
        """Refill the site chooser when the sites change, keeping the chosen site if it remains."""
        if snap.dropout_sites == self._sites:
            return
        current = self.site_combo.currentText()
        self._sites = snap.dropout_sites
        self.site_combo.blockSignals(True)
        self.site_combo.clear()
        self.site_combo.addItems(list(self._sites))
        if current in self._sites:
            self.site_combo.setCurrentIndex(self._sites.index(current))
        else:  # default: the first hidden site that drops something (input dropout is rare)
            rates = list(snap.dropout_rates) + [0.0] * len(self._sites)
            active = sorted((s == "input", i) for i, s in enumerate(self._sites) if rates[i] > 0)
            hidden = [i for i, s in enumerate(self._sites) if s != "input"]
            self.site_combo.setCurrentIndex(active[0][1] if active else hidden[0] if hidden else 0)
        self.site_combo.blockSignals(False)

    @staticmethod
    def _site_parts(snap: Snapshot, i: int) -> tuple[float, np.ndarray]:
        """(p, mask) of site i, tolerating a snapshot whose tuples disagree in length."""
        rate = float(snap.dropout_rates[i]) if i < len(snap.dropout_rates) else 0.0
        mask = snap.dropout_masks[i] if i < len(snap.dropout_masks) else np.ones((0, 0), bool)
        return rate, np.asarray(mask, dtype=bool)

    @staticmethod
    def _channels(snap: Snapshot, i: int) -> tuple[int, int] | None:
        """(channels, pixels per channel) of a conv site (its shape is (C, H, W)), else None."""
        shapes = getattr(snap, "dropout_shapes", ())
        shape = tuple(shapes[i]) if i < len(shapes) else ()
        return (int(shape[0]), int(np.prod(shape[1:]))) if len(shape) == 3 else None

    @staticmethod
    def channel_fractions(snap: Snapshot, i: int) -> np.ndarray | None:
        """(B', C) the kept fraction of each sent channel of a conv site (1 or 0 everywhere when
        the dropout is channel-wise), or None for a vector site."""
        channels = DropoutPanel._channels(snap, i)
        mask = np.asarray(snap.dropout_masks[i], dtype=bool) if i < len(snap.dropout_masks) else None
        if channels is None or mask is None or mask.ndim != 2 or not mask.size:
            return None
        c, per = channels
        whole = mask.shape[1] // per
        return mask[:, :whole * per].reshape(mask.shape[0], whole, per).mean(axis=2)

    def _layer_masks(self, snap: Snapshot) -> dict[int, tuple[float, np.ndarray]]:
        """Layer index -> (p, first example's mask) for layers a dropout site acts on.

        Site "input" is layer 0; a site named like a weight matrix acts on that matrix's outputs.
        """
        layer_of = {"input": 0} | {name: k + 1 for k, name in enumerate(snap.layer_names)}
        out: dict[int, tuple[float, np.ndarray]] = {}
        for i, site in enumerate(snap.dropout_sites):
            rate, mask = self._site_parts(snap, i)
            if site in layer_of:
                row = mask[0] if mask.ndim == 2 and mask.shape[0] > 0 else np.ones(0, bool)
                channels = self._channels(snap, i)
                if channels and row.size:  # a conv site: a channel is drawn kept if any pixel is
                    c, per = channels
                    row = row[:c * per].reshape(-1, per).any(axis=1)
                out[layer_of[site]] = (rate, row)
        return out

    def _draw_network(self, snap: Snapshot) -> None:
        theme = self.theme
        sizes = [max(0, int(s)) for s in snap.layer_sizes]
        n_layers = len(sizes)
        masks = self._layer_masks(snap)
        train = self._mode == "train"
        xs, ys, active, colours, starts = [], [], [], [], []
        ticks = []
        for k, size in enumerate(sizes):
            shown = min(size, MAX_DRAWN_NEURONS)
            starts.append(len(xs))
            rate, row = masks.get(k, (0.0, np.ones(0, bool)))
            colour = theme.accent if k == 0 else theme.val if k == n_layers - 1 else theme.train
            for j in range(shown):
                xs.append(float(k))
                ys.append((shown - 1) / 2.0 - j)
                dropped = train and j < row.size and not row[j]
                active.append(not dropped)
                colours.append(colour)
            name = "input" if k == 0 else (snap.layer_names[k - 1] if k - 1 < len(snap.layer_names)
                                             else f"layer {k}")
            if n_layers <= 6:
                lines = [name, plural(size, "unit") if shown == size else f"{shown} of {size} …"]
                lines += [f"p = {rate:g}"] if k in masks else []
            else:  # narrow columns: keep every caption line a few characters wide
                lines = [name, f"{size}" if shown == size else f"{size} …"]
                lines += [f"p={rate:g}"] if k in masks else []
            ticks.append((float(k), "\n".join(lines)))
        starts.append(len(xs))
        x = np.asarray(xs)
        y = np.asarray(ys)
        on = np.asarray(active, dtype=bool)
        # The same pen and brush objects every frame: new ones make pyqtgraph re-render every
        # symbol (~60 renders, ~8 ms a frame, measured).
        styles = self._neuron_styles(theme)
        brushes = [styles[(c, a)][0] for c, a in zip(colours, active, strict=True)]
        pens = [styles[(c, a)][1] for c, a in zip(colours, active, strict=True)]
        self.neurons.setData(x=x, y=y, brush=brushes, pen=pens, data=list(active),
                             size=theme.font_pt + 6, symbol="o")
        # Edges between consecutive layers; an edge is faded when either end is dropped.
        a_idx, b_idx = [], []
        for k in range(n_layers - 1):
            left = np.arange(starts[k], starts[k + 1])
            right = np.arange(starts[k + 1], starts[k + 2])
            aa, bb = np.meshgrid(left, right, indexing="ij")
            a_idx.append(aa.ravel())
            b_idx.append(bb.ravel())
        a = np.concatenate(a_idx) if a_idx else np.zeros(0, int)
        b = np.concatenate(b_idx) if b_idx else np.zeros(0, int)
        live = on[a] & on[b] if a.size else np.zeros(0, bool)
        for item, sel in ((self.edges_on, live), (self.edges_off, ~live)):
            ex = np.empty(2 * int(sel.sum()))
            ey = np.empty_like(ex)
            ex[0::2], ex[1::2] = x[a[sel]], x[b[sel]]
            ey[0::2], ey[1::2] = y[a[sel]], y[b[sel]]
            item.setData(ex, ey)
        off = not any(float(r) > 0 for r in snap.dropout_rates)
        key = (tuple(ticks), train, off, theme.name, theme.font_pt)
        if key != self._net_key:  # setTicks and titles relayout: only when they change
            self._net_key = key
            self.net_plot.getAxis("bottom").setTicks([ticks, []])
            _set_title(self.net_plot, "Inference: every neuron active, no mask, weights as trained"
                       if not train else "Training with p = 0: the whole network, nothing dropped"
                       if off else "Training: the sub-network of the first example's mask", theme)
        tallest = max([min(s, MAX_DRAWN_NEURONS) for s in sizes] + [1])
        self.net_plot.setRange(xRange=(-0.6, max(n_layers - 1, 0) + 0.6),
                               yRange=(-tallest / 2.0 - 0.3, tallest / 2.0 + 0.3), padding=0)

    def _neuron_styles(self, theme: Theme) -> dict:
        """{(colour, active): (brush, pen)} for `theme`, built once per theme."""
        if self._styles_theme is not theme:
            dim = _mix(theme.background, theme.foreground, 0.25, 160)
            self._styles = {}
            for c in (theme.accent, theme.val, theme.train):
                self._styles[(c, True)] = (pg.mkBrush(c), pg.mkPen(theme.foreground, width=1))
                self._styles[(c, False)] = (pg.mkBrush(dim), pg.mkPen(dim, width=1))
            self._styles_theme = theme
        return self._styles

    def _layout_masks(self, count: int) -> None:
        """Put `count` mask plots into the layout (one row, or two when there are many)."""
        if count == self._mask_count:
            return
        layout = self.mask_view.ci
        for plot in self.mask_plots:
            if plot in layout.items:
                layout.removeItem(plot)
        cols = count if count <= MASK_COLUMNS else math.ceil(count / 2)
        for i in range(count):
            layout.addItem(self.mask_plots[i], row=i // max(cols, 1), col=i % max(cols, 1))
        self._mask_count = count

    def _draw_masks(self, snap: Snapshot) -> None:
        count = min(len(snap.dropout_sites), MAX_SITES)
        self._layout_masks(count)
        crowded = count > 4  # narrow tiles: break the caption after the fraction
        title_pt = self.theme.font_pt - (2 if crowded else 0)
        train = self._mode == "train"
        off = not any(float(r) > 0 for r in snap.dropout_rates)
        started = any(np.asarray(m).size for m in snap.dropout_masks)
        self.mask_note.setText(INFERENCE_NOTE if not train else OFF_NOTE if off and started
                               else TRAIN_NOTE if started else
                               "Masks appear with the first training step (Space or Run).")
        hide = train and off and started  # nothing to show but all-kept grids: the note says it
        if self.mask_view.isHidden() != hide:
            self.mask_view.setVisible(not hide)
            self._grid.setRowStretch(3, 0 if hide else 3)  # the network and bars get the room
        captions = []
        for i in range(count):
            site = snap.dropout_sites[i]
            rate, mask = self._site_parts(snap, i)
            image = self.mask_images[i]
            rows, units = (mask.shape if mask.ndim == 2 else (0, 0))
            if mask.ndim != 2 or mask.size == 0:
                image.clear()
                caption = (f"{site}: {plural(units, 'unit')}, nothing to drop" if rows or units
                           else f"{site}: no training step yet")
            elif not train:  # what inference computes: no mask, every unit kept, no rescale
                self._set_mask_image(i, np.ones_like(mask))
                caption = (f"{site}: no mask, all {units} units kept" if units != 1
                           else f"{site}: no mask, its 1 unit kept")
            elif off:  # say so instead of an unexplained all-kept grid
                image.clear()
                caption = f"{site}: p = 0, dropout is off"
            else:
                dropped = 1.0 - float(mask.mean())
                self._set_mask_image(i, mask)
                caption = f"{site}: dropped {100 * dropped:.1f}% (p = {rate:g})"
                fractions = self.channel_fractions(snap, i)
                if fractions is not None:
                    whole = np.isin(fractions, (0.0, 1.0)).all()
                    caption += (", by channel" if whole and snap.hparams.dropout_kind == "channel"
                                else ", by element")
            channels = self._channels(snap, i)
            detail = (f"{plural(rows, 'example')} × {plural(units, 'unit')}" if mask.size else "")
            if channels and mask.size:
                detail = f"{rows} examples × {units // channels[1]} ch. × {channels[1]} px"
            if crowded and mask.size:  # two short lines instead of two long ones
                head = caption.replace(" (p", "<br>(p", 1).replace(": ", ":<br>", 1)
                shown = f"{head} · {rows}×{units}"
            else:
                shown = (f"{caption}<br><span style='font-size:{max(title_pt - 2, 7)}pt'>"
                         f"{detail}</span>")
            _set_title(self.mask_plots[i], f"<div align='center'>{shown}</div>", self.theme,
                       title_pt)
            captions.append(caption)
        self.mask_captions = captions

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str, ghosts=()) -> None:
        """Compare mode (from the window, every tick): (name, History, colour slot) per run."""
        self._runs = list(runs)[:MAX_RUNS_SHOWN]
        self._selected = selected
        self._dirty = True

    def set_run_snapshots(self, snapshots: dict[str, Snapshot]) -> None:
        """Compare mode: each run's latest Snapshot by name (its masks are drawn side by side)."""
        self._run_snaps = dict(snapshots)
        self._dirty = True

    def _show_run_masks(self, shown: bool) -> None:
        if self.run_mask_view.isHidden() == shown:
            self.run_mask_view.setVisible(shown)
            self._grid.setRowStretch(4, 3 if shown else 0)
        if not shown:
            self.run_mask_captions = []

    def _draw_run_masks(self) -> None:
        """Compare mode: the chosen site's mask of each run, captioned with its name (in its colour)
        and p, so runs with different p show visibly different masks. One run: nothing (hidden)."""
        site = self.site_combo.currentText()
        runs = [(n, slot, self._run_snaps[n]) for n, _h, slot in self._runs if n in self._run_snaps
                and "masks" in self._run_snaps[n].measured]
        if len(runs) < 2 or not site:
            self._show_run_masks(False)
            return
        self._show_run_masks(True)
        train = self._mode == "train"
        captions = []
        for i, (plot, image) in enumerate(zip(self.run_mask_plots, self.run_mask_images, strict=True)):
            if i >= len(runs):
                plot.setVisible(False)
                image.clear()
                continue
            plot.setVisible(True)
            name, slot, snap = runs[i]
            k = snap.dropout_sites.index(site) if site in snap.dropout_sites else -1
            rate, mask = self._site_parts(snap, k) if k >= 0 else (0.0, np.ones((0, 0), bool))
            if mask.ndim != 2 or mask.size == 0:
                image.clear()
                text = f"{name} {site}: p = {rate:g}, no mask yet" if k >= 0 else f"{name}: no {site}"
            else:
                shown = mask if train else np.ones_like(mask)  # inference: every unit kept
                image.setImage(shown.astype(np.uint8), autoLevels=False, levels=(0, 1))
                image.setRect(0, 0, mask.shape[1], mask.shape[0])
                plot.setRange(xRange=(0, mask.shape[1]), yRange=(0, mask.shape[0]), padding=0)
                dropped = 1.0 - float(shown.mean())
                text = f"{name} {site}: p = {rate:g}, dropped {100 * dropped:.1f}%"
            c = run_color(slot, self.theme.name)
            head, _, rest = text.partition(" ")
            _set_title(plot, f"<span style='color:{c}'><b>{head}</b></span> {rest}", self.theme,
                       self.theme.font_pt - 1)
            captions.append(text)
        self.run_mask_captions = captions

    def _set_mask_image(self, i: int, mask: np.ndarray) -> None:
        self.mask_images[i].setImage(mask.astype(np.uint8), autoLevels=False, levels=(0, 1))
        self.mask_images[i].setRect(0, 0, mask.shape[1], mask.shape[0])
        self.mask_plots[i].setRange(xRange=(0, mask.shape[1]), yRange=(0, mask.shape[0]),
                                    padding=0)

    def _show_bars_empty(self, message: str) -> None:
        """The bar chart's empty state: no axes with a made-up range, one line saying why."""
        self.bar_pre.setOpts(x=[], height=[])
        self.bar_post.setOpts(x=[], height=[])
        self.bar_dropped.setData([], [])
        self.bar_zero.hide()
        self.bar_legend.hide()
        self.bar_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.bar_empty.setHtml(f"<div align='center' style='color:{self.theme.foreground}'>"
                               f"{message}</div>")
        self.bar_empty.setPos(0.5, 0.5)
        self.bar_empty.show()
        self._bar_axes(False)

    def _bar_axes(self, shown: bool) -> None:
        if self._bar_axes_shown is shown:
            return  # showing or hiding an axis relayouts the plot: only on a change
        self._bar_axes_shown = shown
        for side in ("left", "bottom"):
            (self.bar_plot.showAxis if shown else self.bar_plot.hideAxis)(side)

    def _draw_bars(self, snap: Snapshot) -> None:
        i = self.site_combo.currentIndex()
        train = self._mode == "train"
        site = (snap.dropout_sites[i] if 0 <= i < len(snap.dropout_sites) else f"site {i}")
        pre = (np.asarray(snap.activation_pre[i], dtype=np.float64).ravel()
               if 0 <= i < len(snap.activation_pre) else np.zeros(0))
        rate, _ = self._site_parts(snap, i) if i >= 0 else (0.0, None)
        for label, text in zip(self.bar_legend.items, (
                ("h  (before dropout)", "y  (after dropout)") if train else
                ("h  (inference, no mask)", "y = h")), strict=False):
            if label[1].text != text:
                label[1].setText(text, color=self.theme.foreground, size=f"{self.theme.font_pt}pt")
        if pre.size == 0:
            never = not any(np.asarray(a).size for a in snap.activation_pre)
            self._show_bars_empty("No training step yet:<br>press Space (Run) to train."
                                  if never else f"{site} has no units to show.")
            _set_title(self.bar_plot, f"One example at {site}", self.theme)
            self.explain_label.setText(self._explain(snap, None, None, rate))
            return
        post = (np.asarray(snap.activation_post[i], dtype=np.float64).ravel()
                if i < len(snap.activation_post) else pre)
        n = min(pre.size, post.size)
        pre, post = pre[:n], post[:n]
        if not train:
            # What inference computes for this example: no mask anywhere upstream either (the
            # trainer's eval forward); y = h. Older snapshots lack it: then the training h.
            inference = snap.activation_inference
            h = (np.asarray(inference[i], dtype=np.float64).ravel()[:n]
                 if i < len(inference) and np.asarray(inference[i]).size >= n else pre)
            pre, post = h, h.copy()
        units = np.arange(n, dtype=np.float64)
        self.bar_pre.setOpts(x=units - 0.2, height=pre, width=0.4)
        self.bar_post.setOpts(x=units + 0.2, height=post, width=0.4)
        gone = (post == 0) & (pre != 0) if train else np.zeros(n, bool)
        self.bar_dropped.setData(x=units[gone] + 0.2, y=np.zeros(int(gone.sum())))
        key = (site, n)
        if key != self._scale_key:  # another site or width: fit it afresh
            self.bar_scale.reset()
            self._scale_key = key
        lo, hi = self.bar_scale.update(float(min(pre.min(), post.min())),
                                       float(max(pre.max(), post.max())))
        margin = 0.04 * (hi - lo)  # room for the × markers sitting on the zero line
        self.bar_plot.setRange(xRange=(-0.7, n - 0.3), yRange=(lo - margin, hi + margin),
                               padding=0)
        if n != self._unit_ticks:  # units are whole numbers: no "0.5" ticks for 2 units
            self._unit_ticks = n
            step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if n / s <= 8)
            self.bar_plot.getAxis("bottom").setTicks([[(float(u), str(u))
                                                       for u in range(0, n, step)], []])
        self.bar_zero.show()
        self.bar_legend.show()
        self._bar_axes(True)
        if not (pre.any() or post.any()):
            self.bar_empty.setHtml(f"<div align='center' style='color:{self.theme.foreground}'>"
                                   f"all {plural(n, 'unit')} are 0 for this example</div>")
            self.bar_empty.setPos((n - 1) / 2.0, (lo + hi) / 2.0)
            self.bar_empty.show()
        else:
            self.bar_empty.hide()
        _set_label(self.bar_plot, "bottom", f"unit of {site} (first {n})", self.theme)
        _set_title(self.bar_plot, f"One example at {site}", self.theme)
        self.explain_label.setText(self._explain(snap, pre, post, rate))

    def _explain(self, snap: Snapshot, pre: np.ndarray | None, post: np.ndarray | None,
                 rate: float) -> str:
        """The equations, filled in with this snapshot's numbers."""
        hidden = sum(int(s) for s in snap.layer_sizes[1:-1])
        if snap.hparams.dropout_kind == "element" and any(
                len(shape) == 3 for shape in getattr(snap, "dropout_shapes", ())):
            # element-wise on a conv net: every pixel of every channel is its own mask entry
            hidden = sum(int(np.prod(shape)) for shape in snap.dropout_shapes[1:])
        if self._mode == "train":
            text = "<b>Train:</b> y = m ⊙ h / (1 − p), m ~ Bernoulli(1 − p) ⇒ E[y] = h."
            if rate > 0:
                text += f" p = {rate:g}: survivors × {1 / (1 - rate):.3g}, dropped → 0 (×)."
            else:
                text += " p = 0 here: no mask, y = h."
            if pre is not None and post is not None and pre.size:
                text += (f"<br>Mean h = {pre.mean():.3g}, mean y = {post.mean():.3g} "
                         "(equal on average over masks, not per example).")
            text += (f"<br>{plural(hidden, 'hidden unit')} → {_pow2_html(hidden)} sub-networks "
                     "share these weights.")
        else:
            text = ("<b>Inference:</b> no mask, every unit kept: y = h, with the weights as "
                    "trained. Inverted dropout already scaled survivors by 1/(1 − p) during "
                    "training, so nothing is rescaled now.")
            if pre is not None and pre.size:
                text += f"<br>Mean h = mean y = {pre.mean():.3g} for this example."
            text += (f"<br>The full network stands in for all {_pow2_html(hidden)} sub-networks "
                     f"of its {plural(hidden, 'hidden unit')}.")
        return text

    def _draw_status(self, snap: Snapshot) -> None:
        rates = [float(r) for r in snap.dropout_rates]
        on = [(s, r) for s, r in zip(snap.dropout_sites, rates, strict=False) if r > 0]
        if not on:
            text = "dropout is off (p = 0): nothing dropped, training = inference"
        else:  # runs of sites sharing a rate, so eight hidden layers still fit on one line
            runs: list[tuple[list[str], float]] = []
            for site, rate in zip(snap.dropout_sites, rates, strict=False):
                if runs and runs[-1][1] == rate:
                    runs[-1][0].append(site)
                else:
                    runs.append(([site], rate))
            text = "dropout on: " + "; ".join(
                (f"{names[0]}…{names[-1]}" if len(names) > 2 else ", ".join(names))
                + f" p = {r:g}" for names, r in runs if r > 0)
            if self._mode == "inference":
                text += " (training only)"
        self.status_label.setText(f"{text}   (step {snap.step})")
