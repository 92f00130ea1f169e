"""Each setting is defined once (regsim.hparams.SETTINGS) and validation, the controls and the trainer
agree with it: the widgets driven to their ends as a user would (keys, typing) send values HParams
accepts, one grid step further is refused, every live setting reaches training at the next step and
every rebuild setting is refused by Trainer.update with a message naming it."""

from __future__ import annotations

import math

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLineEdit, QWidget
from superqt.utils import signals_blocked

from regsim import trainer as trainer_module
from regsim.hparams import (
    LIVE_FIELDS,
    LOSS_LEVEL_FIELDS,
    REBUILD_FIELDS,
    SETTINGS,
    HParams,
    Setting,
    field_names,
)
from regsim.trainer import Trainer
from ui.controls import GROUPS, TIPS, WIDGETS, ControlPanel, control_range
from ui.widgets import drawable_text

BIG = dict(train_size=65536)  # lets batch_size reach its own bound (it is also capped by train_size)
# What a used-when value needs besides itself to be a valid run (the transformer reads modular data).
NEEDS = {("architecture", "transformer"): {"dataset": "modular"},
         ("architecture", "embed_mlp"): {"dataset": "modular"}}


def used_where(when) -> dict:
    """The settings under which a greyed-when-unused control is used (empty: always used)."""
    if not when:
        return {}
    return {when.field: when.values[0], **NEEDS.get((when.field, when.values[0]), {})}


# ------------------------------------------------------------------------------------ the table
def test_every_field_is_described_once_and_everyone_reads_the_table() -> None:
    assert list(SETTINGS) == field_names()
    assert LIVE_FIELDS | REBUILD_FIELDS == set(field_names()) and not LIVE_FIELDS & REBUILD_FIELDS
    assert LOSS_LEVEL_FIELDS <= LIVE_FIELDS
    # the trainer's sets are the table's (not copies that can drift)
    assert trainer_module.REBUILD_FIELDS is REBUILD_FIELDS
    assert trainer_module.LOSS_LEVEL_FIELDS is LOSS_LEVEL_FIELDS
    for s in SETTINGS.values():
        assert s.label and s.short and s.tip, s.name
        if s.choices:
            assert set(s.choice_labels) == set(s.choices), s.name
        for c in s.controls:
            assert c.kind in ("p", "log", "number", "integer", "choice", "check", "text"), s.name


NUMERIC = [n for n, s in SETTINGS.items() if s.lo is not None and n not in ("hidden", "layer_dropout",
                                                                              "betas")]


@pytest.mark.parametrize("name", NUMERIC)
def test_validation_accepts_the_closed_ends_and_names_the_range_outside(name: str) -> None:
    s = SETTINGS[name]
    base = HParams(**BIG) if name == "batch_size" else HParams(batch_size=8)  # train_size from 8
    kind = int if isinstance(getattr(base, name), int) else float

    def nudge(end: float, outward: int) -> float:  # the next number beyond `end`, outward
        return end + outward * (1 if kind is int else (abs(end) * 1e-6 or 1e-9))

    for end, is_open, outward in ((s.lo, s.lo_open, -1), (s.hi, s.hi_open, +1)):
        inside = nudge(end, -outward) if is_open else end
        base.replace(**{name: kind(inside)})
        outside = end if is_open else nudge(end, outward)
        if name == "batch_size" and outward > 0:
            outside = base.train_size + 1
        with pytest.raises(ValueError, match=rf"^{name} = .* is out of range; allowed: "):
            base.replace(**{name: kind(outside)})


def test_tuple_settings_check_each_element_with_the_tables_range() -> None:
    with pytest.raises(ValueError, match=r"betas\[1\] = 1.0 is out of range; allowed: \[0, 1\)"):
        HParams(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"layer_dropout\[0\] = 1.0 is out of range"):
        HParams(hidden=(8,), layer_dropout=(1.0,))
    HParams(hidden=(4096,) * 8)
    for bad in ((4097,), (0,), (8,) * 9):
        with pytest.raises(ValueError, match=r"hidden = .* allowed: 1 to 8 layers, each width an integer "
                                             r"in \[1, 4096\]"):
            HParams(hidden=bad)


# ------------------------------------------------------------------------------------ the trainer
SMALL = HParams(dataset="moons", hidden=(16,), train_size=64, val_size=64, batch_size=16, lr=0.05,
                optimizer="adam", seed=3)
