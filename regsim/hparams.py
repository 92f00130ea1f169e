"""Hyperparameters: the public vocabulary shared by presets, the CLI (`--set key=value`) and the GUI.

`HParams` is frozen and validated on construction, so an invalid value can never reach the trainer:
the `ValueError` names the field, the value and the allowed range. Changing a setting means building a
new `HParams` with `dataclasses.replace` (done for you by `HParams.replace`), which re-validates.

No torch import here: the GUI process uses this module without paying for torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("moons", "circles", "spiral", "xor", "regression", "digits")
OPTIMIZERS = ("sgd", "momentum", "adam")
DECAY_MODES = ("l2", "decoupled")
SCHEDULES = ("constant", "warmup_cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class HParams:
    dataset: str = "moons"  # one of DATASETS; 2-D classification, 1-D regression with a gap, or 8x8 digits
    hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the MLP, input to output
    dropout: float = 0.0  # drop rate p of every hidden layer's dropout, in [0, 1); 0 disables it
    layer_dropout: tuple[float, ...] = ()  # per-hidden-layer p overriding `dropout`; () = use dropout
    input_dropout: float = 0.0  # drop rate applied to the input features, in [0, 1)
    weight_decay: float = 0.0  # λ >= 0; how hard every decayed weight is pulled toward zero
    decay_mode: str = "decoupled"  # "l2": λθ added to the gradient; "decoupled": θ ← θ − lr·λ·θ
    optimizer: str = "adam"  # "sgd", "momentum" (SGD with heavy-ball momentum) or "adam"
    lr: float = 1e-2  # peak learning rate, > 0
    momentum: float = 0.9  # momentum coefficient for "momentum", in [0, 1)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's (β1, β2), each in [0, 1)
    schedule: str = "constant"  # "constant" or "warmup_cosine" (linear warmup, cosine down to min_lr_ratio)
    warmup_steps: int = 0  # linear warmup length in steps for "warmup_cosine", >= 0
    total_steps: int = 5000  # steps over which the cosine decays; later steps stay at the floor, >= 1
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr, in [0, 1]
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping
    decay_norms_and_biases: bool = False  # False: biases and norm params go in the no_decay group
    label_smoothing: float = 0.0  # cross-entropy label smoothing ε, in [0, 1)
    batch_size: int = 32  # minibatch size, >= 1 (capped at the train-set size)
    train_size: int = 200  # training examples (digits: at most 1437), >= 8
    noise: float = 0.2  # input noise of the synthetic datasets, in [0, 2]
    seed: int = 0  # seeds the data split, the initial weights and the dropout masks
    activation: str = "relu"  # "relu" or "tanh"
    layer_norm: bool = False  # LayerNorm after each hidden Linear (its scale/shift are no_decay params)
    val_size: int = field(default=1000)  # validation examples for synthetic data (digits: the rest), >= 8

    def __post_init__(self) -> None:
        # Coerce list-valued fields (JSON gives lists) so the frozen object is hashable and comparable.
        if not isinstance(self.hidden, tuple):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if not isinstance(self.betas, tuple):
            object.__setattr__(self, "betas", tuple(self.betas))
        if not isinstance(self.layer_dropout, tuple):
            object.__setattr__(self, "layer_dropout", tuple(self.layer_dropout))
        _validate(self)

    def replace(self, **changes: Any) -> HParams:
        """A validated copy with `changes` applied; unknown keys raise a ValueError naming them."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["betas"] = list(self.betas)
        d["layer_dropout"] = list(self.layer_dropout)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: HParams | None = None) -> HParams:
        """Build from plain data (a preset, JSON), type-checking every value before validation."""
        base = base or cls()
        changes = {k: coerce(k, v) for k, v in data.items()}
        return base.replace(**changes)

    def hidden_dropout(self) -> tuple[float, ...]:
        """The drop rate of each hidden layer (layer_dropout if given, else dropout everywhere)."""
        return self.layer_dropout or tuple(self.dropout for _ in self.hidden)

    def caption(self) -> str:
        """A one-line human summary used in status lines, figure captions and file names."""
        opt = {"adam": "AdamW" if self.decay_mode == "decoupled" else "Adam+L2",
               "momentum": "SGDW" if self.decay_mode == "decoupled" else "SGD+mom",
               "sgd": "SGD"}[self.optimizer]
        return (f"p={self.dropout:g}  λ={self.weight_decay:g} ({self.decay_mode})  {opt}  "
                f"lr={self.lr:g}")


