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

from regsim.hparams import DATASETS, HParams
from regsim.presets import list_presets, load_preset
from ui.widgets import LiveLabel

TIPS = {
    "dropout": "Drop rate p of every hidden layer.\nTraining: y = m ⊙ h / (1 − p), m ~ Bernoulli(1 − p), so "
               "E[y] = h.\nInference: y = h (inverted dropout needs no rescaling).\n"
               "The original recipe uses p = 0.5 on fully-connected layers; modern LLMs use 0.",
    "input_dropout": "Drop rate on the input features (0–0.2 is typical; corrupting inputs can hurt more "
                     "than help).",
    "weight_decay": "λ: the tax on weight magnitude.\nL2: loss + (λ/2)‖θ‖², gradient g + λθ.\n"
                    "Decoupled: θ ← (1 − ηλ)θ each step, then the optimizer's update.\n"
                    "Bayesian view: a Gaussian prior N(0, σ²) with λ = 1/(2σ²).\n"
                    "Vision models: λ ≈ 1e-4; LLMs (AdamW): λ = 0.1.",
    "decay_mode": "L2: λθ is added to the gradient (for Adam it is then divided by √v̂: uneven decay).\n"
                  "Decoupled: θ ← (1 − ηλ)θ applied to the weights directly (AdamW, SGDW).\n"
                  "For plain SGD the two are the same update.",
    "optimizer": "sgd: θ ← θ − η g\nmomentum: v ← μv + g; θ ← θ − ηv\n"
                 "adam: θ ← θ − η m̂ / (√v̂ + ε)  (with decoupled decay: AdamW)",
    "lr": "Learning rate η (peak value when a schedule is on). With AdamW the best λ does not depend "
          "on η; with Adam + L2 changing η changes the effective regularization.",
    "batch_size": "Examples per step. Larger batches reduce gradient noise (itself a mild regularizer).",
    "schedule": "constant, or warmup_cosine: linear warmup, then cosine decay to min_lr_ratio × lr "
                "(the LLaMA recipe: 2000 warmup steps, cosine to 10%).",
    "decay_norms_and_biases": "Off (the usual no_decay split, GPT-3 / nanoGPT): biases and norm "
                              "parameters are not decayed; only weight matrices pay the tax.",
    "hidden": "Hidden layer widths, e.g. 64,64. Changing it starts a new run.",
    "dataset": "Changing the dataset starts a new run.",
    "seed": "Seeds the data, the initial weights and the dropout masks. Changing it starts a new run.",
    "momentum": "Momentum μ (SGD + momentum): v ← μv + g; θ ← θ − ηv.\nThe step is about η/(1 − μ) "
                "along a steady gradient: μ = 0.9 takes ~10× larger effective steps than plain SGD.",
    "beta1": "Adam's β1: m ← β1·m + (1 − β1)·g, the running mean of the gradient (0.9 almost always).",
    "beta2": "Adam's β2: v ← β2·v + (1 − β2)·g², the running mean of g². 0.999 is the default; LLM "
             "recipes use 0.95, which adapts faster after a loss spike.",
    "grad_clip": "Max global gradient norm c: g ← g · min(1, c / ‖g‖). 0 turns clipping off.\n"
                 "The LLaMA recipe clips at 1.0.",
    "label_smoothing": "Label smoothing ε: the target is (1 − ε)·one-hot + ε/C, so the network is never "
                       "asked for infinite logits (classification only; 0.1 in the original Transformer).",
    "warmup_steps": "warmup_cosine: the learning rate rises linearly from η/warmup to η over these steps.",
    "total_steps": "warmup_cosine: the cosine reaches its floor (min lr ratio × η) at this step and "
                   "stays there.",
    "min_lr_ratio": "warmup_cosine: the floor of the cosine as a fraction of η (the LLaMA recipe: 0.1).",
}

LIVE_FIELDS = ("dropout", "input_dropout", "weight_decay", "decay_mode", "optimizer", "lr",
               "batch_size", "schedule", "decay_norms_and_biases", "momentum", "betas", "grad_clip",
               "label_smoothing", "warmup_steps", "total_steps", "min_lr_ratio")
