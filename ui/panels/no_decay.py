"""The decay / no_decay parameter groups, live, and the toggle of which kinds are decayed.

    decay:     θ ← (1 − ηλ)θ − η·g̃      (weight matrices)
    no_decay:  θ ← θ − η·g̃              (λ = 0: biases, LayerNorm gains γ and shifts β)

"In every modern transformer training loop you will see a small helper that splits parameters into
two AdamW groups": decaying one-dimensional scale and shift parameters "tends to harm rather than
help" (GPT-3, Appendix B; HuggingFace, fairseq, nanoGPT). This panel lists the optimizer's groups
as they are now (each tensor's name, shape and size, each group's λ and decay per step) from the
snapshot part "param_groups", and toggles which kinds go to no_decay: the setting no_decay_kinds,
sent to the engine like a dock control and applied at the next step. regsim keeps one torch
param_group per kind (weights, biases, norms), so a toggle rewrites that group's λ and name in
place; tensors never move between groups, because torch's load_state_dict pairs saved and live
groups by size, and the divergence recovery restores checkpoints saved before the toggle.
The lesson no_decay_matters (one button away) shows what decaying LayerNorm gains and biases does.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from regsim.hparams import SETTINGS
from regsim.snapshot import History, Snapshot
from regsim.update_code import GroupView
from ui.panels.base import Panel
from ui.panels.style import fill_background, mix
from ui.theme import Theme
from ui.widgets import FlowLayout, LiveLabel

LESSON = "no_decay_matters"
KIND_WORDS = {"weight": "weight matrix", "bias": "bias", "norm": "norm γ / β", "embedding": "embedding"}
COLUMNS = ("group", "tensor", "kind", "shape", "parameters", "λ now")
# (biases in no_decay, norms in no_decay) → the no_decay_kinds value
KINDS_OF = {(True, True): "biases+norms", (True, False): "biases", (False, True): "norms",
            (False, False): "none"}


EMBED_NOTE = ("\n\nLive where the network has nn.Embedding tables (the transformer, the embedding MLP on "
              "modular data); the MLP and conv net have none.")

class NoDecayPanel(Panel):
    """The optimizer's param_groups as a live table, and which kinds skip the decay."""

    key = "no_decay"
    title = "Decay groups"  # "no_decay" lost its underscore in the tab bar's font

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._drawn: Snapshot | None = None
        self._dirty = True
        self.groups_shown: tuple[GroupView, ...] = ()  # tests read what is listed

        tip = SETTINGS["no_decay_kinds"].tip
        self.bias_box = QCheckBox("biases → no_decay")
        self.norm_box = QCheckBox("norm γ, β → no_decay")
        self.embed_box = QCheckBox("embeddings → no_decay")
        self.embed_box.setEnabled(False)
        self.embed_box.setToolTip(SETTINGS["decay_embeddings"].tip + EMBED_NOTE)
        self.embed_box.toggled.connect(self._embed_toggled)
        for box in (self.bias_box, self.norm_box):
            box.setToolTip(tip)
            box.toggled.connect(self._toggled)
        self.lesson_button = QPushButton("Run the lesson: decaying gains and biases")
        self.lesson_button.setToolTip(f"Lesson {LESSON}: AdamW at λ = 10 on digits with LayerNorm, "
                                      "no_decay vs decay everything, side by side")
        self.lesson_button.clicked.connect(lambda: self.request.emit("lesson", {"name": LESSON}))
        # A row that wraps in a narrow window (as a QHBoxLayout it asked for 832 px: with the dock,
        # a 1 024 px lecture window could not be had).
        top = FlowLayout()
        for w in (self.bias_box, self.norm_box, self.embed_box, self.lesson_button):
            top.addWidget(w)

        self.status_label = LiveLabel("waiting for the first snapshot…")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setToolTip("The optimizer's param_groups now, one row per tensor: regsim keeps "
                              "one group per kind, named decay or no_decay by the setting.")
        self.note_label = QLabel("Applied at the next optimizer step: each kind is its own torch "
                                 "param_group, whose weight_decay and name are rewritten in place "
                                 "(tensors never move between groups, so checkpoints saved before "
                                 "a toggle still restore).")
        self.note_label.setWordWrap(True)
        root = QVBoxLayout(self)
        root.addLayout(top)
        root.addWidget(self.status_label)
        root.addWidget(self.summary_label)
        root.addWidget(self.table, 1)
        root.addWidget(self.note_label)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def redraw(self) -> None:
        snap = self.snapshot
        if snap is self._drawn and not self._dirty:
            return
        self._drawn, self._dirty = snap, False
        self._draw(snap)

    def reset(self) -> None:
        super().reset()
        self._drawn, self._dirty = None, True
        self.redraw()

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        palette = self.palette()  # the table's cells too
        palette.setColor(QPalette.ColorRole.Base, QColor(theme.background))
        palette.setColor(QPalette.ColorRole.Text, QColor(theme.foreground))
        self.setPalette(palette)
        font = self.font()
        font.setPointSize(theme.font_pt - (8 if theme.name == "slide" else 0))
        self.setFont(font)
        self.table.setFont(font)
        self.table.setPalette(palette)
        self.table.setStyleSheet(f"QTableWidget {{ background: {theme.background}; "
                                 f"color: {theme.foreground}; gridline-color: "
                                 f"{mix(theme.background, theme.foreground, 0.2).name()}; }} "
                                 f"QHeaderView::section {{ background: {theme.background}; "
                                 f"color: {theme.foreground}; font-size: {font.pointSize()}pt; "
                                 "font-weight: bold; }")
        self.table.verticalHeader().setDefaultSectionSize(QFontMetrics(font).height() + 6)
        # Room for the summary's three lines whether shown or empty: nothing below it moves.
        self.summary_label.setFixedHeight(QFontMetrics(font).lineSpacing() * 3 + 6)
        # A fixed header height: the header's own hint lagged one pixel behind after a slide
        # export (measured: every row moved by 1 px on the way back to the screen theme).
        self.table.horizontalHeader().setFixedHeight(QFontMetrics(font).height() + 8)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self._dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------- internals
    def _toggled(self, *_: object) -> None:
        kinds = KINDS_OF[self.bias_box.isChecked(), self.norm_box.isChecked()]
        changes: dict = {"no_decay_kinds": kinds}
        snap = self.snapshot
        if snap is not None and snap.hparams.decay_norms_and_biases:
            changes["decay_norms_and_biases"] = False  # else every group stays decayed
        self.request.emit("update", changes)
        self.status_message.emit(f"no_decay group: {SETTINGS['no_decay_kinds'].choice_labels[kinds]}"
                                 " (at the next step)")

    def _embed_toggled(self, checked: bool) -> None:
        """Embeddings in no_decay (GPT-3 / minGPT) or decayed (nanoGPT): the decay_embeddings setting."""
        self.request.emit("update", {"decay_embeddings": not checked})
        self.status_message.emit("embedding tables: " + ("no_decay (λ = 0)" if checked else "decayed")
                                 + " (at the next step)")

    def _draw(self, snap: Snapshot | None) -> None:
        if snap is None or "param_groups" not in snap.measured or not snap.param_groups:
            self.status_label.setText("waiting for the first snapshot…" if snap is None else
                                      "the groups are read while this panel is shown…")
            self.summary_label.setText("")
            self.table.setRowCount(0)
            self.groups_shown = ()
            for box in (self.bias_box, self.norm_box, self.embed_box):  # nothing to toggle yet
                box.blockSignals(True)
                box.setChecked(False)
                box.setEnabled(False)
                box.blockSignals(False)
            return
        h = snap.hparams
        for box, kind in ((self.bias_box, "bias"), (self.norm_box, "norm")):
            box.blockSignals(True)
            box.setEnabled(True)
            box.setChecked(not h.decay_norms_and_biases and kind in _kinds(h.no_decay_kinds))
            box.blockSignals(False)
        groups = snap.param_groups
        self.groups_shown = groups
        present = {g.kind for g in groups}
        self.embed_box.blockSignals(True)  # live only where the network has embedding tables
        self.embed_box.setEnabled("embedding" in present)
        self.embed_box.setChecked("embedding" in present and not h.decay_embeddings)
        self.embed_box.blockSignals(False)
        self.norm_box.setToolTip(SETTINGS["no_decay_kinds"].tip + (
            "" if "norm" in present else "\n\n(This network has no LayerNorm: layer_norm = true "
                                         "adds one after each hidden Linear.)"))
        rows = sorted(((g, t) for g in groups for t in g.tensors),
                      key=lambda gt: (gt[0].name != "decay", gt[0].kind))
        self.table.setRowCount(len(rows))
        fg, bg = QColor(self.theme.foreground), QColor(self.theme.background)
        tint = {"decay": mix(bg, self.theme.train, 0.25), "no_decay": mix(bg, self.theme.val, 0.2)}
        for r, (g, t) in enumerate(rows):
            cells = (g.name, t.name, KIND_WORDS.get(t.kind, t.kind), "×".join(str(s) for s in t.shape),
                     f"{t.numel:,}", f"{g.lam:g}")
            for c, text in enumerate(cells):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                item.setText(text)
                item.setForeground(fg)
                item.setBackground(tint.get(g.name, bg))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                                      if c >= 4 else Qt.AlignmentFlag.AlignLeft
                                      | Qt.AlignmentFlag.AlignVCenter)
        self.summary_label.setText(self._summary(groups, h, snap.lr))
        lesson = "" if "norm" in present else "   (no LayerNorm here: the lesson's net has one)"
        self.status_label.setText(f"step {snap.step}: {len(groups)} torch param_groups, "
                                  f"{sum(g.numel for g in groups):,} parameters{lesson}")

    @staticmethod
    def _summary(groups: tuple[GroupView, ...], h, lr: float) -> str:
        lines = []
        for role in ("decay", "no_decay"):
            gs = [g for g in groups if g.name == role]
            n_t, n_p = sum(len(g.tensors) for g in gs), sum(g.numel for g in gs)
            lam = max((g.lam for g in gs), default=0.0)
            if role == "decay" and lam > 0 and h.decay_mode != "l2":
                rate = lr * (lam / h.lr if h.decay_mode == "decoupled_paper" else lam)
                how = f"θ ← θ·(1 − {rate:.3g}) each step before the gradient step"
            elif role == "decay" and lam > 0:
                how = "λθ added to the gradient (L2)"
            else:
                how = "not decayed (λ = 0)" if role == "no_decay" else "λ = 0: nothing is decayed"
            lines.append(f"<b>{role}</b>: {n_t} tensors, {n_p:,} parameters, λ = {lam:g} — {how}")
        if h.decay_norms_and_biases:
            lines.append("'also decay biases and norms' is on (dock): every group is decayed; a "
                         "toggle here turns it off.")
        return "<br>".join(lines)


def _kinds(value: str) -> set[str]:
    """The kinds a no_decay_kinds value puts in no_decay ("biases+norms" → {"bias", "norm"})."""
    return {kind for kind, word in (("bias", "biases"), ("norm", "norms")) if word in value}