# Human words for the settings, as the controls (ui/controls.py) show them, so status texts, change
# markers and the controls speak the same language. Qt-free: the controls can read these too.
LABELS = {
    "dataset": "Dataset", "hidden": "Hidden", "seed": "Seed", "train_size": "Training examples",
    "val_size": "Validation examples", "noise": "Noise", "activation": "Activation",
    "layer_norm": "LayerNorm", "dropout": "Dropout p", "layer_dropout": "Dropout p per layer",
    "input_dropout": "Input dropout", "weight_decay": "Weight decay λ", "decay_mode": "Decay mode",
    "decay_norms_and_biases": "also decay biases and norms", "optimizer": "Optimizer",
    "lr": "Learning rate", "momentum": "Momentum μ", "betas": "Adam β1, β2",
    "batch_size": "Batch size", "schedule": "Schedule", "warmup_steps": "Warm-up steps",
    "total_steps": "Total steps", "min_lr_ratio": "Min lr ratio", "grad_clip": "Gradient clipping",
    "label_smoothing": "Label smoothing ε",
}
# Short names for change events ("λ 0.001 → 0.05", "decay mode: decoupled → L2"): markers on the
# plots must stay short. The symbols are the ones in the control labels (λ, p) and the math.
SHORT_LABELS = {
    "dropout": "p", "input_dropout": "input p", "layer_dropout": "p per layer", "weight_decay": "λ",
    "decay_mode": "decay mode", "decay_norms_and_biases": "decay biases and norms",
    "optimizer": "optimizer", "lr": "lr", "momentum": "momentum μ", "betas": "Adam β1, β2",
    "batch_size": "batch size", "schedule": "schedule", "warmup_steps": "warm-up steps",
    "total_steps": "total steps", "min_lr_ratio": "min lr ratio", "grad_clip": "gradient clipping",
    "label_smoothing": "label smoothing ε",
}
SYMBOL_FIELDS = frozenset({"dropout", "weight_decay", "lr"})  # "λ 0.1 → 1", not "λ: 0.1 → 1"
# The items of the choice controls, and their short forms for change events.
CHOICE_LABELS = {
    "decay_mode": {"decoupled": "decoupled (AdamW / SGDW)", "l2": "L2 penalty in the gradient"},
    "optimizer": {"adam": "Adam", "momentum": "SGD + momentum", "sgd": "SGD"},
    "schedule": {"constant": "constant", "warmup_cosine": "warm-up + cosine"},
}
CHOICE_SHORT = {
    "decay_mode": {"decoupled": "decoupled", "l2": "L2"},
    "optimizer": CHOICE_LABELS["optimizer"],
    "schedule": CHOICE_LABELS["schedule"],
}


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(HParams)]


_INT_FIELDS = {"warmup_steps", "total_steps", "batch_size", "train_size", "seed", "val_size"}
_FLOAT_FIELDS = {"dropout", "input_dropout", "weight_decay", "lr", "momentum", "min_lr_ratio",
                 "grad_clip", "label_smoothing", "noise"}
_STR_FIELDS = {"dataset", "decay_mode", "optimizer", "schedule", "activation"}
_BOOL_FIELDS = {"decay_norms_and_biases", "layer_norm"}


