"""The update-code and groups snapshot parts (regsim/update_code.py) against torch.optim's own state.

The values shown on each line of the rule are checked against a hand computation from the state
torch.optim held before the step (m, v or the momentum buffer, θ) and the gradient it used, and the
θ_new on screen against the weight the live model holds after the step.
"""

from __future__ import annotations

import math
import queue
import threading
import time

import pytest
import torch

from regsim import rules
from regsim.engine import engine_main
from regsim.hparams import HParams
from regsim.optim import KIND_KEY, LAMBDA_KEY, lr_at
from regsim.trainer import Trainer

SMALL = HParams(dataset="moons", hidden=(8,), train_size=64, val_size=64, batch_size=16, lr=0.03,
                weight_decay=0.2, betas=(0.8, 0.95), momentum=0.7, seed=2,
                schedule="warmup_cosine", warmup_steps=2, total_steps=40)
PICK = ("fc1.weight", 5)


def _lines(rv) -> dict[str, float]:
    """label → value over every line of one rule's view."""
    return {label: v for pairs in rv.values for label, v in pairs}


def _pre_state(t: Trainer, p: torch.Tensor) -> dict[str, torch.Tensor]:
    s = t.optimizer.state.get(p, {})
    zero = torch.zeros_like(p)
    return {"theta": p.detach().clone(),
            "m": s.get("exp_avg", zero).clone(), "v": s.get("exp_avg_sq", zero).clone(),
            "buf": (s.get("momentum_buffer") if s.get("momentum_buffer") is not None else zero).clone(),
            "t": int(s.get("step", 0)) + 1}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode", ["l2", "decoupled", "decoupled_paper"])
def test_every_line_equals_the_hand_computation_from_torch_state(optimizer: str, mode: str) -> None:
    t = Trainer(SMALL.replace(optimizer=optimizer, decay_mode=mode), device="cpu")
    t.pick_parameter(*PICK)
    t.snapshot(parts=["update_code"])  # a reader asks: the next step(n) records its last step
    t.step(4)
    p = t.model.linears[0].weight
    pre = _pre_state(t, p)
    lr = lr_at(t.hparams, t.step_count)  # the lr of the step about to be taken
    t.step(1)
    view = t.snapshot(parts=["update_code"]).update_code
    assert view.recorded and view.step == 5 and view.param == "fc1.weight" and view.index == 5
    i = PICK[1]
    g = float(p.grad.reshape(-1)[i])  # what the optimizer used (Trainer.step leaves it in .grad)
    th = float(pre["theta"].reshape(-1)[i])
    lam = SMALL.weight_decay
    decay_factor = lr * lam if mode == "decoupled" else (lr / SMALL.lr) * lam  # lr·λ or η_t·λ
    values = _lines(view.rule)
    assert values["θ"] == pytest.approx(th, abs=1e-7) and values["g"] == pytest.approx(g, abs=1e-7)
    live = t.optimizer.state[p]
    if optimizer == "adam":
        b1, b2 = SMALL.betas
        gt = g + lam * th if mode == "l2" else g
        m = b1 * float(pre["m"].reshape(-1)[i]) + (1 - b1) * gt
        v = b2 * float(pre["v"].reshape(-1)[i]) + (1 - b2) * gt * gt
        m_hat, v_hat = m / (1 - b1 ** 5), v / (1 - b2 ** 5)
        step = lr * m_hat / (math.sqrt(v_hat) + 1e-8)
        assert values["m"] == pytest.approx(m, rel=1e-5) and values["v"] == pytest.approx(v, rel=1e-5)
        assert values["m"] == pytest.approx(float(live["exp_avg"].reshape(-1)[i]), rel=1e-5)
        assert values["step"] == pytest.approx(step, rel=1e-5)
        new = th - step if mode == "l2" else th - decay_factor * th - step
        if mode == "l2":
            assert values["g + λθ"] == pytest.approx(gt, rel=1e-6)
            assert view.l2_before == pytest.approx(lam * th, rel=1e-6)
            assert view.l2_after == pytest.approx(lam * th / (math.sqrt(v_hat) + 1e-8), rel=1e-5)
            assert values["λθ/(√v̂+ε)"] == pytest.approx(view.l2_after, rel=1e-6)
            assert view.effective_decay == pytest.approx(lr * lam / (math.sqrt(v_hat) + 1e-8), rel=1e-5)
    else:
        mu = SMALL.momentum if optimizer == "momentum" else 0.0
        gt = g + lam * th if mode == "l2" else g
        buf = mu * float(pre["buf"].reshape(-1)[i]) + gt
        assert values["buf"] == pytest.approx(buf, rel=1e-5)
        new = th - lr * buf if mode == "l2" else th - decay_factor * th - lr * buf
    if mode != "l2":
        assert view.decoupled == pytest.approx(decay_factor * th, rel=1e-5)
        assert view.effective_decay == pytest.approx(decay_factor, rel=1e-6)
        assert math.isnan(view.l2_before)
    # the snapshot part equals the live model: θ_new is the weight the model holds now
    assert view.rule.theta_new == pytest.approx(new, abs=1e-7)
    assert view.rule.theta_new == pytest.approx(float(p.detach().reshape(-1)[i]), abs=1e-7)
    assert view.theta_live == float(p.detach().reshape(-1)[i])
    assert view.rule.rule == rules.RULE_FOR["adam" if optimizer == "adam" else "sgd", mode]


