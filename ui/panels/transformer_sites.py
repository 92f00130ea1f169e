"""Dropout sites: the transformer block drawn with its four dropout sites, each site's live p, this
batch's attention with the dropped connections, and the residual stream's masks.

The original Transformer (Vaswani et al. 2017) drops at three places, the reference table adds the FFN:

    embd   x₀ = m ⊙ (E_tok + E_pos) / (1 − p)
    attn   A = m ⊙ softmax(QKᵀ/√d) / (1 − p)        individual connections, post-softmax, before A·V
    resid  x ← x + m ⊙ W_o·attn(LN₁x) / (1 − p)      the sub-layer output before the residual add
    ffn    x ← x + m ⊙ W₂·gelu(W₁·LN₂x) / (1 − p)    after the FFN's down-projection

Training: the post-softmax weights of the first example of the last batch for the answer query
"=", the connections the attn mask dropped crossed out; below, which channels of the residual stream
each site zeroed at the answer position, and the stream entering the head with dropout on against
eval mode. Eval: the same example's weights without dropout (inverted dropout needs no rescaling).
The sliders send each site's p to the engine, applied at the next step (the modules are edited in
place). The engine sends this part (snapshot part "transformer") only while the panel is shown.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from regsim.snapshot import History, Snapshot, TransformerView
from ui.panels.base import Panel
from ui.panels.style import color, fill_background, mix, set_title, style_plot_item, style_text
from ui.theme import Theme

PRESET = "transformer_grokking"
SITES = ("embd", "attn", "resid", "ffn")
FIELDS = {s: f"{s}_dropout" for s in SITES}
P_STEP = 0.05  # the sliders snap to multiples of this, 0 … 0.95 (p = 1 is not a dropout rate)
SITE_TIPS = {
    "embd": "embd: x₀ = m ⊙ (E_tok[t] + E_pos[i]) / (1 − p), after the embedding + position sum",
    "attn": "attn: A = m ⊙ softmax(QKᵀ/√d) / (1 − p): single attention connections dropped "
            "post-softmax, before A·V",
    "resid": "resid: x ← x + m ⊙ W_o·attn(LN₁x) / (1 − p): the attention sub-layer output before "
             "the residual add (a dropped unit leaves only the skip connection)",
    "ffn": "ffn: x ← x + m ⊙ W₂·gelu(W₁·LN₂x) / (1 − p): after the FFN's down-projection, before the "
           "residual add",
}
# The block diagram, bottom to top: (label, site or "", indent). y = row index.
DIAGRAM = (
    ("tokens  a  ∘  b  =", ""),
    ("E_tok[t] + E_pos[i]", ""),
    ("dropout embd", "embd"),
    ("LN₁ → q, k, v", ""),
    ("softmax(QKᵀ/√d)", ""),
    ("dropout attn (weights)", "attn"),
    ("A·V → W_o", ""),
    ("dropout resid", "resid"),
    ("⊕  x + …", ""),
    ("LN₂ → W₂·gelu(W₁·)", ""),
    ("dropout ffn", "ffn"),
    ("⊕  x + …", ""),
    ("LN_f → head: logits at '='", ""),
)
BLOCK_ROWS = (3, 11)  # the rows repeated per block (× L)
MODES = ("training (masks on)", "eval (no dropout)")


class TransformerSitesPanel(Panel):
    key = "transformer_sites"
    title = "Dropout sites"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._drawn: tuple | None = None
        self.updates: list[dict] = []  # what the sliders sent (tests read it)
        self.sliders: dict[str, QSlider] = {}
        self.value_labels: dict[str, QLabel] = {}
        grid = QGridLayout()
        for col, site in enumerate(SITES):
            name = QLabel(f"p {site}")
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, round(0.95 / P_STEP))
            slider.setMinimumWidth(80)
            slider.setToolTip(SITE_TIPS[site] + "\nApplied at the next optimizer step. Allowed: [0, 1) "
                              "in steps of 0.05.")
            value = QLabel("0.00")
            slider.valueChanged.connect(lambda v, s=site: self._slider_moved(s, v))
            self.sliders[site], self.value_labels[site] = slider, value
            r, c = divmod(col, 2)  # two rows of two: the slide fonts fit 1200 px
            grid.addWidget(name, r, 3 * c)
            grid.addWidget(slider, r, 3 * c + 1)
            grid.addWidget(value, r, 3 * c + 2)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.mode_combo.setToolTip("Training: the masks the last batch drew (dropped connections "
                                   "crossed out). Eval: the same example without dropout: y = h, "
                                   "no rescaling (inverted dropout)")
        self.mode_combo.currentIndexChanged.connect(self._invalidate)
        self.preset_button = QPushButton("Transformer preset")
        self.preset_button.setToolTip(f"Start a new run from the preset {PRESET} (p = 59, "
                                      "a + b mod p, AdamW λ = 1)")
        self.preset_button.setProperty("export_hidden", True)
        self.preset_button.clicked.connect(lambda: self.request.emit("preset", {"name": PRESET}))
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.addLayout(grid)
        buttons = QVBoxLayout()
        buttons.addWidget(self.mode_combo)
        buttons.addWidget(self.preset_button)
        top.addLayout(buttons)
        top.addWidget(self.status_label, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.block_plot = self.view.addPlot(row=0, col=0, rowspan=2)
        self.attn_plot = self.view.addPlot(row=0, col=1)
        self.mask_plot = self.view.addPlot(row=1, col=1)
        self.stream_plot = self.view.addPlot(row=2, col=1)
        self.view.ci.layout.setColumnStretchFactor(0, 2)
        self.view.ci.layout.setColumnStretchFactor(1, 3)
        for plot in (self.block_plot, self.attn_plot, self.mask_plot, self.stream_plot):
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
        # --- the block diagram: one box per row, site boxes filled by their p
        self.block_plot.hideAxis("left")
        self.block_plot.hideAxis("bottom")
        n = len(DIAGRAM)
        self.block_plot.setRange(xRange=(-0.9, 5.4), yRange=(-0.6, n - 0.4), padding=0)
        self.boxes = pg.BarGraphItem(x0=[0.0] * n, x1=[4.0] * n, y0=[i - 0.38 for i in range(n)],
                                     y1=[i + 0.38 for i in range(n)])
        self.block_plot.addItem(self.boxes)
        self.box_texts = []
        for i, (label, _site) in enumerate(DIAGRAM):
            t = pg.TextItem(label, anchor=(0.5, 0.5))
            t.setPos(2.0, i)
            self.block_plot.addItem(t)
            self.box_texts.append(t)
        self.flow = pg.PlotDataItem()  # the arrows between boxes and the two skip connections
        self.block_plot.addItem(self.flow)
        self.repeat_text = pg.TextItem("× L", anchor=(0.5, 0.5))
        self.repeat_text.setPos(-0.55, sum(BLOCK_ROWS) / 2)
        self.block_plot.addItem(self.repeat_text)
        self.bracket = pg.PlotDataItem([-0.15, -0.3, -0.3, -0.15],
                                       [BLOCK_ROWS[0] - 0.45, BLOCK_ROWS[0] - 0.45,
                                        BLOCK_ROWS[1] + 0.45, BLOCK_ROWS[1] + 0.45])
        self.block_plot.addItem(self.bracket)
        # --- attention: rows = (layer, head), columns = key positions, for the answer query
        self.attn_image = pg.ImageItem(axisOrder="row-major")
        self.attn_plot.addItem(self.attn_image)
        self.dropped = pg.ScatterPlotItem(symbol="x", size=14)
        self.attn_plot.addItem(self.dropped)
        self.attn_plot.invertY(True)
        self.empty_text = pg.TextItem("", anchor=(0.5, 0.5))
        self.attn_plot.addItem(self.empty_text, ignoreBounds=True)
        # --- the residual-stream masks at the answer position: rows = sites, columns = channels
        self.mask_image = pg.ImageItem(axisOrder="row-major")
        self.mask_plot.addItem(self.mask_image)
        self.mask_plot.invertY(True)
        self.stream_train = pg.PlotDataItem()
        self.stream_eval = pg.PlotDataItem()
        self.stream_plot.addItem(self.stream_eval)
        self.stream_plot.addItem(self.stream_train)
        self.stream_plot.setXLink(self.mask_plot)

        root = QVBoxLayout(self)
        root.addLayout(top)
        root.addWidget(self.view, 1)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap

    def redraw(self) -> None:
        snap = self.snapshot
        view = None if snap is None else snap.transformer
        key = (id(snap), self.mode_combo.currentIndex(), self.theme.name, id(self.theme))
        if key == self._drawn:
            return
        self._drawn = key
        self._sync_sliders(snap)
        self._draw_block(snap)
        self._draw_view(snap, view)

    def reset(self) -> None:
        super().reset()
        self._drawn = None

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        style_text(self.status_label, theme)
        for label in self.findChildren(QLabel):
            style_text(label, theme)
        self.view.setBackground(theme.background)
        for plot in (self.block_plot, self.attn_plot, self.mask_plot, self.stream_plot):
            style_plot_item(plot, theme)
        font = self.font()
        font.setPointSize(theme.font_pt)
        for t in (*self.box_texts, self.repeat_text, self.empty_text):
            t.setFont(font)
            t.setColor(theme.foreground)
        ink = mix(theme.foreground, theme.background, 0.35)
        self.flow.setPen(pg.mkPen(ink, width=max(1.0, theme.line_width / 2)))
        self.bracket.setPen(pg.mkPen(ink, width=max(1.0, theme.line_width / 2)))
        self.attn_image.setColorMap(pg.colormap.get(theme.colormap))
        self.dropped.setPen(pg.mkPen(theme.val, width=max(2.0, theme.line_width)))
        self.dropped.setBrush(color(theme.val))
        lut = np.array([color(theme.val).getRgb(), mix(theme.background, theme.foreground, 0.12).getRgb(),
                        color(theme.train).getRgb()], dtype=np.ubyte)
        self.mask_image.setLookupTable(lut)
        self.mask_image.setLevels((0, 2))
        self.stream_train.setPen(pg.mkPen(theme.val, width=theme.line_width))
        self.stream_eval.setPen(pg.mkPen(theme.train, width=theme.line_width))
        self._drawn = None
        self.redraw()

    def cleanup(self) -> None:
        """No timers or threads to stop."""

    # -------------------------------------------------------------------------------- sliders
    @property
    def mode(self) -> str:
        return "train" if self.mode_combo.currentIndex() == 0 else "eval"

    def set_site(self, site: str, p: float) -> bool:
        """Send `site`'s p to the engine (applied at the next step); False (and a message naming the
        field and range) for a value the settings refuse or a run that is not a transformer."""
        snap = self.snapshot
        field = FIELDS[site]
        if snap is None or snap.hparams.architecture != "transformer":
            return self._refuse(f"{field}: the run is not a transformer: pick the transformer preset")
        try:
            snap.hparams.replace(**{field: float(p)})
        except ValueError as e:
            return self._refuse(str(e))
        self.updates.append({field: float(p)})
        self.request.emit("update", {field: float(p)})
        return True

    def _refuse(self, message: str) -> bool:
        self.status_label.setText(message)
        self.status_message.emit(message)
        return False

    def _slider_moved(self, site: str, value: int) -> None:
        p = round(value * P_STEP, 2)
        self.value_labels[site].setText(f"{p:.2f}")
        if self._syncing:
            return
        self.set_site(site, p)

    _syncing = False

    def _sync_sliders(self, snap: Snapshot | None) -> None:
        """The sliders show the run's rates (a preset or the dock may have changed them)."""
        on = snap is not None and snap.hparams.architecture == "transformer"
        self._syncing = True
        try:
            for site, slider in self.sliders.items():
                slider.setEnabled(on)
                if on and not slider.isSliderDown():
                    p = getattr(snap.hparams, FIELDS[site])
                    slider.setValue(round(p / P_STEP))
                    self.value_labels[site].setText(f"{p:.2f}")
        finally:
            self._syncing = False

    # -------------------------------------------------------------------------------- drawing
    def _draw_block(self, snap: Snapshot | None) -> None:
        t = self.theme
        h = None if snap is None else snap.hparams
        tf = h is not None and h.architecture == "transformer"
        for item in (self.boxes, self.flow, self.bracket, self.repeat_text, *self.box_texts):
            item.setVisible(snap is not None)  # before any run only the hint: "Press Space"
        brushes = []
        for i, (label, site) in enumerate(DIAGRAM):
            if site:
                p = getattr(h, FIELDS[site]) if tf else 0.0
                on = self.mode == "train" and p > 0
                brushes.append(color(t.val, int(40 + 180 * min(1.0, p / 0.5))) if on
                               else mix(t.background, t.foreground, 0.10))
                state = f"p = {p:.2f}" if self.mode == "train" else "off (eval)"
                self.box_texts[i].setText(f"{label}   {state}")
            else:
                brushes.append(mix(t.background, t.foreground, 0.22))
        edge = pg.mkPen(mix(t.foreground, t.background, 0.4))
        self.boxes.setOpts(brushes=brushes, pens=[edge] * len(DIAGRAM))
        xs, ys = [], []
        for i in range(len(DIAGRAM) - 1):  # the arrows up the middle
            xs += [2.0, 2.0, np.nan]
            ys += [i + 0.38, i + 0.62, np.nan]
        for start, end in ((2, 8), (8, 11)):  # the skip connections, on the right
            xs += [4.0, 4.7, 4.7, 4.0, np.nan]
            ys += [start + 0.1, start + 0.1, end, end, np.nan]
        self.flow.setData(xs, ys, connect="finite")
        layers = h.n_layer if tf else 1
        self.repeat_text.setText(f"× {layers}")
        what = (f"{h.n_layer} block{'s' if h.n_layer > 1 else ''}, {h.n_head} heads, C = {h.n_embd}"
                if tf else "the transformer block")
        set_title(self.block_plot, f"Dropout sites<br>{what}", t, t.font_pt)

    def _draw_view(self, snap: Snapshot | None, view: TransformerView | None) -> None:
        t = self.theme
        train = self.mode == "train"
        if snap is None or snap.hparams.architecture != "transformer" or view is None:
            if snap is None:
                msg = "Press Space to train"
            elif snap.hparams.architecture != "transformer":
                msg = (f"This run is {'an MLP' if snap.hparams.architecture == 'mlp' else 'a conv net'}:"
                       f"\npick the transformer preset\n({PRESET})")
            else:
                msg = "Press Space to train:\nthe sites show after a step"
            self.empty_text.setText(msg)
            self.empty_text.setVisible(True)
            self.empty_text.setPos(0.5, 0.5)
            self.attn_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            self.attn_image.clear()
            self.dropped.setData([], [])
            self.mask_image.clear()
            self.stream_train.setData([], [])
            self.stream_eval.setData([], [])
            set_title(self.attn_plot, "Attention of the answer '=' (post-softmax)", t, t.font_pt)
            set_title(self.mask_plot, "Residual-stream dropout at '='", t, t.font_pt)
            set_title(self.stream_plot, "Stream into the head", t, t.font_pt)
            self.status_label.setText("" if snap is None else "needs a transformer run")
            for plot in (self.attn_plot, self.mask_plot):
                plot.getAxis("left").setTicks([[]])
                plot.getAxis("bottom").setTicks([[]])
            return
        self.empty_text.setVisible(False)
        att = view.attention if train else view.attention_eval  # (L, H, T)
        L, H, T = att.shape
        rows = att.reshape(L * H, T)  # the answer query of every (layer, head)
        self.attn_image.setImage(rows, levels=(0.0, max(1e-6, float(rows.max()))))
        self.attn_image.setRect(0, 0, T, L * H)
        kept = view.attention_kept.reshape(L * H, T)
        if train:
            r, c = np.nonzero(~kept)
            self.dropped.setData(c + 0.5, r + 0.5)
        else:
            self.dropped.setData([], [])
        self.attn_plot.setRange(xRange=(0, T), yRange=(0, L * H), padding=0.02)
        self.attn_plot.getAxis("bottom").setTicks([[(i + 0.5, w) for i, w in enumerate(view.tokens)]])
        self.attn_plot.getAxis("left").setTicks([[(i + 0.5, f"h{i // H}.{i % H + 1}")
                                                  for i in range(L * H)]])
        n_drop = int((~kept).sum()) if train else 0
        p_attn = view.rates[SITES.index("attn")]
        line = (f"dropped: {n_drop} of {kept.size} connections (×)" if train
                else "eval: no connection dropped")
        set_title(self.attn_plot, f"Attention of the answer '=' (post-softmax), per layer.head"
                  f"<br>{line} · p attn = {p_attn:.2f}", t, t.font_pt)
        # residual stream: the answer position's row of each (C-wide) site mask
        labels, mask_rows = [], []
        for site in ("embd", "resid", "ffn"):
            for li, m in enumerate(view.masks[site]):
                labels.append("embd" if site == "embd" else f"h{li}.{site}")
                mask_rows.append(m[-1])
        masks = np.stack(mask_rows)  # (rows, C) True = kept
        img = np.where(masks, 2, 0) if train else np.full(masks.shape, 2)  # eval: every channel kept
        C = masks.shape[1]
        self.mask_image.setImage(img.astype(float), levels=(0, 2))
        self.mask_image.setRect(0, 0, C, len(labels))
        self.mask_plot.setRange(xRange=(0, C), yRange=(0, len(labels)), padding=0.02)
        self.mask_plot.getAxis("left").setTicks([[(i + 0.5, w) for i, w in enumerate(labels)]])
        self.mask_plot.getAxis("bottom").setTicks(None)
        zeroed = int((~masks).sum()) if train else 0
        set_title(self.mask_plot, f"Residual-stream dropout at '=': channels zeroed {zeroed} of "
                  f"{masks.size}" + ("" if train else " (eval: none)"), t, t.font_pt)
        x = np.arange(len(view.stream_eval)) + 0.5
        self.stream_eval.setData(x, view.stream_eval)
        if train:
            self.stream_train.setData(x, view.stream_train)
        else:
            self.stream_train.setData([], [])
        on = f"<span style='color:{t.val}'>training (dropout on)</span> vs " if train else ""
        set_title(self.stream_plot, f"Stream into the head at '=': {on}"
                  f"<span style='color:{t.train}'>eval</span>", t, t.font_pt)
        self.stream_plot.getAxis("bottom").setLabel("channel", color=t.foreground,
                                                    **{"font-size": f"{t.font_pt}pt"})
        seq = " ".join(view.tokens[:-1])
        path = "answer-only path" if view.answer_only else "full forward"
        self.status_label.setText(f"step {snap.step} · example {seq} = {view.predicted} (eval "
                                  f"prediction) · {path}")

    def _invalidate(self, *_: object) -> None:
        self._drawn = None
        self.redraw()