def coerce(key: str, value: Any) -> Any:
    """Type-check (and gently convert) one value; a wrong type raises a ValueError naming the key.

    Strings are accepted for every field so that `--set key=value` works from the command line.
    """
    if key not in field_names():
        raise ValueError(f"unknown setting {key!r}; known: {', '.join(field_names())}")
    try:
        if key in _BOOL_FIELDS:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise TypeError
        if key in _INT_FIELDS:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, str):
                value = float(value) if any(c in value for c in ".eE") else int(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise TypeError
            return value
        if key in _FLOAT_FIELDS:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, str):
                value = float(value)
            if not isinstance(value, (int, float)):
                raise TypeError
            return float(value)
        if key in _STR_FIELDS:
            if not isinstance(value, str):
                raise TypeError
            return value
        if key == "hidden":
            if isinstance(value, str):
                value = [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise TypeError
            return tuple(value)
        if key == "layer_dropout":
            if isinstance(value, str):
                value = [float(v) for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise TypeError
            return tuple(float(v) for v in value)
        if key == "betas":
            if isinstance(value, str):
                value = [float(v) for v in value.split(",")]
            if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise TypeError
            return (float(value[0]), float(value[1]))
    except (TypeError, ValueError):
        raise ValueError(f"{key}: {value!r} has the wrong type; expected {_expected(key)}") from None
    raise ValueError(f"unknown setting {key!r}")  # pragma: no cover


def _expected(key: str) -> str:
    if key in _BOOL_FIELDS:
        return "true or false"
    if key in _INT_FIELDS:
        return "an integer"
    if key in _FLOAT_FIELDS:
        return "a number"
    if key == "hidden":
        return "a list of layer widths such as [64, 64] or 64,64"
    if key == "layer_dropout":
        return "a list of drop rates, one per hidden layer, such as [0.5, 0.2]"
    if key == "betas":
        return "two numbers such as [0.9, 0.999]"
    return "a string"


def _check_range(name: str, value: float, lo: float, hi: float, lo_open: bool = False,
                 hi_open: bool = False) -> None:
    ok = math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo)
    ok = ok and (value < hi if hi_open else value <= hi)
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        hi_s = "∞" if hi == math.inf else f"{hi:g}"
        raise ValueError(f"{name} = {value!r} is out of range; allowed: {left}{lo:g}, {hi_s}{right}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} = {value!r} is not allowed; choose one of: {', '.join(choices)}")


def _validate(h: HParams) -> None:
    _check_choice("dataset", h.dataset, DATASETS)
    _check_choice("decay_mode", h.decay_mode, DECAY_MODES)
    _check_choice("optimizer", h.optimizer, OPTIMIZERS)
    _check_choice("schedule", h.schedule, SCHEDULES)
    _check_choice("activation", h.activation, ("relu", "tanh"))
    if not h.hidden or len(h.hidden) > 8 or not all(isinstance(w, int) and 1 <= w <= 4096
                                                     for w in h.hidden):
        raise ValueError(f"hidden = {list(h.hidden)!r} is out of range; allowed: 1 to 8 layers, "
                         "each width an integer in [1, 4096]")
    _check_range("dropout", h.dropout, 0.0, 1.0, hi_open=True)
    if h.layer_dropout and len(h.layer_dropout) != len(h.hidden):
        raise ValueError(f"layer_dropout = {list(h.layer_dropout)!r} must give one rate per hidden "
                         f"layer ({len(h.hidden)}), or be empty to use dropout everywhere")
    for i, p in enumerate(h.layer_dropout):
        _check_range(f"layer_dropout[{i}]", p, 0.0, 1.0, hi_open=True)
    _check_range("input_dropout", h.input_dropout, 0.0, 1.0, hi_open=True)
    _check_range("weight_decay", h.weight_decay, 0.0, 10.0)
    _check_range("lr", h.lr, 0.0, 1e4, lo_open=True)
    _check_range("momentum", h.momentum, 0.0, 1.0, hi_open=True)
    if len(h.betas) != 2:
        raise ValueError(f"betas = {h.betas!r} must be two numbers (β1, β2)")
    _check_range("betas[0]", h.betas[0], 0.0, 1.0, hi_open=True)
    _check_range("betas[1]", h.betas[1], 0.0, 1.0, hi_open=True)
    _check_range("warmup_steps", h.warmup_steps, 0, 10_000_000)
    _check_range("total_steps", h.total_steps, 1, 100_000_000)
    _check_range("min_lr_ratio", h.min_lr_ratio, 0.0, 1.0)
    _check_range("grad_clip", h.grad_clip, 0.0, 1e6)
    _check_range("label_smoothing", h.label_smoothing, 0.0, 1.0, hi_open=True)
    # At most the training set: beyond it the trainer would quietly train on full batches.
    batch_hi = min(65536, h.train_size)
    if not 1 <= h.batch_size <= batch_hi:
        why = (f" (at most the training-set size, train_size = {h.train_size})"
               if batch_hi == h.train_size else "")
        raise ValueError(f"batch_size = {h.batch_size!r} is out of range; allowed: [1, {batch_hi}]{why}")
    _check_range("train_size", h.train_size, 8, 1_000_000)
    _check_range("val_size", h.val_size, 8, 1_000_000)
    _check_range("noise", h.noise, 0.0, 2.0)
    _check_range("seed", h.seed, 0, 2**31 - 1)