def test_the_counterpart_is_the_other_rule_from_the_same_state() -> None:
    """Beside Adam+L2, AdamW's step from the same θ, g, m, v: by hand, and differing from it."""
    t = Trainer(SMALL.replace(optimizer="adam", decay_mode="l2", weight_decay=0.5), device="cpu")
    t.pick_parameter(*PICK)
    t.snapshot(parts=["update_code"])
    t.step(3)
    p = t.model.linears[0].weight
    pre, lr = _pre_state(t, p), lr_at(t.hparams, t.step_count)
    t.step(1)
    view = t.snapshot(parts=["update_code"]).update_code
    assert view.counterpart.rule == "AdamW"
    i, (b1, b2), lam = PICK[1], SMALL.betas, 0.5
    g, th = float(p.grad.reshape(-1)[i]), float(pre["theta"].reshape(-1)[i])
    m = b1 * float(pre["m"].reshape(-1)[i]) + (1 - b1) * g
    v = b2 * float(pre["v"].reshape(-1)[i]) + (1 - b2) * g * g
    step = lr * (m / (1 - b1 ** 4)) / (math.sqrt(v / (1 - b2 ** 4)) + 1e-8)
    other = _lines(view.counterpart)
    assert other["decay"] == pytest.approx(lr * lam * th, rel=1e-5)
    assert view.counterpart.theta_new == pytest.approx(th - lr * lam * th - step, abs=1e-7)
    assert abs(view.counterpart.theta_new - view.rule.theta_new) > 1e-6
    marked = view.rule.source[view.rule.marked]
    assert "<- L2" in marked and "<- DECOUPLED" in view.counterpart.source[view.counterpart.marked]


def test_another_tensor_while_paused_is_the_predicted_next_step() -> None:
    t = Trainer(SMALL.replace(optimizer="adam", decay_mode="decoupled"), device="cpu")
    assert t.snapshot(parts=["update_code"]).update_code is None  # no gradient yet
    t.step(3)
    t.pick_parameter("out.bias", 1)
    view = t.snapshot(parts=["update_code"]).update_code
    assert not view.recorded and view.step == 4 and view.param == "out.bias"
    e = rules.explain(t.model.out.bias, t.optimizer)  # the next step from the live state
    assert view.rule.theta_new == pytest.approx(float(e.values["theta_new"][1]), abs=1e-9)
    assert view.theta_live == pytest.approx(float(t.model.out.bias.detach()[1]))


def test_a_bad_pick_names_the_field_and_its_range() -> None:
    t = Trainer(SMALL, device="cpu")
    with pytest.raises(ValueError, match=r"^index = 16 is out of range for fc1.weight \(8×2, 16 "
                                         r"elements\); allowed: \[0, 15\]"):
        t.pick_parameter("fc1.weight", 16)
    with pytest.raises(ValueError, match=r"^parameter = 'fc9.weight' is not in this model; allowed: "
                                         r"fc1.weight, fc1.bias, out.weight, out.bias$"):
        t.pick_parameter("fc9.weight", 0)
    assert t.explain_pick is None


def test_the_engine_takes_a_pick_and_rejects_a_bad_one() -> None:
    cmds: queue.Queue = queue.Queue()
    out: queue.Queue = queue.Queue()
    thread = threading.Thread(target=engine_main, args=(cmds, out, SMALL.to_dict(), "cpu"), daemon=True)
    thread.start()

    def wait(pred):
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                kind, payload = out.get(timeout=0.2)
            except queue.Empty:
                continue
            if pred(kind, payload):
                return payload
        raise AssertionError("not seen")

    try:
        wait(lambda k, p: k == "ready")
        cmds.put(("measure", ["update_code", "param_groups"]))
        cmds.put(("step", 2))
        cmds.put(("explain", {"param": "out.weight", "index": 3}))
        snap = wait(lambda k, p: k == "snapshot" and p.update_code is not None
                    and p.update_code.param == "out.weight")
        assert snap.update_code.index == 3 and [g.name for g in snap.param_groups] == ["decay",
                                                                                       "no_decay"]
        cmds.put(("explain", {"param": "out.weight", "index": 99}))
        msg = wait(lambda k, p: k == "invalid")
        assert msg.startswith("index = 99 is out of range for out.weight")
    finally:
        cmds.put(("stop", None))
        wait(lambda k, p: k == "stopped")
        thread.join(5)