ADAMW = dict(optimizer="adam", decay_mode="decoupled", weight_decay=0.5)
COSINE = dict(schedule="warmup_cosine", warmup_steps=0, total_steps=2)
TRANSFORMER = dict(dataset="modular", modulus=11, architecture="transformer", n_embd=16, n_head=2,
                   lr=3e-3)  # 60 of the 121 pairs
# For every live setting: the run it matters in, and the value to switch to.
LIVE_CHANGES = {
    "dropout": ({}, 0.5),
    "layer_dropout": ({}, (0.4,)),
    "input_dropout": ({}, 0.3),
    "dropout_kind": (dict(dataset="digits", architecture="conv", hidden=(4,), dropout=0.5), "channel"),
    "weight_decay": ({}, 0.5),
    "decay_mode": (dict(weight_decay=0.5, decay_mode="l2"), "decoupled"),  # Adam: L2 ≠ decoupled
    "normalized_decay": (dict(weight_decay=0.5), True),  # λ = 0.5/√5000 instead of 0.5
    "optimizer": ({}, "sgd"),
    "lr": ({}, 0.2),
    "momentum": (dict(optimizer="momentum"), 0.3),
    "betas": ({}, (0.5, 0.9)),
    "schedule": (dict(warmup_steps=10), "warmup_cosine"),
    "warmup_steps": (dict(COSINE, total_steps=100), 10),
    "total_steps": (dict(COSINE, total_steps=100), 3),
    "min_lr_ratio": (COSINE, 0.9),
    "grad_clip": (dict(optimizer="sgd"), 0.01),  # Adam's first steps barely see a clip
    "decay_norms_and_biases": (ADAMW, True),
    "no_decay_kinds": (ADAMW, "norms"),  # the biases are decayed too
    "label_smoothing": ({}, 0.3),
    "batch_size": ({}, 8),
    **{f"{site}_dropout": (TRANSFORMER, 0.3) for site in ("embd", "attn", "resid", "ffn")},
    "answer_only": (dict(TRANSFORMER, answer_only=False), True),  # the same logits, other rounding
    "decay_embeddings": (dict(TRANSFORMER, **ADAMW), False),
}
REBUILD_CHANGES = {"dataset": "circles", "hidden": (8,), "train_size": 80, "val_size": 80, "noise": 0.5,
                   "seed": 4, "activation": "tanh", "layer_norm": True,
                   "architecture": "mlp",  # "conv" needs digits: refused by update all the same
                   "modulus": 59, "operation": "-", "train_fraction": 0.3,
                   "n_layer": 2, "n_head": 2, "n_embd": 64}


def _weights(t: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in t.model.parameters()]


def test_the_test_tables_cover_every_setting() -> None:
    assert set(LIVE_CHANGES) == LIVE_FIELDS
    assert set(REBUILD_CHANGES) == REBUILD_FIELDS


@pytest.mark.parametrize("name", sorted(LIVE_FIELDS))
def test_every_live_setting_is_applied_at_the_next_step(name: str) -> None:
    """A run switched by Trainer.update before its first step trains exactly as a run built with the
    setting (same weights after 3 steps), and differently from the run left alone: so the update was
    applied, and the test would see it if it were not."""
    base_changes, value = LIVE_CHANGES[name]
    base = SMALL.replace(**base_changes)
    switched = Trainer(base, device="cpu")
    switched.update(**{name: value})
    switched.step(3)
    built = Trainer(base.replace(**{name: value}), device="cpu")
    built.step(3)
    alone = Trainer(base, device="cpu")
    alone.step(3)
    assert switched.hparams == built.hparams and getattr(switched.hparams, name) == value
    assert all(torch.equal(a, b) for a, b in zip(_weights(switched), _weights(built))), name
    assert not all(torch.equal(a, b) for a, b in zip(_weights(alone), _weights(built))), \
        f"{name} = {value!r} changes nothing in 3 steps: the test cannot see it applied"


@pytest.mark.parametrize("name", sorted(REBUILD_FIELDS))
def test_every_rebuild_setting_is_refused_by_update_naming_it(name: str) -> None:
    t = Trainer(SMALL, device="cpu")
    t.step(1)
    before = _weights(t)
    with pytest.raises(ValueError, match=rf"^{name} changes the data or the network; it needs a reset"):
        t.update(**{name: REBUILD_CHANGES[name]})
    t.step(1)  # nothing was queued: the run goes on with its settings
    assert t.hparams == SMALL and t.step_count == 2
    assert not all(torch.equal(a, b) for a, b in zip(before, _weights(t)))
    SMALL.replace(**{name: REBUILD_CHANGES[name]})  # the value itself is a valid setting


