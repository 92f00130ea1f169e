"""The control dock: every setting a user can change, live where the engine allows it.

Live settings (p, λ, decay mode, optimizer, lr, batch size, schedule, …) are sent as `live_changed`
and take effect at the engine's next optimizer step. Settings that change the data or the network
(dataset, hidden sizes, seed, …) are sent as `rebuild_requested`: the window resets the run with them.
Widgets are synced from the engine's hparams inside `signals_blocked`, so a sync never echoes back.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider
from superqt.utils import signals_blocked

from regsim.hparams import DATASETS, HParams
from regsim.presets import list_presets
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
}

LIVE_FIELDS = ("dropout", "input_dropout", "weight_decay", "decay_mode", "optimizer", "lr",
               "batch_size", "schedule", "decay_norms_and_biases")
REBUILD_FIELDS = ("dataset", "hidden", "seed")


class LogSlider(QWidget):
    """A slider over decades, with an optional explicit zero at its left end."""

    valueChanged = Signal(float)

    def __init__(self, lo: float, hi: float, steps_per_decade: int = 10, zero: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lo, self.hi, self.per = math.log10(lo), math.log10(hi), steps_per_decade
        self.zero = zero
        self.slider = QSlider(Qt.Orientation.Horizontal)
        n = round((self.hi - self.lo) * self.per)
        self.slider.setRange(-1 if zero else 0, n)
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
        return float(f"{10 ** (self.lo + pos / self.per):.3g}")

    def setValue(self, v: float) -> None:  # noqa: N802 (Qt naming)
        if self.zero and v <= 0:
            pos = -1
        else:
            pos = round((math.log10(max(v, 1e-30)) - self.lo) * self.per)
        with signals_blocked(self.slider):
            self.slider.setValue(max(self.slider.minimum(), min(self.slider.maximum(), pos)))
        self.label.setText(_fmt(v))

    def _moved(self, pos: int) -> None:
        v = self._to_value(pos)
        self.label.setText(_fmt(v))
        self.valueChanged.emit(v)


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:.3g}"


class ControlPanel(QWidget):
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
        self.setMinimumWidth(300)
        root = QVBoxLayout(self)

        # --- preset
        box = QGroupBox("Preset")
        lay = QHBoxLayout(box)
        self.preset = QComboBox()
        self.preset.addItem("—")
        for name, desc in list_presets().items():
            self.preset.addItem(name)
            self.preset.setItemData(self.preset.count() - 1, desc, Qt.ItemDataRole.ToolTipRole)
        self.preset.setToolTip("Load a bundled preset (starts a new run)")
        self.load_btn = QPushButton("Open…")
        self.load_btn.setToolTip("Load a preset JSON file (Ctrl+O)")
        self.save_btn = QPushButton("Save…")
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
        form.addRow("Dataset", self.dataset)
        form.addRow("Hidden", self.hidden)
        form.addRow("Seed", self.seed)
        root.addWidget(box)

        # --- regularization
        box = QGroupBox("Regularization (live)")
        form = QFormLayout(box)
        self.dropout = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.dropout.setRange(0.0, 0.9)
        self.dropout.setDecimals(2)
        self.dropout.setSingleStep(0.05)
        self.input_dropout = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.input_dropout.setRange(0.0, 0.5)
        self.input_dropout.setDecimals(2)
        self.weight_decay = LogSlider(1e-6, 1.0, zero=True)
        self.decay_mode = QComboBox()
        self.decay_mode.addItem("decoupled (AdamW / SGDW)", "decoupled")
        self.decay_mode.addItem("L2 penalty in the gradient", "l2")
        self.decay_all = QCheckBox("also decay biases and norms")
        form.addRow("Dropout p", self.dropout)
        form.addRow("Input dropout", self.input_dropout)
        form.addRow("Weight decay λ", self.weight_decay)
        form.addRow("Decay mode", self.decay_mode)
        form.addRow("", self.decay_all)
        root.addWidget(box)

        # --- optimization
        box = QGroupBox("Optimization (live)")
        form = QFormLayout(box)
        self.optimizer = QComboBox()
        self.optimizer.addItem("Adam", "adam")
        self.optimizer.addItem("SGD + momentum", "momentum")
        self.optimizer.addItem("SGD", "sgd")
        self.lr = LogSlider(1e-5, 1.0)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.schedule = QComboBox()
        self.schedule.addItems(["constant", "warmup_cosine"])
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Learning rate", self.lr)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Schedule", self.schedule)
        root.addWidget(box)

        # --- run controls
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
        self.device_label = QLabel("device: starting…")
        self.rate_label = LiveLabel("step 0 · 0 steps/s")
        lay.addWidget(self.device_label)
        lay.addWidget(self.rate_label)
        root.addWidget(box)
        root.addStretch(1)

        for name, tip in TIPS.items():
            w = getattr(self, {"decay_norms_and_biases": "decay_all"}.get(name, name))
            w.setToolTip(tip)

        # --- wiring
        self.preset.activated.connect(self._preset_activated)
        self.load_btn.clicked.connect(self.load_preset_file)
        self.save_btn.clicked.connect(self.save_preset_file)
        self.run_btn.clicked.connect(self.run_toggled)
        self.step_btn.clicked.connect(self.step_clicked)
        self.reset_btn.clicked.connect(self.reset_clicked)
        self.dropout.valueChanged.connect(lambda v: self._live(dropout=round(float(v), 4)))
        self.input_dropout.valueChanged.connect(
            lambda v: self._live(input_dropout=round(float(v), 4)))
        self.weight_decay.valueChanged.connect(lambda v: self._live(weight_decay=v))
        self.decay_mode.currentIndexChanged.connect(
            lambda _: self._live(decay_mode=self.decay_mode.currentData()))
        self.decay_all.toggled.connect(lambda b: self._live(decay_norms_and_biases=bool(b)))
        self.optimizer.currentIndexChanged.connect(
            lambda _: self._live(optimizer=self.optimizer.currentData()))
        self.lr.valueChanged.connect(lambda v: self._live(lr=v))
        self.batch_size.valueChanged.connect(lambda v: self._live(batch_size=int(v)))
        self.schedule.currentTextChanged.connect(lambda s: self._live(schedule=s))
        self.dataset.currentTextChanged.connect(lambda s: self.rebuild_requested.emit({"dataset": s}))
        self.hidden.editingFinished.connect(self._hidden_edited)
        self.seed.editingFinished.connect(lambda: self.rebuild_requested.emit({"seed": self.seed.value()}))

    def _live(self, **changes: Any) -> None:
        self.live_changed.emit(changes)

    def _preset_activated(self, index: int) -> None:
        if index > 0:
            self.preset_chosen.emit(self.preset.itemText(index))

    def _hidden_edited(self) -> None:
        text = self.hidden.text()
        self.rebuild_requested.emit({"hidden": text})

    def set_hparams(self, h: HParams) -> None:
        """Show `h` in every widget without emitting anything."""
        widgets = (self.dataset, self.hidden, self.seed, self.dropout, self.input_dropout,
                   self.weight_decay, self.decay_mode, self.decay_all, self.optimizer, self.lr,
                   self.batch_size, self.schedule)
        with signals_blocked_all(widgets):
            self.dataset.setCurrentText(h.dataset)
            if not self.hidden.hasFocus():
                self.hidden.setText(",".join(str(w) for w in h.hidden))
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

    def set_running(self, running: bool) -> None:
        self.run_btn.setText("Pause" if running else "Run")


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
