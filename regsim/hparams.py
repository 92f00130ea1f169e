"""Hyperparameters: the public vocabulary shared by presets, the CLI (`--set key=value`) and the GUI.

`HParams` is frozen and validated on construction, so an invalid value can never reach the trainer:
the `ValueError` names the field, the value and the allowed range. Changing a setting means building a
new `HParams` with `dataclasses.replace` (done for you by `HParams.replace`), which re-validates.

`SETTINGS` describes every field once (range, live or rebuild, label, tooltip with the math); the
validation below, the controls (ui/controls.py), the trainer and the change markers all read it.

No torch import here: the GUI process uses this module without paying for torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .modular import OPERATIONS, check, train_count  # numpy only: a ∘ b mod p

DATASETS = ("moons", "circles", "spiral", "xor", "regression", "digits", "modular")
OPTIMIZERS = ("sgd", "momentum", "adam")
DECAY_MODES = ("l2", "decoupled", "decoupled_paper")
NO_DECAY_KINDS = ("biases+norms", "biases", "norms", "none")  # which 1-D kinds skip the decay
SCHEDULES = ("constant", "warmup_cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
ACTIVATIONS = ("relu", "tanh")
ARCHITECTURES = ("mlp", "conv", "embed_mlp", "transformer")  # "conv": 3×3 conv layers on the
# 8×8 digits (regsim.models.ConvNet); "embed_mlp": token embeddings on modular data
# (regsim.token_mlp); "transformer": a small GPT on [a, op, b, =] (regsim.transformer)
DROPOUT_KINDS = ("element", "channel")  # nn.Dropout vs nn.Dropout2d (whole channels)
MAX_LAYERS = 8  # hidden layers at most


@dataclass(frozen=True)
class HParams:
    dataset: str = "moons"  # one of DATASETS; 2-D classification, 1-D regression with a gap, or 8x8 digits
    hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the MLP, input to output
    architecture: str = "mlp"  # "mlp", or "conv" (digits only: `hidden` are then channel counts)
    dropout: float = 0.0  # drop rate p of every hidden layer's dropout, in [0, 1); 0 disables it
    layer_dropout: tuple[float, ...] = ()  # per-hidden-layer p overriding `dropout`; () = use dropout
    input_dropout: float = 0.0  # drop rate applied to the input features, in [0, 1)
    dropout_kind: str = "element"  # conv only: "element" (nn.Dropout) or "channel" (nn.Dropout2d)
    n_layer: int = 1  # transformer: blocks, in [1, 8]
    n_head: int = 4  # transformer: attention heads per block; n_embd must divide by it
    n_embd: int = 128  # transformer: residual stream width C
    embd_dropout: float = 0.0  # transformer: p after the token + position embedding sum, in [0, 1)
    attn_dropout: float = 0.0  # transformer: p on the attention weights post-softmax, in [0, 1)
    resid_dropout: float = 0.0  # transformer: p on the attention output before the residual add
    ffn_dropout: float = 0.0  # transformer: p on the FFN output (after W₂) before the residual add
    answer_only: bool = True  # transformer: last layer, FFN and head at the answer position only
    weight_decay: float = 0.0  # λ >= 0; how hard every decayed weight is pulled toward zero
    decay_mode: str = "decoupled"  # "l2": λθ added to the gradient; "decoupled": θ ← θ − lr·λ·θ
    # (PyTorch's AdamW); "decoupled_paper": θ ← θ − η_t·λ·θ, η_t the schedule multiplier (L&H 2019)
    normalized_decay: bool = False  # True: weight_decay is λ_norm and λ = λ_norm·√(b/(B·T)) (L&H 2019)
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
    decay_embeddings: bool = True  # True: embedding tables decayed (nanoGPT); False: no_decay (minGPT)
    label_smoothing: float = 0.0  # cross-entropy label smoothing ε, in [0, 1)
    batch_size: int = 32  # minibatch size, >= 1 (capped at the train-set size)
    train_size: int = 200  # training examples (digits: at most 1437), >= 8
    noise: float = 0.2  # input noise of the synthetic datasets, in [0, 2]
    seed: int = 0  # seeds the data split, the initial weights and the dropout masks
    activation: str = "relu"  # "relu" or "tanh"
    layer_norm: bool = False  # LayerNorm after each hidden Linear (its scale/shift are no_decay params)
    val_size: int = field(default=1000)  # validation examples for synthetic data (digits: the rest), >= 8
    modulus: int = 47  # modular: the prime p of a ∘ b mod p (regsim/modular.py)
    operation: str = "+"  # modular: the operation ∘, one of OPERATIONS ("/" = times the inverse)
    train_fraction: float = 0.5  # modular: share of the p² pairs trained on, in (0, 1)
    no_decay_kinds: str = "biases+norms"  # the kinds in the no_decay group (λ = 0): NO_DECAY_KINDS

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
        dec = self.decay_mode != "l2"
        opt = {"adam": "AdamW" if dec else "Adam+L2", "momentum": "SGDW" if dec else "SGD+mom",
               "sgd": "SGD"}[self.optimizer]
        return (f"p={self.dropout:g}  λ={self.weight_decay:g} ({self.decay_mode})  {opt}  "
                f"lr={self.lr:g}")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(HParams)]


# ------------------------------------------------------------------------------------------ settings
# Each setting is described ONCE, here: its range, whether it applies live, its words and its tooltip.
# Validation (`_validate`), the control dock (ui/controls.py builds its widgets, ranges, steps, labels
# and tooltips from these), the trainer (which fields need a reset, which move the loss level) and the
# change markers ("λ 0.001 → 0.05") all read this table, so they cannot disagree. Qt-free: `Control`
# only *describes* a widget; ui/controls.py makes it.


@dataclass(frozen=True)
class UsedWhen:
    """A setting that only matters for some values of another (μ only for SGD + momentum)."""

    field: str  # the setting it depends on, e.g. "optimizer"
    values: tuple[str, ...]  # the values of `field` for which the setting is used
    why: str  # said in the greyed control's tooltip: "used by SGD + momentum only"


@dataclass(frozen=True)
class Control:
    """How the control dock shows a setting (one per widget; `betas` has one per β)."""

    kind: str  # "p": slider snapped to `step`; "log": slider over round numbers; "number": float spin
    # box; "integer": int spin box; "choice": combo box; "check": check box; "text": line edit
    attr: str = ""  # the ControlPanel attribute holding the widget; "" = the field's name
    label: str = ""  # the row's label; "" = the setting's label
    tip: str = ""  # the widget's tooltip; "" = the setting's tip
    decimals: int = 0  # "number": digits after the point; the box's grid is 10^-decimals
    step: float = 1.0  # one arrow press ("number", "integer"); the snap of a "p" slider
    log_lo: float = 0.0  # "log" over a range starting at 0: the smallest non-zero stop (0 is a stop)
    special: str = ""  # text shown at the minimum instead of the number ("off" for grad_clip = 0)
    typed_hi: float | None = None  # a typed box deliberately wider than the range (see batch_size)
    placeholder: str = ""  # "text": the grey hint in the empty field


@dataclass(frozen=True)
class Setting:
    """One setting: what it accepts, when it applies, and the words the program uses for it."""

    name: str  # the HParams field
    label: str  # the control's label and the status texts' word: "Weight decay λ"
    short: str  # the change markers' word, kept short on the plots: "λ", "batch size"
    tip: str  # the tooltip: what the setting does, with the math
    live: bool  # True: applied at the next optimizer step (Trainer.update); False: needs a new run
    lo: float | None = None  # numeric range (of each element, for tuples); None = not a number
    hi: float | None = None
    lo_open: bool = False  # (lo, …: lo itself is not allowed
    hi_open: bool = False  # …, hi): hi itself is not allowed
    choices: tuple[str, ...] = ()  # the allowed values of a choice setting
    choice_labels: dict[str, str] = field(default_factory=dict)  # value → combo item, in combo order
    choice_short: dict[str, str] = field(default_factory=dict)  # value → word in change markers
    unit: str = ""  # what the number counts ("steps", "examples"), said with the range
    symbol: bool = False  # `short` is a symbol: "λ 0.1 → 1" rather than "batch size: 32 → 64"
    loss_level: bool = False  # a change moves the training loss of the same weights (the divergence
    # monitor restarts its "best so far" instead of calling the jump a divergence)
    used_when: UsedWhen | None = None  # None: always used
    controls: tuple[Control, ...] = ()  # the dock's widgets; () = presets and --set only
    note: str = ""  # a bound the range cannot say (checked in _validate), shown with the range

    def range_text(self) -> str:
        """The allowed range as the error messages say it: "[0, 1)", "[1e-06, 10000]"."""
        if self.choices:
            return ", ".join(self.choices)
        if self.lo is None or self.hi is None:
            return "true or false"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"{left}{_num(self.lo)}, {_num(self.hi)}{right}"

    def allowed_text(self) -> str:
        """The range in words for a tooltip ("Allowed: [1, 65536] examples, at most the training-set
        size"); "" for choices and switches, whose widgets show what is allowed."""
        if self.choices or self.lo is None:
            return ""
        each = "each " if _KINDS[self.name].startswith("tuple") else ""
        unit = f" {self.unit}" if self.unit else ""
        note = f", {self.note}" if self.note else ""
        return f"Allowed: {each}{self.range_text()}{unit}{note}."

    def in_range(self, value: float) -> bool:
        """Whether one number (one element of a tuple setting) lies in [lo, hi] with its open ends."""
        assert self.lo is not None and self.hi is not None, self.name
        ok = math.isfinite(value)
        ok = ok and (value > self.lo if self.lo_open else value >= self.lo)
        return ok and (value < self.hi if self.hi_open else value <= self.hi)


def _num(v: float) -> str:
    """A range end as typed: whole numbers in full (2147483647, not 2.14748e+09), others as %g."""
    if v == math.inf:
        return "∞"
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


_CLASSIFICATION = tuple(d for d in DATASETS if d != "regression")
_WARMUP = UsedWhen("schedule", ("warmup_cosine",), "used by the warmup_cosine schedule only")
_MODULAR = UsedWhen("dataset", ("modular",), "used by the modular-arithmetic dataset only")
_TRANSFORMER = UsedWhen("architecture", ("transformer",), "used by the transformer only")

_TABLE = (
    # --- data and network: a change builds a new run
    Setting("dataset", "Dataset", "dataset", live=False, choices=DATASETS,
            choice_labels={d: d for d in DATASETS}, controls=(Control("choice"),),
            tip="The task: moons, circles, spiral, xor (2-D classification, where the decision "
                "boundary shows overfitting), regression (1-D, with a gap in its inputs) or digits "
                "(8×8 images, 10 classes) or modular (a ∘ b mod p over every pair (a, b), where networks "
                "grok).\nChanging the dataset starts a new run."),
    Setting("hidden", "Hidden", "hidden", live=False, lo=1, hi=4096,
            controls=(Control("text", placeholder="e.g. 64,64"),),
            tip="Hidden layer widths, input to output, e.g. 64,64: 1 to 8 layers of 1 to 4096 units "
                "each. Changing it starts a new run."),
    Setting("architecture", "Architecture", "architecture", live=False, choices=ARCHITECTURES,
            choice_labels={"mlp": "MLP", "conv": "conv net (digits)",
                           "embed_mlp": "embedding MLP (modular)",
                           "transformer": "transformer (modular)"}, controls=(Control("choice"),),
            tip="MLP: Linear layers of the hidden widths.\nconv net (digits only): a 3×3 convolution "
                "(padding 1) per hidden entry, its width the channel count, ReLU and dropout after "
                "each, then one Linear to the 10 classes; e.g. hidden 8,16.\nembedding MLP (modular "
                "only): relu(E_a[a] + E_b[b] + b₁) → W₂, the one-hot MLP computed by gathering two "
                "rows of the embedding table (1.5× faster).\ntransformer (modular only): a small GPT "
                "on [a, op, b, =] with its four dropout sites (the Transformers chapter).\nChanging "
                "it starts a new run."),
    Setting("dropout", "Dropout p", "p", live=True, lo=0.0, hi=1.0, hi_open=True, symbol=True,
            loss_level=True, controls=(Control("p", step=0.05),),
            tip="Drop rate p of every hidden layer.\nTraining: y = m ⊙ h / (1 − p), m ~ Bernoulli(1 − p), "
                "so E[y] = h.\nInference: y = h (inverted dropout needs no rescaling).\n"
                "The original recipe uses p = 0.5 on fully-connected layers; modern LLMs use 0."),
    Setting("layer_dropout", "Dropout p per layer", "p per layer", live=True, lo=0.0, hi=1.0,
            hi_open=True, loss_level=True,
            tip="One drop rate per hidden layer, overriding p (presets and --set only); empty: p "
                "everywhere. Each layer: y = m ⊙ h / (1 − pᵢ)."),
    Setting("input_dropout", "Input dropout", "input p", live=True, lo=0.0, hi=1.0, hi_open=True,
            loss_level=True, controls=(Control("p", step=0.05),),
            tip="Drop rate on the input features: x̃ = m ⊙ x / (1 − p). 0–0.2 is typical; corrupting "
                "inputs can hurt more than help."),
    Setting("dropout_kind", "Dropout kind", "dropout kind", live=True, choices=DROPOUT_KINDS,
            choice_labels={"element": "element-wise (nn.Dropout)", "channel": "channel-wise (nn.Dropout2d)"},
            choice_short={"element": "element-wise", "channel": "channel-wise"},
            controls=(Control("choice"),),
            tip="Conv net only (an MLP's units have no channels: there it changes nothing).\n"
                "element-wise: every activation h[b, c, i, j] gets its own mask "
                "draw (nn.Dropout).\nchannel-wise: one draw per example and channel, so whole "
                "feature maps are zeroed: y[b, c] = m[b, c]·h[b, c]/(1 − p) (nn.Dropout2d). "
                "Neighbouring pixels of a feature map are strongly correlated, so dropping single "
                "pixels hides little; dropping a channel removes the feature."),
    Setting("n_layer", "Transformer blocks", "blocks", live=False, lo=1, hi=8, used_when=_TRANSFORMER,
            controls=(Control("integer"),),
            tip="Transformer blocks L, each x ← x + attn(LN₁x); x ← x + ffn(LN₂x) (pre-LN, GPT-2). "
                "Changing it starts a new run."),
    Setting("n_head", "Attention heads", "heads", live=False, lo=1, hi=64, used_when=_TRANSFORMER,
            note="n_embd must divide by it", controls=(Control("integer"),),
            tip="Heads H per block; each attends with d = C/H dimensions: softmax(QKᵀ/√d)V. "
                "Changing it starts a new run."),
    Setting("n_embd", "Width C", "width C", live=False, lo=8, hi=1024, used_when=_TRANSFORMER,
            note="a multiple of n_head", controls=(Control("integer"),),
            tip="The residual stream width C (the FFN expands to 4C). Changing it starts a new run."),
    Setting("embd_dropout", "Dropout: embedding", "p embd", live=True, lo=0.0, hi=1.0, hi_open=True,
            loss_level=True, used_when=_TRANSFORMER, controls=(Control("p", step=0.05),),
            tip="Transformer site embd: x₀ = m ⊙ (E_tok[t] + E_pos[i]) / (1 − p), after the embedding "
                "+ position sum (Vaswani et al. 2017: 0.1)."),
    Setting("attn_dropout", "Dropout: attention", "p attn", live=True, lo=0.0, hi=1.0, hi_open=True,
            loss_level=True, used_when=_TRANSFORMER, controls=(Control("p", step=0.05),),
            tip="Transformer site attn: A = m ⊙ softmax(QKᵀ/√d) / (1 − p), individual attention "
                "connections dropped post-softmax, before A·V (Vaswani et al. 2017: 0.1)."),
    Setting("resid_dropout", "Dropout: residual", "p resid", live=True, lo=0.0, hi=1.0, hi_open=True,
            loss_level=True, used_when=_TRANSFORMER, controls=(Control("p", step=0.05),),
            tip="Transformer site resid: x ← x + m ⊙ W_o·attn(LN₁x) / (1 − p), the attention "
                "sub-layer output before the residual add (Vaswani et al. 2017: 0.1); a dropped "
                "unit leaves only the skip connection."),
    Setting("ffn_dropout", "Dropout: FFN", "p ffn", live=True, lo=0.0, hi=1.0, hi_open=True,
            loss_level=True, used_when=_TRANSFORMER, controls=(Control("p", step=0.05),),
            tip="Transformer site ffn: x ← x + m ⊙ W₂·gelu(W₁·LN₂x) / (1 − p), after the FFN's "
                "down-projection, before the residual add (0.1 in the original recipe)."),
    Setting("answer_only", "answer position only", "answer-only path", live=True,
            used_when=_TRANSFORMER, controls=(Control("check"),),
            tip="Transformer: the loss needs only the logits at '=' (the answer). On: the last block's "
                "query, FFN and head run at that position only, and the first block's q, k, v come "
                "from a per-token table c_attn(LN₁(E_tok + E_pos)) when the embedding dropout is off "
                "(measured: a step 20.5 ms instead of 82 ms, the same loss). Off: the plain GPT "
                "forward at every position."),
    # --- regularization and optimization: live, applied at the next optimizer step
    Setting("weight_decay", "Weight decay λ", "λ", live=True, lo=0.0, hi=10.0, symbol=True,
            controls=(Control("log", log_lo=1e-6),),
            tip="λ: the tax on weight magnitude.\nL2: loss + (λ/2)‖θ‖², gradient g + λθ.\n"
                "Decoupled: θ ← (1 − ηλ)θ − η·g̃, the decay applied to the weights directly.\n"
                "Bayesian view: a Gaussian prior N(0, σ²) with λ = 1/(2σ²).\n"
                "Vision models: λ ≈ 1e-4; LLMs (AdamW): λ = 0.1. With ηλ ≥ 1 a decay step overshoots zero."),
    Setting("decay_mode", "Decay mode", "decay mode", live=True, choices=DECAY_MODES,
            choice_labels={"decoupled": "decoupled, PyTorch (AdamW / SGDW: lr·λ)",
                           "decoupled_paper": "decoupled, paper (η_t·λ)",
                           "l2": "L2 penalty in the gradient"},
            choice_short={"decoupled": "decoupled", "decoupled_paper": "decoupled (paper)", "l2": "L2"},
            controls=(Control("choice"),),
            tip="L2: λθ is added to the gradient; Adam then divides it by √v̂ (uneven decay: weights with "
                "large gradients are barely decayed).\nDecoupled (PyTorch): θ ← (1 − ηλ)θ − η·g̃ applied "
                "to the weights directly (torch.optim.AdamW, SGDW): every weight shrinks by the same "
                "factor, but by lr·λ, so lr and λ stay coupled.\nDecoupled (paper, Loshchilov & Hutter "
                "2019): θ ← (1 − η_t·λ)θ − η·g̃ with η_t the schedule multiplier only: the decay per "
                "step does not change with lr.\nFor plain SGD, L2 and PyTorch's decoupled are the same "
                "update."),
    Setting("normalized_decay", "normalized λ", "normalized λ", live=True,
            controls=(Control("check"),),
            tip="Normalized weight decay (Loshchilov & Hutter 2019): λ is read as λ_norm and the "
                "optimizer uses λ = λ_norm·√(b/(B·T)), b the batch size, B the training examples, "
                "T = total steps·b/B the epochs (so λ = λ_norm/√total steps): the best λ_norm then "
                "moves less with the run length."),
    Setting("optimizer", "Optimizer", "optimizer", live=True, choices=OPTIMIZERS,
            choice_labels={"adam": "Adam", "momentum": "SGD + momentum", "sgd": "SGD"},
            controls=(Control("choice"),),
            tip="sgd: θ ← θ − η g\nmomentum: v ← μv + g; θ ← θ − ηv\n"
                "adam: θ ← θ − η m̂ / (√v̂ + ε)  (with decoupled decay: AdamW)"),
    Setting("lr", "Learning rate", "lr", live=True, lo=1e-6, hi=1e4, symbol=True,
            controls=(Control("log"),),
            tip="Learning rate η (the peak value when a schedule is on). With AdamW the best λ does not "
                "depend on η; with Adam + L2 changing η changes the effective regularization."),
    Setting("momentum", "Momentum μ", "momentum μ", live=True, lo=0.0, hi=1.0, hi_open=True,
            used_when=UsedWhen("optimizer", ("momentum",), "used by SGD + momentum only"),
            controls=(Control("number", decimals=3, step=0.05),),
            tip="Momentum μ (SGD + momentum): v ← μv + g; θ ← θ − ηv.\nThe step is about η/(1 − μ) "
                "along a steady gradient: μ = 0.9 takes ~10× larger effective steps than plain SGD."),
    Setting("betas", "Adam β1, β2", "Adam β1, β2", live=True, lo=0.0, hi=1.0, hi_open=True,
            used_when=UsedWhen("optimizer", ("adam",), "used by Adam only"),
            controls=(Control("number", attr="beta1", label="Adam β1", decimals=3, step=0.01,
                              tip="Adam's β1: m ← β1·m + (1 − β1)·g, the running mean of the gradient "
                                  "(0.9 almost always)."),
                      Control("number", attr="beta2", label="Adam β2", decimals=4, step=0.001,
                              tip="Adam's β2: v ← β2·v + (1 − β2)·g², the running mean of g². 0.999 is "
                                  "the default; LLM recipes use 0.95, which adapts faster after a loss "
                                  "spike.")),
            tip="Adam's (β1, β2): m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², "
                "θ ← θ − η m̂ / (√v̂ + ε)."),
    Setting("schedule", "Schedule", "schedule", live=True, choices=SCHEDULES,
            choice_labels={"constant": "constant", "warmup_cosine": "warm-up + cosine"},
            controls=(Control("choice"),),
            tip="constant: η at every step.\nwarm-up + cosine (warmup_cosine): η·(t+1)/T_w for t < T_w, then "
                "η·(r + (1 − r)·½(1 + cos πs)) with s going 0 → 1 until the total steps, r = min lr "
                "ratio (the LLaMA recipe: 2000 warm-up steps, cosine to 10 %)."),
    Setting("warmup_steps", "Warm-up steps", "warm-up steps", live=True, lo=0, hi=10_000_000,
            unit="steps", used_when=_WARMUP, controls=(Control("integer"),),
            tip="warmup_cosine: the learning rate rises linearly from η/T_w to η over these T_w steps."),
    Setting("total_steps", "Total steps", "total steps", live=True, lo=1, hi=100_000_000,
            unit="steps", used_when=_WARMUP, controls=(Control("integer"),),
            tip="warmup_cosine: the cosine reaches its floor (min lr ratio × η) at this step and stays "
                "there."),
    Setting("min_lr_ratio", "Min lr ratio", "min lr ratio", live=True, lo=0.0, hi=1.0,
            used_when=_WARMUP, controls=(Control("number", decimals=2, step=0.05),),
            tip="warmup_cosine: the floor r of the cosine as a fraction of η (the LLaMA recipe: 0.1)."),
    Setting("grad_clip", "Gradient clipping", "gradient clipping", live=True, lo=0.0, hi=1e6,
            controls=(Control("number", decimals=2, step=0.1, special="off"),),
            tip="Max global gradient norm c: g ← g · min(1, c / ‖g‖). 0 turns clipping off.\n"
                "The LLaMA recipe clips at 1.0."),
    Setting("decay_norms_and_biases", "also decay biases and norms", "decay biases and norms",
            live=True, controls=(Control("check", attr="decay_all"),),
            tip="Off (the usual no_decay split, GPT-3 / nanoGPT): biases and norm parameters are not "
                "decayed; only weight matrices pay the tax (1 − ηλ)θ."),
    Setting("decay_embeddings", "decay embeddings", "decay embeddings", live=True,
            controls=(Control("check"),),
            tip="On (nanoGPT's convention): the embedding tables are decayed like the weight matrices. "
                "Off (GPT-3 / minGPT): token and position embeddings go in the no_decay group with "
                "the biases and LayerNorm parameters. Only networks with embeddings notice."),
    Setting("label_smoothing", "Label smoothing ε", "label smoothing ε", live=True, lo=0.0, hi=1.0,
            hi_open=True, loss_level=True,
            used_when=UsedWhen("dataset", _CLASSIFICATION, "classification only (regression uses MSE)"),
            controls=(Control("number", decimals=2, step=0.05),),
            tip="Label smoothing ε: the target is (1 − ε)·one-hot + ε/C, so the network is never asked "
                "for infinite logits (classification only; 0.1 in the original Transformer)."),
    # At most the training set (checked in _validate): beyond it the trainer would quietly train on full
    # batches. The box takes any 8-digit number, so a number past the range is named, not clamped.
    Setting("batch_size", "Batch size", "batch size", live=True, lo=1, hi=65536, unit="examples",
            note="at most the training-set size",
            controls=(Control("integer", typed_hi=99_999_999),),
            tip="Examples per step. Larger batches reduce the gradient noise (itself a mild "
                "regularizer): its variance falls as 1/B."),
    Setting("train_size", "Training examples", "training examples", live=False, lo=8, hi=1_000_000,
            unit="examples", note="digits: at most 1437",
            tip="Training examples: fewer make overfitting (and what regularization does) easier to see."),
    Setting("noise", "Noise", "noise", live=False, lo=0.0, hi=2.0,
            tip="Input noise of the synthetic datasets (the regression's target noise is half of it)."),
    Setting("seed", "Seed", "seed", live=False, lo=0, hi=2**31 - 1, controls=(Control("integer"),),
            tip="Seeds the data, the initial weights and the dropout masks. Changing it starts a new run."),
    Setting("activation", "Activation", "activation", live=False, choices=ACTIVATIONS,
            choice_labels={a: a for a in ACTIVATIONS},
            tip="relu: max(0, x); tanh. Changing it starts a new run."),
    Setting("layer_norm", "LayerNorm", "LayerNorm", live=False,
            tip="LayerNorm after each hidden Linear: (h − mean) / std · γ + β (γ, β are no_decay "
                "parameters). Changing it starts a new run."),
    Setting("val_size", "Validation examples", "validation examples", live=False, lo=8, hi=1_000_000,
            unit="examples", note="digits: the rest of the 1797 images",
            tip="Validation examples for the synthetic datasets (digits: the images not trained on)."),
    Setting("modulus", "Modulus p", "p (modulus)", live=False, lo=11, hi=251, note="a prime",
            used_when=_MODULAR, controls=(Control("integer"),),
            tip="modular: the prime p; every pair (a, b) in [0, p)² is one example, labelled "
                "a ∘ b mod p (p classes). p = 47: 2209 pairs. A prime makes every b ≠ 0 invertible; "
                "p ≥ 11, as a smaller table has too few pairs to split. "
                "Changing it starts a new run."),
    Setting("operation", "Operation ∘", "operation", live=False, choices=OPERATIONS,
            choice_labels={"+": "a + b mod p", "-": "a − b mod p", "*": "a · b mod p",
                           "/": "a · b⁻¹ mod p"},
            used_when=_MODULAR, controls=(Control("choice"),),
            tip="modular: c = a ∘ b mod p. Division is a · b⁻¹ with b⁻¹ = b^(p−2) mod p (Fermat), "
                "defined for b ≠ 0, so '/' has p·(p − 1) pairs. Changing it starts a new run."),
    Setting("train_fraction", "Train fraction", "train fraction", live=False, lo=0.0, hi=1.0,
            lo_open=True, hi_open=True, used_when=_MODULAR, note="at least one pair in each split",
            controls=(Control("p", step=0.05),),
            tip="modular: the share f of all pairs trained on (a seeded permutation; the rest is the "
                "validation set). Grokking needs the table not memorisable into a rule by accident: "
                "at f = 0.5 the net fits the training pairs in ~50 steps, then generalises only "
                "hundreds of steps later, with weight decay. Changing it starts a new run."),
    Setting("no_decay_kinds", "no_decay group", "no_decay group", live=True, choices=NO_DECAY_KINDS,
            choice_labels={"biases+norms": "biases and norm γ, β", "biases": "biases only",
                           "norms": "norm γ, β only", "none": "none (decay everything)"},
            tip="Which one-dimensional parameters go in the no_decay group (λ = 0) while 'also decay "
                "biases and norms' is off: biases, LayerNorm gains γ and shifts β, both (the GPT-3 / "
                "nanoGPT convention: decaying 1-D scale and shift parameters tends to harm), or none. "
                "Weight matrices are always decayed: θ ← (1 − ηλ)θ. Applied at the next step (each "
                "kind is its own param_group; its λ is rewritten in place)."),
)
SETTINGS: dict[str, Setting] = {s.name: s for s in _TABLE}
if list(SETTINGS) != field_names():  # every field described once, in the dataclass's order
    raise RuntimeError(f"SETTINGS and HParams disagree: {sorted(set(SETTINGS) ^ set(field_names()))}")

LIVE_FIELDS = frozenset(n for n, s in SETTINGS.items() if s.live)  # Trainer.update applies these
REBUILD_FIELDS = frozenset(n for n, s in SETTINGS.items() if not s.live)  # these need Trainer.reset
LOSS_LEVEL_FIELDS = frozenset(n for n, s in SETTINGS.items() if s.loss_level)
# Views of the table under their old names (status texts, change markers, tests).
LABELS = {n: s.label for n, s in SETTINGS.items()}
SHORT_LABELS = {n: s.short for n, s in SETTINGS.items()}
SYMBOL_FIELDS = frozenset(n for n, s in SETTINGS.items() if s.symbol)  # "λ 0.1 → 1", not "λ: 0.1 → 1"
CHOICE_LABELS = {n: dict(s.choice_labels) for n, s in SETTINGS.items() if s.choices}
CHOICE_SHORT = {n: dict(s.choice_short or s.choice_labels) for n, s in SETTINGS.items() if s.choices}


# The value kinds, from the annotations (one definition: the dataclass itself).
_KINDS = {f.name: f.type for f in dataclasses.fields(HParams)}
_INT_FIELDS = frozenset(n for n, t in _KINDS.items() if t == "int")
_FLOAT_FIELDS = frozenset(n for n, t in _KINDS.items() if t == "float")
_STR_FIELDS = frozenset(n for n, t in _KINDS.items() if t == "str")
_BOOL_FIELDS = frozenset(n for n, t in _KINDS.items() if t == "bool")


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


def _check_range(name: str, value: float, label: str | None = None) -> None:
    """`value` (of the setting `name`, or one element of it) within the setting's range, or a
    ValueError naming it (`label`, e.g. "betas[1]") and the range."""
    s = SETTINGS[name]
    if not s.in_range(value):
        raise ValueError(f"{label or name} = {value!r} is out of range; allowed: {s.range_text()}")


def _check_choice(name: str, value: str) -> None:
    if value not in SETTINGS[name].choices:
        raise ValueError(f"{name} = {value!r} is not allowed; choose one of: {SETTINGS[name].range_text()}")


def _validate(h: HParams) -> None:
    for name, s in SETTINGS.items():
        if s.choices:
            _check_choice(name, getattr(h, name))
    hid = SETTINGS["hidden"]
    if not h.hidden or len(h.hidden) > MAX_LAYERS or not all(
            isinstance(w, int) and hid.in_range(w) for w in h.hidden):
        raise ValueError(f"hidden = {list(h.hidden)!r} is out of range; allowed: 1 to {MAX_LAYERS} layers, "
                         f"each width an integer in {hid.range_text()}")
    if h.architecture == "conv" and h.dataset != "digits":
        raise ValueError(f"architecture = 'conv' needs dataset = 'digits' (8×8 images), not "
                         f"{h.dataset!r}")
    if h.architecture == "embed_mlp":
        _validate_embed_mlp(h)
    if h.layer_dropout and len(h.layer_dropout) != len(h.hidden):
        raise ValueError(f"layer_dropout = {list(h.layer_dropout)!r} must give one rate per hidden "
                         f"layer ({len(h.hidden)}), or be empty to use dropout everywhere")
    for i, p in enumerate(h.layer_dropout):
        _check_range("layer_dropout", p, f"layer_dropout[{i}]")
    if len(h.betas) != 2:
        raise ValueError(f"betas = {h.betas!r} must be two numbers (β1, β2)")
    for i, b in enumerate(h.betas):
        _check_range("betas", b, f"betas[{i}]")
    for name, s in SETTINGS.items():
        if s.lo is not None and name not in ("hidden", "layer_dropout", "betas", "batch_size"):
            _check_range(name, getattr(h, name))
    if h.dataset == "modular":
        _validate_modular(h)
    if h.architecture == "transformer":  # after the ranges: n_head out of range is said as such
        _validate_transformer(h)
    # At most the training set: beyond it the trainer would quietly train on full batches.
    batch = SETTINGS["batch_size"]
    n_train = train_examples(h)
    batch_lo, batch_hi = int(batch.lo), min(int(batch.hi), n_train)
    if not batch_lo <= h.batch_size <= batch_hi:
        why = (f" (at most the training-set size, train_size = {h.train_size})"
               if batch_hi == h.train_size and h.dataset != "modular" else
               f" (at most the {n_train} training pairs)" if batch_hi == n_train else "")
        raise ValueError(f"batch_size = {h.batch_size!r} is out of range; "
                         f"allowed: [{batch_lo}, {batch_hi}]{why}")


def train_examples(h: HParams) -> int:
    """How many examples the training split holds: train_size, or for modular round(f·N) pairs."""
    if h.dataset == "modular":
        return train_count(h.modulus, h.operation, h.train_fraction)
    return h.train_size


def _validate_modular(h: HParams) -> None:
    """The modular dataset's own bounds: p prime, f leaving a pair in each split (modular.check)."""
    check(h.modulus, h.operation, h.train_fraction)


def _validate_embed_mlp(h: HParams) -> None:
    """embed_mlp gathers rows of a token table: modular data only, no input features to drop."""
    if h.dataset != "modular":
        raise ValueError(f"architecture = 'embed_mlp' needs dataset = 'modular' (token pairs), not "
                         f"{h.dataset!r}")
    if h.input_dropout:
        raise ValueError(f"input_dropout = {h.input_dropout!r} is not allowed with architecture = "
                         "'embed_mlp' (a token id cannot be dropped and rescaled); allowed: 0, or "
                         "architecture = 'mlp' (one-hot tokens)")
    if h.layer_norm:
        raise ValueError("layer_norm = true is not allowed with architecture = 'embed_mlp'; "
                         "allowed: false, or architecture = 'mlp'")


def _validate_transformer(h: HParams) -> None:
    """The transformer reads [a, op, b, =] rows (modular arithmetic) and splits C into heads."""
    if h.dataset != "modular":
        raise ValueError(f"architecture = 'transformer' needs dataset = 'modular' (a ∘ b mod p), "
                         f"not {h.dataset!r}")
    if h.n_embd % h.n_head:
        raise ValueError(f"n_embd = {h.n_embd} must be a multiple of n_head = {h.n_head} "
                         "(each head has n_embd / n_head dimensions)")