# Log sliders move over these values in each decade (1, 1.5, 2, 3, 5, 7 × 10ᵏ): a drag ends on a number
# a lecturer would say, and neighbouring stops differ by at most 1.5× (the old 10-per-decade stops
# gave 0.00126 and 0.00158).
NICE_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
P_STEP = 0.05  # dropout sliders snap to multiples of this (a drag to 0.70 ended at 0.73)
REBUILD_FIELDS = ("dataset", "hidden", "seed")


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

        # --- data and network
        box = QGroupBox("Data and network (new run)")
        form = QFormLayout(box)
        self.dataset = QComboBox()
        self.dataset.addItems(list(DATASETS))
        self.hidden = QLineEdit()
        self.hidden.setPlaceholderText("e.g. 64,64")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setKeyboardTracking(False)
        form.addRow("Dataset", self.dataset)
        form.addRow("Hidden", self.hidden)
        form.addRow("Seed", self.seed)
        root.addWidget(box)

        # --- regularization
        box = QGroupBox("Regularization (live)")
        form = QFormLayout(box)
        self.dropout = _p_slider(0.9)
        self.input_dropout = _p_slider(0.5)
        self.weight_decay = LogSlider(1e-6, 1.0, zero=True)
        self.decay_mode = QComboBox()
        self.decay_mode.addItem("decoupled (AdamW / SGDW)", "decoupled")
        self.decay_mode.addItem("L2 penalty in the gradient", "l2")
        self.decay_all = QCheckBox("also decay biases and norms")
        self.label_smoothing = _number(0.0, 0.99, 2, 0.05)
        form.addRow("Dropout p", self.dropout)
        form.addRow("Input dropout", self.input_dropout)
        form.addRow("Weight decay λ", self.weight_decay)
        form.addRow("Decay mode", self.decay_mode)
        form.addRow(self.decay_all)  # the whole row: no empty label column beside it
        form.addRow("Label smoothing", self.label_smoothing)
        root.addWidget(box)

        # --- optimization
        box = QGroupBox("Optimization (live)")
        form = QFormLayout(box)
        self.optimizer = QComboBox()
        self.optimizer.addItem("Adam", "adam")
        self.optimizer.addItem("SGD + momentum", "momentum")
        self.optimizer.addItem("SGD", "sgd")
        self.lr = LogSlider(1e-5, 1.0)
        self.momentum = _number(0.0, 0.999, 3, 0.05)
        self.beta1 = _number(0.0, 0.999, 3, 0.01)
        self.beta2 = _number(0.0, 0.9999, 4, 0.001)
        self.batch_size = QSpinBox()
        # Wider than HParams allows, so an out-of-range number is rejected with a message naming
        # the range instead of being clamped without a word.
        self.batch_size.setRange(1, 99_999_999)
        self.batch_size.setKeyboardTracking(False)
        self.grad_clip = _number(0.0, 1e6, 2, 0.1)
        self.grad_clip.setSpecialValueText("off")
        self.schedule = QComboBox()
        self.schedule.addItems(["constant", "warmup_cosine"])
        self.warmup_steps = QSpinBox()
        self.warmup_steps.setRange(0, 10_000_000)
        self.warmup_steps.setKeyboardTracking(False)
        self.total_steps = QSpinBox()
        self.total_steps.setRange(1, 100_000_000)
        self.total_steps.setKeyboardTracking(False)
        self.min_lr_ratio = _number(0.0, 1.0, 2, 0.05)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Learning rate", self.lr)
        form.addRow("Momentum μ", self.momentum)
        form.addRow("Adam β1", self.beta1)
        form.addRow("Adam β2", self.beta2)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Gradient clip", self.grad_clip)
        form.addRow("Schedule", self.schedule)
        form.addRow("Warmup steps", self.warmup_steps)
        form.addRow("Total steps", self.total_steps)
        form.addRow("Min lr ratio", self.min_lr_ratio)
        root.addWidget(box)
        root.addStretch(1)

        # Combo boxes as wide as the dock gives them, not as their longest item: the dock's minimum
        # width is the window's, and "decoupled (AdamW / SGDW)" alone cost 60 px of it.
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        for name, tip in TIPS.items():
            w = getattr(self, {"decay_norms_and_biases": "decay_all"}.get(name, name))
            w.setToolTip(tip)
        self._tips = dict(TIPS)

        # --- wiring
        self.preset.activated.connect(self._preset_activated)
        self.load_btn.clicked.connect(self.load_preset_file)
        self.save_btn.clicked.connect(self.save_preset_file)
        self.run_btn.clicked.connect(self.run_toggled)
        self.step_btn.clicked.connect(self.step_clicked)
        self.reset_btn.clicked.connect(self.reset_clicked)
        self.dropout.valueChanged.connect(lambda v: self._snapped(self.dropout, "dropout", v))
        self.input_dropout.valueChanged.connect(
            lambda v: self._snapped(self.input_dropout, "input_dropout", v))
        self.weight_decay.valueChanged.connect(lambda v: self._live(weight_decay=v))
        self.decay_mode.currentIndexChanged.connect(
            lambda _: self._live(decay_mode=self.decay_mode.currentData()))
        self.decay_all.toggled.connect(lambda b: self._live(decay_norms_and_biases=bool(b)))
        self.optimizer.currentIndexChanged.connect(
            lambda _: self._live(optimizer=self.optimizer.currentData()))
        self.lr.valueChanged.connect(lambda v: self._live(lr=v))
        self.batch_size.valueChanged.connect(lambda v: self._live(batch_size=int(v)))
        self.schedule.currentTextChanged.connect(lambda s: self._live(schedule=s))
        self.momentum.valueChanged.connect(lambda v: self._live(momentum=float(v)))
        self.beta1.valueChanged.connect(lambda v: self._live(betas=(float(v), self.beta2.value())))
        self.beta2.valueChanged.connect(lambda v: self._live(betas=(self.beta1.value(), float(v))))
        self.grad_clip.valueChanged.connect(lambda v: self._live(grad_clip=float(v)))
        self.label_smoothing.valueChanged.connect(lambda v: self._live(label_smoothing=float(v)))
        self.warmup_steps.valueChanged.connect(lambda v: self._live(warmup_steps=int(v)))
        self.total_steps.valueChanged.connect(lambda v: self._live(total_steps=int(v)))
        self.min_lr_ratio.valueChanged.connect(lambda v: self._live(min_lr_ratio=float(v)))
        self.dataset.currentTextChanged.connect(lambda s: self.rebuild_requested.emit({"dataset": s}))
        self.hidden.editingFinished.connect(self._hidden_edited)
        self.seed.valueChanged.connect(lambda v: self.rebuild_requested.emit({"seed": int(v)}))
        # Space in a number field would type a space it cannot use; it runs/pauses instead. Only
        # the text field (Hidden) keeps its spaces.
        self._space = _SpaceToShortcut(self)
        for box in self.findChildren(QAbstractSpinBox):
            box.installEventFilter(self._space)
            box.findChild(QLineEdit).installEventFilter(self._space)

    def _live(self, **changes: Any) -> None:
        self.live_changed.emit(changes)

    def _snapped(self, slider: QLabeledDoubleSlider, name: str, v: float) -> None:
        """Snap a drop-rate slider to multiples of P_STEP; send only when the snapped value moves
        (a drag across 0.69–0.72 sends 0.70 once)."""
        snapped = round(round(float(v) / P_STEP) * P_STEP, 4)
        if abs(snapped - float(v)) > 1e-9:
            with signals_blocked(slider):
                slider.setValue(snapped)
        if self._sent.get(name) != snapped:
            self._sent[name] = snapped
            self._live(**{name: snapped})

    def _preset_activated(self, index: int) -> None:
        if index > 0:
            self.preset_chosen.emit(self.preset.itemText(index))

    def _hidden_edited(self) -> None:
        text = self.hidden.text()
        if self._h is not None and text == _hidden_text(self._h):
            return  # focus left an unchanged field: no new run
        self.rebuild_requested.emit({"hidden": text})

    def set_hparams(self, h: HParams) -> None:
        """Show `h` in every widget without emitting anything (a rejected value typed into a field
        is replaced too: the field shows what the engine has)."""
        self._h = h
        widgets = (self.dataset, self.hidden, self.seed, self.dropout, self.input_dropout,
                   self.weight_decay, self.decay_mode, self.decay_all, self.optimizer, self.lr,
                   self.batch_size, self.schedule, self.momentum, self.beta1, self.beta2,
                   self.grad_clip, self.label_smoothing, self.warmup_steps, self.total_steps,
                   self.min_lr_ratio, self.preset)
        with signals_blocked_all(widgets):
            self.dataset.setCurrentText(h.dataset)
            self.hidden.setText(_hidden_text(h))
            self.seed.setValue(h.seed)
            self.dropout.setValue(h.dropout)
            self.input_dropout.setValue(h.input_dropout)
            self.weight_decay.setValue(h.weight_decay)
            self.decay_mode.setCurrentIndex(self.decay_mode.findData(h.decay_mode))
            self.decay_all.setChecked(h.decay_norms_and_biases)
            self.optimizer.setCurrentIndex(self.optimizer.findData(h.optimizer))
            self.lr.setValue(h.lr)
            self.batch_size.setValue(h.batch_size)
            self.schedule.setCurrentText(h.schedule)
            self.momentum.setValue(h.momentum)
            self.beta1.setValue(h.betas[0])
            self.beta2.setValue(h.betas[1])
            self.grad_clip.setValue(h.grad_clip)
            self.label_smoothing.setValue(h.label_smoothing)
            self.warmup_steps.setValue(h.warmup_steps)
            self.total_steps.setValue(h.total_steps)
            self.min_lr_ratio.setValue(h.min_lr_ratio)
            self.preset.setCurrentIndex(self.matching_preset_index(h))
        self._sent.clear()
        self._sent.update(dropout=h.dropout, input_dropout=h.input_dropout)
        self._update_relevance(h)

    def matching_preset_index(self, h: HParams) -> int:
        """The combo index of the bundled preset equal to `h`, or 0 (“custom”)."""
        for name, preset in self._presets.items():
            if preset == h:
                return self.preset.findText(name)
        return 0

    def _update_relevance(self, h: HParams) -> None:
        """Grey out settings the current optimizer, schedule or task does not use (kept in place,
        so the dock does not jump), and say why in the tooltip."""
        uses = {
            "momentum": (h.optimizer == "momentum", "used by SGD + momentum only"),
            "beta1": (h.optimizer == "adam", "used by Adam only"),
            "beta2": (h.optimizer == "adam", "used by Adam only"),
            "warmup_steps": (h.schedule == "warmup_cosine", "used by the warmup_cosine schedule only"),
            "total_steps": (h.schedule == "warmup_cosine", "used by the warmup_cosine schedule only"),
            "min_lr_ratio": (h.schedule == "warmup_cosine", "used by the warmup_cosine schedule only"),
            "label_smoothing": (h.dataset != "regression", "classification only (regression uses MSE)"),
        }
        for name, (on, why) in uses.items():
            w = getattr(self, name)
            w.setEnabled(on)
            w.setToolTip(self._tips[name] + ("" if on else f"\n\n(Now off: {why}.)"))

    def set_running(self, running: bool) -> None:
        self.run_btn.setText("Pause" if running else "Run")


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


def _hidden_text(h: HParams) -> str:
    return ",".join(str(w) for w in h.hidden)


def _p_slider(hi: float) -> QLabeledDoubleSlider:
    s = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    s.setRange(0.0, hi)
    s.setDecimals(2)
    s.setSingleStep(P_STEP)
    s.setPageStep(0.1)
    return s


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
