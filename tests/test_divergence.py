"""Divergence and collapse: caught, restored to a good checkpoint, explained; no false alarms.

The runs are driven as the engine drives them: `step(n)` in chunks of varying size (the engine sizes
chunks to ~8 ms), so the per-step rules are exercised across call boundaries.
"""

from __future__ import annotations

import math
import queue
import re
import threading

import pytest
import torch

from regsim import HParams, Trainer
from regsim.divergence import LossMonitor, constant_loss
from regsim.engine import engine_main
from regsim.presets import load_preset

CHUNKS = (7, 1, 23, 3, 16, 38, 2, 11)  # engine-like chunk sizes, cycled


def drive(t: Trainer, steps: int, changes: dict[int, dict] | None = None,
          eval_every: int = 25) -> tuple[int, float]:
    """Train up to `steps` steps or until divergence; returns (steps done, best train loss seen),
    the loss measured independently: eval mode, whole training set, every `eval_every` steps."""
    changes = changes or {}
    done, best, next_eval, i = 0, math.inf, 0, 0
    while done < steps and t.status != "diverged":
        if done >= next_eval:
            best = min(best, eval_train_loss(t))
            next_eval += eval_every
        n = CHUNKS[i % len(CHUNKS)]
        i += 1
        for at, change in changes.items():
            if done <= at < done + n:
                t.update(**change)
        t.step(n)
        done += n
    return done, best


@torch.no_grad()
def eval_train_loss(t: Trainer) -> float:
    """Cross-entropy / MSE of the current weights in eval mode over the whole training set."""
    model = t.model
    was = model.training
    model.eval()
    try:
        out = model(t.x_train)
        if t.data.task == "regression":
            return float(torch.nn.functional.mse_loss(out, t.y_train))
        return float(torch.nn.functional.cross_entropy(out, t.y_train))
    finally:
        model.train(was)


# ------------------------------------------------------------------------------------ collapse


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_lr_1_collapse_to_chance_is_caught_and_a_good_checkpoint_restored(optimizer) -> None:
    """The default moons net (moons_dropout) at lr = 1 learns, blows up and sits at chance level
    (loss ln 2 ≈ 0.69, ~50 %). Before the fix nothing fired: it trained on at chance for ever."""
    torch.manual_seed(0)
    t = Trainer(load_preset("moons_dropout").replace(lr=1.0, optimizer=optimizer), device="cpu")
    done, best = drive(t, 4000)
    assert t.status == "diverged", f"not caught in {done} steps"
    m = re.match(r"Training diverged at step (\d+): it collapsed to chance level: the loss blew up "
                 r"to [\d.e+]+ at step (\d+) and has stayed near 0.6\d+ since .*Restored the weights "
                 r"from step (\d+) \(train loss ([\d.]+)\)\. Lower lr \(now 1\), e\.g\. ×0\.1 to 0\.1, "
                 r"then resume\.$", t.message)
    assert m, t.message
    bad, spike, good, loss = (int(m[1]), int(m[2]), int(m[3]), float(m[4]))
    assert good < spike < bad and t.step_count == good
    restored = eval_train_loss(t)
    assert restored == pytest.approx(loss, rel=2e-3)  # the message tells the truth
    assert restored <= 1.5 * best and restored < 0.45, (restored, best)
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    snap = t.snapshot()
    assert snap.status == "diverged" and snap.step == good
    assert (good, "diverged: weights restored") in snap.events
    # it trains again after resume, from the good weights, at the lower lr
    t.update(lr=0.1)
    t.resume()
    t.step(50)
    assert t.status == "running" and eval_train_loss(t) < 0.6


def test_lr_raised_to_1_mid_run_restores_the_trained_weights() -> None:
    """The lecture's move: train at the default lr, then drag lr to the slider's maximum."""
    t = Trainer(load_preset("moons_dropout").replace(optimizer="momentum", lr=0.05), device="cpu")
    done, best = drive(t, 3500, changes={1000: {"lr": 1.0}})
    assert t.status == "diverged" and done > 1000
    restored = eval_train_loss(t)
    assert t.step_count <= 1000 + max(CHUNKS)  # before the blow-up
    assert restored <= 1.5 * best and restored < 0.2, (restored, best)


def test_classic_explosion_is_still_caught_and_restored() -> None:
    """lr = 1e3: NaN/inf or an exploding loss within a few steps, with the same restore."""
    t = Trainer(HParams(dataset="moons", optimizer="momentum", lr=1e3), device="cpu")
    start = eval_train_loss(t)
    drive(t, 500)
    assert t.status == "diverged"
    assert "NaN/inf" in t.message or "exploded" in t.message
    assert "Lower lr (now 1e3), e.g. ×0.1 to 100, then resume" in t.message
    assert re.search(r"Restored the weights from step \d+ \(train loss [\d.]+\)", t.message)
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    assert eval_train_loss(t) <= 1.05 * start