# ----------------------------------------------------------------------------- the groups part
LN = SMALL.replace(layer_norm=True, optimizer="adam", decay_mode="decoupled", weight_decay=0.5)


def test_groups_part_lists_the_live_param_groups() -> None:
    t = Trainer(LN, device="cpu")
    groups = t.snapshot(parts=["param_groups"]).param_groups
    assert [(g.name, g.kind) for g in groups] == [("decay", "weight"), ("no_decay", "bias"),
                                                   ("no_decay", "norm")]
    assert [x.name for x in groups[0].tensors] == ["fc1.weight", "out.weight"]
    assert [x.name for x in groups[2].tensors] == ["ln1.weight", "ln1.bias"]
    torch_counts = [sum(p.numel() for p in g["params"]) for g in t.optimizer.param_groups]
    assert [g.numel for g in groups] == torch_counts
    assert sum(torch_counts) == sum(p.numel() for p in t.model.parameters())
    assert [g.lam for g in groups] == [0.5, 0.0, 0.0]


@pytest.mark.parametrize("kinds, decayed", [("biases+norms", set()), ("biases", {"norm"}),
                                            ("norms", {"bias"}), ("none", {"bias", "norm"})])
def test_a_no_decay_toggle_rewrites_the_groups_in_place(kinds: str, decayed: set) -> None:
    """Which kinds skip the decay, live: the same optimizer and tensors, λ and names rewritten; a
    bias then shrinks by (1 − lr·λ) exactly when decayed (AdamW, by hand)."""
    t = Trainer(LN, device="cpu")
    t.step(3)
    opt, members = t.optimizer, [list(g["params"]) for g in t.optimizer.param_groups]
    t.update(no_decay_kinds=kinds)
    b = t.model.out.bias
    pre = _pre_state(t, b)
    lr = lr_at(t.hparams, t.step_count)
    t.step(1)
    assert t.optimizer is opt and [list(g["params"]) for g in opt.param_groups] == members
    by_kind = {g[KIND_KEY]: g for g in opt.param_groups}
    for kind in ("bias", "norm"):
        assert by_kind[kind]["name"] == ("decay" if kind in decayed else "no_decay")
        assert by_kind[kind][LAMBDA_KEY] == (0.5 if kind in decayed else 0.0)
    (b1, b2), g = LN.betas, b.grad
    m = b1 * pre["m"] + (1 - b1) * g
    v = b2 * pre["v"] + (1 - b2) * g * g
    step = lr * (m / (1 - b1 ** 4)) / ((v / (1 - b2 ** 4)).sqrt() + 1e-8)
    lam = 0.5 if "bias" in decayed else 0.0
    torch.testing.assert_close(b.detach(), pre["theta"] * (1 - lr * lam) - step, atol=1e-6, rtol=0)
    names = {g.kind: g.name for g in t.snapshot(parts=["param_groups"]).param_groups}
    assert names == {"weight": "decay", "bias": by_kind["bias"]["name"], "norm": by_kind["norm"]["name"]}


def test_a_checkpoint_restores_after_a_toggle() -> None:
    """Tensors never move between groups, so a state saved before a toggle loads after it."""
    t = Trainer(LN, device="cpu")
    t.step(2)
    saved = t._save_state()
    t.update(no_decay_kinds="none")
    t.step(2)
    t._load_state(saved)  # what the divergence recovery does
    assert {g[KIND_KEY]: g[LAMBDA_KEY] for g in t.optimizer.param_groups} == {
        "weight": 0.5, "bias": 0.5, "norm": 0.5}  # the settings in force now, not the saved ones


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_every_decay_mode_switches_live_in_the_trainer(optimizer: str) -> None:
    """L2 → PyTorch's decoupled → the paper's, switched by Trainer.update mid-run: each next step
    follows that mode's rule (the recorded rule's θ_new is the live weight), the optimizer kept."""
    t = Trainer(SMALL.replace(optimizer=optimizer, decay_mode="l2"), device="cpu")
    t.pick_parameter(*PICK)
    t.snapshot(parts=["update_code"])
    opt = t.optimizer
    family = "adam" if optimizer == "adam" else "sgd"
    for mode in ("l2", "decoupled", "decoupled_paper", "l2"):
        t.update(decay_mode=mode)
        t.step(2)
        view = t.snapshot(parts=["update_code"]).update_code
        assert t.optimizer is opt and view.rule.rule == rules.RULE_FOR[family, mode]
        live = float(t.model.linears[0].weight.detach().reshape(-1)[PICK[1]])
        assert view.rule.theta_new == pytest.approx(live, abs=1e-7), mode