# ------------------------------------------------------------------------------------ the controls
@pytest.fixture
def panel(qtbot):
    p = ControlPanel()
    qtbot.addWidget(p)
    p.set_hparams(HParams(**BIG))
    p.show()
    qtbot.waitExposed(p)
    sent: list[dict] = []
    p.live_changed.connect(sent.append)
    p.rebuild_requested.connect(sent.append)
    p.sent = sent
    return p


def _last(panel: ControlPanel, name: str):
    values = [c[name] for c in panel.sent if name in c]
    return values[-1] if values else None


def _value(s: Setting, attr: str, sent):
    """The part of a sent value a widget is responsible for (one β of `betas`)."""
    if len(s.controls) > 1:
        return sent[[c.attr for c in s.controls].index(attr)]
    return sent


def _outside(s: Setting, c, v: float, outward: int) -> float:
    """One grid step beyond the widget's end `v`."""
    grid = {"p": c.step, "number": 10.0 ** -c.decimals, "integer": 1}.get(c.kind)
    if grid is None:  # log slider: the next number at all
        return -1e-12 if v == 0 else v * (1 + outward * 1e-9)
    return round(v + outward * grid, 12)


def _drive_to_end(qtbot, panel: ControlPanel, attr: str, c, end: str) -> None:
    """Move the widget to its min or max as a user would."""
    w: QWidget = getattr(panel, attr)
    key = Qt.Key.Key_Home if end == "min" else Qt.Key.Key_End
    if c.kind == "log":
        w.slider.setFocus()
        qtbot.keyClick(w.slider, key)
    elif c.kind == "p":  # superqt's slider takes no keys: type into its value field
        label = w.findChild(QLineEdit)
        lo, hi = w.minimum(), w.maximum()
        label.setFocus()
        label.selectAll()
        qtbot.keyClicks(label, f"{lo if end == 'min' else hi:.2f}")
        qtbot.keyClick(label, Qt.Key.Key_Return)
    else:  # spin boxes: one arrow press from the value next to the end, then one more
        arrow = Qt.Key.Key_Down if end == "min" else Qt.Key.Key_Up
        near = w.minimum() + w.singleStep() if end == "min" else w.maximum() - w.singleStep()
        with signals_blocked(w):
            w.setValue(near)
        w.setFocus()
        qtbot.keyClick(w, arrow)
        reached = w.value()
        qtbot.keyClick(w, arrow)  # past the end: the box does not move
        assert w.value() == reached, f"{attr} went past its end"


RANGED = [(a, s, c) for a, s, c in WIDGETS if c.kind in ("p", "log", "number", "integer")]


@pytest.mark.parametrize("attr, s, c", RANGED, ids=[a for a, _, _ in RANGED])
def test_each_controls_range_is_the_validation_range(qtbot, panel, attr, s, c) -> None:
    lo, hi = control_range(s, c)
    when = s.used_when  # a greyed control takes no keys: use it where it is used
    base = HParams(**{**BIG, **used_where(when)})
    panel.set_hparams(base)
    assert getattr(panel, attr).isEnabled()
    for end, v_end, outward in (("max", hi, +1), ("min", lo, -1)):  # p starts at its min
        panel.sent.clear()
        _drive_to_end(qtbot, panel, attr, c, end)
        sent = _last(panel, s.name)
        assert sent is not None, f"{attr}: nothing sent at its {end}"
        value = _value(s, attr, sent)
        assert value == pytest.approx(v_end, rel=1e-9, abs=1e-12), (attr, end, value)
        whole = sent if len(s.controls) == 1 else tuple(sent)
        if c.typed_hi is not None and end == "max":
            # A box wider than the range on purpose: its end is refused with a message naming the
            # setting and the range, and the range's own end is accepted.
            with pytest.raises(ValueError, match=rf"^{s.name} = .* is out of range; allowed: \[{s.lo:g}, "):
                base.replace(**{s.name: whole})
            base.replace(**{s.name: type(whole)(s.hi)})
            continue
        base.replace(**{s.name: whole})  # the widget's end is a valid setting
        beyond = _outside(s, c, value, outward)
        bad = beyond if len(s.controls) == 1 else tuple(
            beyond if i == [x.attr for x in s.controls].index(attr) else sent[i] for i in range(len(sent)))
        with pytest.raises(ValueError, match=rf"^{s.name}(\[\d\])? = .* is out of range; allowed: "):
            base.replace(**{s.name: type(value)(bad) if not isinstance(bad, tuple) else bad})