def test_restore_keeps_the_current_settings_after_an_optimizer_switch() -> None:
    """A checkpoint saved under Adam restored after a switch to SGD must not crash or bring back
    the old λ: the current settings win, the saved moments are dropped."""
    t = Trainer(load_preset("moons_dropout"), device="cpu")
    drive(t, 300)
    t.update(optimizer="momentum", weight_decay=0.05, lr=1e3)
    drive(t, 300)
    assert t.status == "diverged"
    assert isinstance(t.optimizer, torch.optim.SGD)
    assert t.optimizer.param_groups[0]["momentum"] == 0.9
    t.update(lr=0.01)
    t.resume()
    t.step(20)
    assert t.status == "running"


def test_engine_stops_on_collapse_with_the_message() -> None:
    """The engine's divergence path (status "diverged", training stops) also serves a collapse,
    so the GUI's banner fires."""
    cmds: queue.Queue = queue.Queue()
    out: queue.Queue = queue.Queue()
    h = load_preset("moons_dropout").replace(lr=1.0, optimizer="momentum")
    th = threading.Thread(target=engine_main, args=(cmds, out, h.to_dict(), "cpu"), daemon=True)
    th.start()
    cmds.put(("run", None))
    try:
        while True:
            kind, payload = out.get(timeout=60)
            assert kind not in ("error", "stopped"), payload
            if kind == "snapshot" and payload.status == "diverged":
                break
        assert "collapsed to chance level" in payload.message and "Lower lr" in payload.message
        step = payload.step
        cmds.put(("snapshot", None))
        while True:
            kind, later = out.get(timeout=30)
            if kind == "snapshot":
                break
        assert later.step == step and later.status == "diverged"  # stopped, not training on
    finally:
        cmds.put(("stop", None))
        th.join(timeout=30)


# ------------------------------------------------------------------------------------ no false alarms


BASE = load_preset("moons_dropout")
QUIET = {
    "default": (BASE, 3000, None),
    "p=0.9": (BASE.replace(dropout=0.9), 3000, None),
    "λ=0.1 decoupled": (BASE.replace(weight_decay=0.1), 3000, None),
    "λ=0.1 L2": (BASE.replace(weight_decay=0.1, decay_mode="l2"), 3000, None),
    "warmup_cosine": (BASE.replace(schedule="warmup_cosine", warmup_steps=300, total_steps=3000,
                                   lr=0.03), 3000, None),
    "digits": (HParams(dataset="digits", train_size=300), 2000, None),
    "regression": (HParams(dataset="regression", dropout=0.5), 3000, None),
    "slow start at chance (SGD lr 3e-3)": (BASE.replace(optimizer="sgd", lr=3e-3), 3000, None),
    "λ raised to 1 mid-run": (BASE, 3000, {1000: {"weight_decay": 1.0}}),
    "p raised 0 → 0.9 mid-run": (BASE.replace(dropout=0.0), 3000, {1000: {"dropout": 0.9}}),
    "lr 0.1 Adam": (BASE.replace(lr=0.1), 3000, None),
}


@pytest.mark.parametrize("name", list(QUIET))
def test_no_false_alarm(name) -> None:
    h, steps, changes = QUIET[name]
    t = Trainer(h, device="cpu")
    done, _ = drive(t, steps, changes, eval_every=10**9)
    assert t.status != "diverged", t.message
    assert done >= steps


# ------------------------------------------------------------------------------------ the monitor


def test_chance_level_is_the_best_constant_predictor() -> None:
    assert constant_loss("classification", torch.tensor([0, 1] * 50).numpy(), 2) == pytest.approx(
        math.log(2))
    assert constant_loss("classification", torch.arange(10).numpy(), 10) == pytest.approx(
        math.log(10))
    y = torch.tensor([[1.0], [3.0]]).numpy()
    assert constant_loss("regression", y, 1) == pytest.approx(1.0)


def test_monitor_is_independent_of_chunking() -> None:
    """The same losses fed in one call or in pieces give the same verdict at the same step."""
    g = torch.Generator().manual_seed(0)
    learn = (0.7 * torch.exp(-torch.arange(400) / 80.0) + 0.05 * torch.rand(400, generator=g)).tolist()
    losses = learn + [50.0] + [0.69 + 0.05 * (i % 3) for i in range(400)]
    verdicts = []
    for pieces in ([losses], [losses[i:i + 13] for i in range(0, len(losses), 13)]):
        m = LossMonitor(math.log(2), 0.7)
        v = None
        for piece in pieces:
            v = m.feed(piece)
            if v:
                break
        verdicts.append(v)
    assert verdicts[0] == verdicts[1]
    assert verdicts[0].kind == "collapse" and verdicts[0].spike_step == 401
    assert verdicts[0].step == 401 + 300


def test_monitor_without_a_blow_up_never_calls_a_return_to_chance_a_collapse() -> None:
    """A strong λ pulling a trained net back to chance level is regularization, not divergence."""
    losses = [0.7 - 0.6 * min(1, i / 300) for i in range(600)]
    losses += [0.1 + 0.6 * min(1, i / 300) for i in range(2000)]
    m = LossMonitor(math.log(2), 0.7)
    assert m.feed(losses) is None
