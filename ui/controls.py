"""The control dock: every setting a user can change, live where the engine allows it.

Live settings (p, λ, decay mode, optimizer, lr, batch size, schedule, …) are sent as `live_changed`
and take effect at the engine's next optimizer step. Settings that change the data or the network
(dataset, hidden sizes, seed, …) are sent as `rebuild_requested`: the window resets the run with them.
Widgets are synced from the engine's hparams inside `signals_blocked`, so a sync never echoes back.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider
from superqt.utils import signals_blocked

from regsim.hparams import SETTINGS, Control, HParams, Setting
from regsim.presets import list_presets, load_preset
from ui.widgets import LiveLabel, drawable_text

# The dock's groups: which settings it shows, in which order. Everything about each setting (range,
# step, label, tooltip, live or new run) comes from regsim.hparams.SETTINGS.
GROUPS = (
    ("Data and network (new run)", ("dataset", "architecture", "hidden", "seed", "modulus", "operation",
                                    "train_fraction")),
    ("Regularization (live)", ("dropout", "input_dropout", "dropout_kind", "weight_decay", "decay_mode",
                               "normalized_decay", "decay_norms_and_biases", "decay_embeddings",
                               "label_smoothing")),
    ("Optimization (live)", ("optimizer", "lr", "momentum", "betas", "batch_size", "grad_clip",
                             "schedule", "warmup_steps", "total_steps", "min_lr_ratio")),
    ("Transformer", ("n_layer", "n_head", "n_embd", "embd_dropout", "attn_dropout", "resid_dropout",
                     "ffn_dropout", "answer_only")),
)
SHOWN = tuple(name for _, names in GROUPS for name in names)
LIVE_FIELDS = tuple(n for n in SHOWN if SETTINGS[n].live)
REBUILD_FIELDS = tuple(n for n in SHOWN if not SETTINGS[n].live)
# Every widget: (attribute on ControlPanel, setting, its Control).
WIDGETS = tuple((c.attr or n, SETTINGS[n], c) for n in SHOWN for c in SETTINGS[n].controls)
# Each widget's tooltip: the setting's words and math, then the allowed range.
TIPS = {attr: "\n".join(t for t in ((c.tip or s.tip), s.allowed_text()) if t) for attr, s, c in WIDGETS}
# Log sliders move over these values in each decade (1, 1.5, 2, 3, 5, 7 × 10ᵏ): a drag ends on a number
# a lecturer would say, and neighbouring stops differ by at most 1.5× (the old 10-per-decade stops
# gave 0.00126 and 0.00158).
NICE_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
P_STEP = SETTINGS["dropout"].controls[0].step  # drop-rate sliders snap to multiples of this (0.05)


class LogSlider(QWidget):
    """A slider over decades that stops on round numbers (NICE_MANTISSAS × 10ᵏ), with an optional
    explicit zero at its left end."""

    valueChanged = Signal(float)

    def __init__(self, lo: float, hi: float, zero: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lo_exp, hi_exp = math.floor(math.log10(lo) + 1e-9), math.floor(math.log10(hi) + 1e-9)
        self.values = [float(f"{m * 10 ** e:.3g}") for e in range(lo_exp, hi_exp + 1)
                       for m in NICE_MANTISSAS if lo * (1 - 1e-9) <= m * 10 ** e <= hi * (1 + 1e-9)]
        self.zero = zero
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-1 if zero else 0, len(self.values) - 1)
        self.slider.setPageStep(len(NICE_MANTISSAS))  # PgUp/PgDn: a decade
        self.label = QLabel()
        self.label.setMinimumWidth(52)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)
        self._moved(self.slider.value())

    def value(self) -> float:
        return self._to_value(self.slider.value())

    def _to_value(self, pos: int) -> float:
        if self.zero and pos < 0:
            return 0.0
        return self.values[max(0, min(len(self.values) - 1, pos))]

    def setValue(self, v: float) -> None:  # noqa: N802 (Qt naming)
        """Show `v` (the engine's value, which need not be a stop): the thumb goes to the nearest
        stop in log space, the label shows `v` itself."""
        if self.zero and v <= 0:
            pos = -1
        else:
            lv = math.log10(max(v, 1e-30))
            pos = min(range(len(self.values)), key=lambda i: abs(math.log10(self.values[i]) - lv))
        with signals_blocked(self.slider):
            self.slider.setValue(pos)
        self.label.setText(_fmt(v))

    def _moved(self, pos: int) -> None:
        v = self._to_value(pos)
        self.label.setText(_fmt(v))
        self.valueChanged.emit(v)


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:.3g}"


class ControlPanel(QWidget):
    """Every setting, grouped as the issue of a lecture needs them: run controls first (always
    visible, even in a short window), then preset, data and network, regularization, optimization.

    Widgets never hold a value the engine does not have: `set_hparams` shows the engine's settings,
    a rejected value is replaced by the last good one (the window says why in its status bar), and
    typed numbers are sent once, when editing finishes (not 9, 99, 999 while typing 999999)."""

    live_changed = Signal(dict)  # {field: value} to apply at the next step
    rebuild_requested = Signal(dict)  # {field: value} that need a new run
    preset_chosen = Signal(str)
    load_preset_file = Signal()
    save_preset_file = Signal()
    run_toggled = Signal()
    step_clicked = Signal()
    reset_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(MIN_WIDTH)
        root = QVBoxLayout(self)
        self._h: HParams | None = None
        self._sent: dict[str, float] = {}  # last snapped drop rate sent, per slider

        # --- run controls (first: a visible way to start, whatever the window's height)
        box = QGroupBox("Run")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.run_btn = QPushButton("Run")
        self.run_btn.setToolTip("Run / pause training (Space)")
        self.step_btn = QPushButton("Step")
        self.step_btn.setToolTip("One optimizer step (N)")
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.setToolTip("New weights, same settings (R)")
        for b in (self.run_btn, self.step_btn, self.reset_btn):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space belongs to the run shortcut
            row.addWidget(b)
        lay.addLayout(row)
        self.device_label = LiveLabel("device: starting…")
        self.rate_label = LiveLabel("step 0 · 0 steps/s")
        lay.addWidget(self.device_label)
        lay.addWidget(self.rate_label)
        root.addWidget(box)

        # --- preset
        box = QGroupBox("Preset")
        lay = QHBoxLayout(box)
        self.preset = QComboBox()
        self.preset.addItem(CUSTOM)
        self.preset.setItemData(0, "The current settings match no bundled preset",
                                Qt.ItemDataRole.ToolTipRole)
        self._presets: dict[str, HParams] = {}
        for name, desc in list_presets().items():
            self.preset.addItem(name)
            self.preset.setItemData(self.preset.count() - 1, desc, Qt.ItemDataRole.ToolTipRole)
            try:
                self._presets[name] = load_preset(name)
            except ValueError:  # a damaged bundled preset: listed, never shown as matching
                pass
        self.preset.setToolTip("Load a bundled preset (starts a new run). Shows the preset the "
                               "current settings match, or “custom”.")
        self.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset.setMinimumContentsLength(8)
        self.load_btn = QToolButton()  # tool buttons: as narrow as their text (the dock's width)
        self.load_btn.setText("Open…")
        self.load_btn.setToolTip("Load a preset JSON file (Ctrl+O)")
        self.save_btn = QToolButton()
        self.save_btn.setText("Save…")
        self.save_btn.setToolTip("Save the current settings as a preset JSON file (Ctrl+S)")
        lay.addWidget(self.preset, 1)
        lay.addWidget(self.load_btn)
        lay.addWidget(self.save_btn)
        root.addWidget(box)

        # --- the settings, built from their descriptions (regsim.hparams.SETTINGS)
        self._widgets: dict[str, QWidget] = {}
        for title, names in GROUPS:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for name in names:
                s = SETTINGS[name]
                for c in s.controls:
                    w = make_widget(s, c)
                    self._widgets[c.attr or name] = w
                    setattr(self, c.attr or name, w)
                    if c.kind == "check":
                        form.addRow(w)  # the whole row: no empty label column beside it
                    else:
                        form.addRow(c.label or s.label, w)
            root.addWidget(box)
        root.addStretch(1)

        # Combo boxes as wide as the dock gives them, not as their longest item: the dock's minimum
        # width is the window's, and "decoupled (AdamW / SGDW)" alone cost 60 px of it.
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        # drawable_text: Qt draws the hat of v̂ / m̂ away from its letter otherwise (ui/widgets.py).
        self._tips = {attr: drawable_text(tip) for attr, tip in TIPS.items()}
        for attr, tip in self._tips.items():
            self._widgets[attr].setToolTip(tip)

        # The global p is not the engine's rate while per-layer rates (layer_dropout, set in the
        # Dropout masks panel or a preset) override it: a note under it says so and lists them.
        self.layer_p_note = _layer_p_note(self._widgets["dropout"])

        # --- wiring
        self.preset.activated.connect(self._preset_activated)
        self.load_btn.clicked.connect(self.load_preset_file)
        self.save_btn.clicked.connect(self.save_preset_file)
        self.run_btn.clicked.connect(self.run_toggled)
        self.step_btn.clicked.connect(self.step_clicked)
        self.reset_btn.clicked.connect(self.reset_clicked)
        for attr, setting, c in WIDGETS:
            self._connect(self._widgets[attr], setting, c)
        # Space in a number field would type a space it cannot use; it runs/pauses instead. Only
        # the text field (Hidden) keeps its spaces.
        self._space = _SpaceToShortcut(self)
        for box in self.findChildren(QAbstractSpinBox):
            box.installEventFilter(self._space)
            box.findChild(QLineEdit).installEventFilter(self._space)

    def _live(self, **changes: Any) -> None:
        self.live_changed.emit(changes)

    def _connect(self, w: QWidget, s: Setting, c: Control) -> None:
        """Send the widget's changes: live ones at the next step, the others as a new run."""
        name = s.name
        if c.kind == "p":
            w.valueChanged.connect(lambda v: self._snapped(w, name, v))
        elif c.kind == "text":
            w.editingFinished.connect(lambda: self._text_edited(w, name))
        elif c.kind == "choice":
            w.currentIndexChanged.connect(lambda _: self._send(name, w.currentData()))
        elif c.kind == "check":
            w.toggled.connect(lambda b: self._send(name, bool(b)))
        elif len(s.controls) > 1:  # one setting, several boxes (Adam's β1, β2): send them together
            parts = [self._widgets[p.attr] for p in s.controls]
            w.valueChanged.connect(lambda _: self._send(name, tuple(float(b.value()) for b in parts)))
        elif c.kind == "integer":
            w.valueChanged.connect(lambda v: self._send(name, int(v)))
        else:
            w.valueChanged.connect(lambda v: self._send(name, float(v)))

    def _send(self, name: str, value: Any) -> None:
        if SETTINGS[name].live:
            self._live(**{name: value})
        else:
            self.rebuild_requested.emit({name: value})

    def _snapped(self, slider: QLabeledDoubleSlider, name: str, v: float) -> None:
        """Snap a drop-rate slider to multiples of P_STEP; send only when the snapped value moves
        (a drag across 0.69–0.72 sends 0.70 once)."""
        snapped = round(round(float(v) / P_STEP) * P_STEP, 4)
        if abs(snapped - float(v)) > 1e-9:
            with signals_blocked(slider):
                slider.setValue(snapped)
        if self._sent.get(name) != snapped:
            self._sent[name] = snapped
            if name == "dropout" and self._h is not None and self._h.layer_dropout:
                self._live(dropout=snapped, layer_dropout=())  # p for every layer again
            else:
                self._live(**{name: snapped})

    def _preset_activated(self, index: int) -> None:
        if index > 0:
            self.preset_chosen.emit(self.preset.itemText(index))

    def _text_edited(self, field: QLineEdit, name: str) -> None:
        text = field.text()
        if self._h is not None and text == _as_text(getattr(self._h, name)):
            return  # focus left an unchanged field: no new run
        self._send(name, text)

    def set_hparams(self, h: HParams) -> None:
        """Show `h` in every widget without emitting anything (a rejected value typed into a field
        is replaced too: the field shows what the engine has)."""
        self._h = h
        with signals_blocked_all((*self._widgets.values(), self.preset)):
            for attr, setting, c in WIDGETS:
                w, value = self._widgets[attr], getattr(h, setting.name)
                if len(setting.controls) > 1:
                    value = value[setting.controls.index(c)]
                if c.kind == "choice":
                    w.setCurrentIndex(w.findData(value))
                elif c.kind == "check":
                    w.setChecked(value)
                elif c.kind == "text":
                    w.setText(_as_text(value))
                else:
                    w.setValue(value)
            self.preset.setCurrentIndex(self.matching_preset_index(h))
        self._sent.clear()
        self._sent.update(dropout=h.dropout, input_dropout=h.input_dropout)
        self._update_relevance(h)
        self._show_layer_p(h)

    def _show_layer_p(self, h: HParams) -> None:
        """The per-layer override, when there is one: the global slider then shows the rate the
        layers share if they all share one, and the note lists them ("per layer: 0.5 · 0.2")."""
        layers = h.layer_dropout
        form = self.layer_p_note.parentWidget().layout()
        form.setRowVisible(self.layer_p_note, bool(layers))
        if not layers:
            return
        if len(set(layers)) == 1:
            with signals_blocked(self.dropout):
                self.dropout.setValue(layers[0])
        rates = " · ".join(_fmt(p) for p in layers)
        self.layer_p_note.setText(f"per layer: {rates} — overrides p; moving p sets every layer")
        self.layer_p_note.setToolTip(
            f"layer_dropout = ({', '.join(_fmt(p) for p in layers)}): hidden layer i drops with its "
            f"own pᵢ, the global p ({_fmt(h.dropout)}) is not used. Moving the p slider sets every "
            "hidden layer to it (layer_dropout = []), as 'use global p' in the Dropout masks panel does.")

    def matching_preset_index(self, h: HParams) -> int:
        """The combo index of the bundled preset equal to `h`, or 0 (“custom”)."""
        for name, preset in self._presets.items():
            if preset == h:
                return self.preset.findText(name)
        return 0

    def _update_relevance(self, h: HParams) -> None:
        """Grey out settings the current optimizer, schedule or task does not use (kept in place,
        so the dock does not jump), and say why in the tooltip."""
        for attr, setting, _c in WIDGETS:
            when = setting.used_when
            if when is None:
                continue
            on = getattr(h, when.field) in when.values
            w = self._widgets[attr]
            w.setEnabled(on)
            w.setToolTip(self._tips[attr] + ("" if on else f"\n\n(Now off: {when.why}.)"))

    def set_running(self, running: bool) -> None:
        self.run_btn.setText("Pause" if running else "Run")


def _layer_p_note(slider: QWidget) -> QLabel:
    """A hidden, wrapping note in the slider's form row just below it."""
    note = QLabel()
    note.setObjectName("layer_p_note")
    note.setWordWrap(True)
    note.setStyleSheet("color: #b25d00;")
    form = slider.parentWidget().layout()
    assert isinstance(form, QFormLayout)
    row, _ = form.getWidgetPosition(slider)
    form.insertRow(row + 1, note)  # the whole row: the note wraps under label and slider
    form.setRowVisible(note, False)
    return note


class _SpaceToShortcut(QObject):
    """Lets a bare Space through to the window's Run/pause shortcut from a spin box: a focused
    field accepts the key's ShortcutOverride (so the shortcut never fires); ignoring it here gives
    the shortcut its turn."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and event.key() == Qt.Key.Key_Space
                and event.modifiers() == Qt.KeyboardModifier.NoModifier):
            event.ignore()
            return True
        return False


CUSTOM = "— custom —"
MIN_WIDTH = 270  # the dock never gets narrower: below this the form's values are cut off


def _as_text(value: Any) -> str:
    """A tuple setting as the text field shows it: (64, 64) → "64,64"."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def control_range(s: Setting, c: Control) -> tuple[float, float]:
    """The widget's (min, max): the setting's range on the widget's grid. An open end moves one grid
    step inside (p ∈ [0, 1) snapped to 0.05 → a slider to 0.95; μ ∈ [0, 1) with 3 decimals → 0.999); a
    log slider over a range from 0 has 0 as its first stop and `log_lo` as its second."""
    assert s.lo is not None and s.hi is not None, s.name
    grid = {"p": c.step, "number": 10.0 ** -c.decimals, "integer": 1.0}.get(c.kind, 0.0)
    lo = s.lo + grid if s.lo_open else s.lo
    hi = s.hi - grid if s.hi_open else s.hi
    if c.typed_hi is not None:
        hi = c.typed_hi
    return round(lo, 12), round(hi, 12)


def make_widget(s: Setting, c: Control) -> QWidget:
    """The widget for one Control of a setting, with the setting's range, step and words."""
    if c.kind == "choice":
        combo = QComboBox()
        for value, label in s.choice_labels.items():
            combo.addItem(label, value)
        return combo
    if c.kind == "check":
        return QCheckBox(c.label or s.label)
    if c.kind == "text":
        field = QLineEdit()
        field.setPlaceholderText(c.placeholder)
        return field
    lo, hi = control_range(s, c)
    if c.kind == "log":
        return LogSlider(lo or c.log_lo, hi, zero=lo == 0)
    if c.kind == "p":
        slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        slider.setRange(lo, hi)
        slider.setDecimals(2)
        slider.setSingleStep(c.step)
        slider.setPageStep(2 * c.step)
        return slider
    if c.kind == "integer":
        box = QSpinBox()
        box.setRange(int(lo), int(hi))
        box.setSingleStep(int(c.step))
        box.setKeyboardTracking(False)  # sent once, when typing ends (not 9, 99, 999 …)
        return box
    if c.kind == "number":
        box = _number(lo, hi, c.decimals, c.step)
        if c.special:
            box.setSpecialValueText(c.special)
        return box
    raise ValueError(f"{s.name}: unknown control kind {c.kind!r}")  # pragma: no cover


def _number(lo: float, hi: float, decimals: int, step: float) -> QDoubleSpinBox:
    """A spin box that sends its value once editing is finished (or per arrow click)."""
    w = QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setDecimals(decimals)
    w.setSingleStep(step)
    w.setKeyboardTracking(False)
    return w


class signals_blocked_all:  # noqa: N801 (used like superqt's signals_blocked)
    """Block the signals of several widgets at once (superqt's helper takes one)."""

    def __init__(self, widgets: tuple[QWidget, ...]) -> None:
        self.widgets = widgets
        self._old: list[bool] = []

    def __enter__(self) -> None:
        self._old = [w.blockSignals(True) for w in self.widgets]

    def __exit__(self, *exc: object) -> None:
        for w, old in zip(self.widgets, self._old):
            w.blockSignals(old)