CHOICES = [(a, s, c) for a, s, c in WIDGETS if c.kind == "choice"]


@pytest.mark.parametrize("attr, s, c", CHOICES, ids=[a for a, _, _ in CHOICES])
def test_each_choice_control_offers_exactly_the_allowed_values(qtbot, panel, attr, s, c) -> None:
    combo = getattr(panel, attr)
    if s.used_when:  # a greyed combo takes no keys: use it where it is used
        panel.set_hparams(HParams(**used_where(s.used_when)))
    items = [combo.itemData(i) for i in range(combo.count())]
    assert sorted(items) == sorted(s.choices)
    assert [combo.itemText(i) for i in range(combo.count())] == list(s.choice_labels.values())
    combo.setFocus()
    for key in (Qt.Key.Key_End, Qt.Key.Key_Home):  # the last item, then the first, by keyboard
        panel.sent.clear()
        qtbot.keyClick(combo, key)
        sent = _last(panel, s.name)
        assert sent == combo.currentData() and sent in s.choices
        needs = {"conv": {"dataset": "digits"}, "embed_mlp": {"dataset": "modular"},
                     "transformer": {"dataset": "modular"}}  # architecture
        HParams(**{s.name: sent, **(needs.get(sent, {}) if s.name == "architecture" else {})})


def test_switches_and_the_text_field_send_what_hparams_accepts(qtbot, panel) -> None:
    qtbot.mouseClick(panel.decay_all, Qt.MouseButton.LeftButton)
    assert _last(panel, "decay_norms_and_biases") is True
    field = panel.hidden
    for text, ok in (("4096,4096", True), ("4097", False), (",".join(["8"] * 9), False)):
        panel.sent.clear()
        field.setFocus()
        field.selectAll()
        qtbot.keyClicks(field, text)
        qtbot.keyClick(field, Qt.Key.Key_Return)
        assert _last(panel, "hidden") == text  # a new run is asked for; the window validates it
        if ok:
            HParams.from_dict({"hidden": text})
        else:
            with pytest.raises(ValueError, match=r"^hidden = .* allowed: 1 to 8 layers"):
                HParams.from_dict({"hidden": text})


def test_labels_tooltips_and_live_or_new_run_come_from_the_table(qtbot, panel) -> None:
    forms = [box.layout() for box in panel.findChildren(QWidget) if isinstance(box.layout(), QFormLayout)]
    shown = {name for _, names in GROUPS for name in names}
    assert shown == {n for n, s in SETTINGS.items() if s.controls}, "a setting with a control is not shown"
    for attr, s, c in WIDGETS:
        w = getattr(panel, attr)
        if c.kind == "check":
            assert w.text() == s.label
        else:
            labels = [f.labelForField(w) for f in forms if f.labelForField(w) is not None]
            assert [lab.text() for lab in labels] == [c.label or s.label], attr
        assert TIPS[attr].startswith(c.tip or s.tip) and s.allowed_text() in TIPS[attr]
        if w.isEnabled():
            assert w.toolTip() == drawable_text(TIPS[attr]), attr  # v̂ drawn with its hat on
    # where a setting goes: a live one as live_changed, a data/network one as a new run
    live, rebuild = [], []
    panel.live_changed.connect(live.append)
    panel.rebuild_requested.connect(rebuild.append)
    panel.seed.setValue(5)
    panel.lr.slider.setValue(panel.lr.slider.value() + 1)
    assert rebuild == [{"seed": 5}] and [list(c) for c in live] == [["lr"]]


def test_greyed_controls_follow_the_tables_used_when(qtbot, panel) -> None:
    panel.set_hparams(HParams(optimizer="momentum", schedule="constant", dataset="regression"))
    for attr, s, _c in WIDGETS:
        w = getattr(panel, attr)
        if s.used_when is None:
            assert w.isEnabled(), attr
        else:
            assert w.isEnabled() == (s.name == "momentum"), attr  # SGD + momentum, constant, MSE
            assert ("Now off" in w.toolTip()) == (not w.isEnabled()), attr
    assert math.isclose(panel.momentum.value(), 0.9)
