"""The three decay modes (L2, PyTorch's decoupled, the paper's decoupled) against closed forms by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from regsim.hparams import HParams
from regsim.optim import (
    LAMBDA_KEY,
    MODE_KEY,
    apply_decoupled_decay,
    apply_settings,
    build_optimizer,
    effective_lambda,
    lr_at,
)
from regsim.trainer import Trainer

COSINE = dict(schedule="warmup_cosine", warmup_steps=3, total_steps=20, min_lr_ratio=0.1)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def _grads(model: nn.Module, k: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + k)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in model.parameters()]


def _trainer_step(opt: torch.optim.Optimizer, model: nn.Module, h: HParams, k: int,
                  grads: list[torch.Tensor]) -> None:
    """What Trainer.step does around the gradient: lr from the schedule, decoupled decay, step."""
    for group in opt.param_groups:
        group["lr"] = lr_at(h, k)
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    apply_decoupled_decay(opt)
    opt.step()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_sgdw_paper_equals_its_closed_form(optimizer: str) -> None:
    """SGDW (L&H Alg. 1): v ← μv + g; θ ← θ − η_t·λ·θ − lr_t·v, η_t = lr_t/lr the schedule multiplier."""
    h = HParams(optimizer=optimizer, decay_mode="decoupled_paper", lr=0.05, weight_decay=0.3,
                momentum=0.8, **COSINE)
    model = _model()
    opt = build_optimizer(model, h)
    theta = [p.detach().clone() for p in model.parameters()]
    vel = [torch.zeros_like(t) for t in theta]
    mu = h.momentum if optimizer == "momentum" else 0.0
    for k in range(12):
        grads = _grads(model, k)
        _trainer_step(opt, model, h, k, grads)
        eta_t = lr_at(h, k) / h.lr
        for i, (t, g) in enumerate(zip(theta, grads)):
            lam = h.weight_decay if t.dim() >= 2 else 0.0  # biases: no_decay group
            vel[i] = g if (k == 0 or mu == 0) else mu * vel[i] + g
            theta[i] = t - eta_t * lam * t - lr_at(h, k) * vel[i]
    for p, t in zip(model.parameters(), theta):
        torch.testing.assert_close(p.detach(), t, atol=1e-12, rtol=0)


def test_adamw_paper_equals_its_closed_form() -> None:
    """AdamW (L&H Alg. 2): θ ← θ − η_t·λ·θ − lr_t·m̂/(√v̂ + ε)."""
    h = HParams(optimizer="adam", decay_mode="decoupled_paper", lr=0.02, weight_decay=0.4,
                betas=(0.8, 0.95), **COSINE)
    model = _model()
    opt = build_optimizer(model, h)
    theta = [p.detach().clone() for p in model.parameters()]
    m = [torch.zeros_like(t) for t in theta]
    v = [torch.zeros_like(t) for t in theta]
    (b1, b2), eps = h.betas, 1e-8
    for k in range(12):
        grads = _grads(model, k)
        _trainer_step(opt, model, h, k, grads)
        eta_t, lr_t = lr_at(h, k) / h.lr, lr_at(h, k)
        for i, (t, g) in enumerate(zip(theta, grads)):
            lam = h.weight_decay if t.dim() >= 2 else 0.0
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1 ** (k + 1)), v[i] / (1 - b2 ** (k + 1))
            theta[i] = t - eta_t * lam * t - lr_t * m_hat / (v_hat.sqrt() + eps)
    for p, t in zip(model.parameters(), theta):
        torch.testing.assert_close(p.detach(), t, atol=1e-10, rtol=0)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_paper_decay_per_step_does_not_change_with_lr(optimizer: str) -> None:
    """With a zero gradient a step is the decay alone: θ·(1 − η_t·λ) for every lr in the paper's mode,
    θ·(1 − lr_t·λ) in PyTorch's, which does change with lr."""
    after: dict[tuple[str, float], torch.Tensor] = {}
    for mode in ("decoupled_paper", "decoupled"):
        for lr in (1e-3, 0.1):
            h = HParams(optimizer=optimizer, decay_mode=mode, lr=lr, weight_decay=0.2, **COSINE)
            model = _model()
            opt = build_optimizer(model, h)
            w0 = model[0].weight.detach().clone()
            for k in range(5):
                _trainer_step(opt, model, h, k, [torch.zeros_like(p) for p in model.parameters()])
            after[mode, lr] = model[0].weight.detach().clone()
    factor = math.prod(1 - 0.2 * lr_at(HParams(lr=1.0, **COSINE), k) for k in range(5))
    torch.testing.assert_close(after["decoupled_paper", 1e-3], w0 * factor, atol=1e-12, rtol=0)
    torch.testing.assert_close(after["decoupled_paper", 0.1], w0 * factor, atol=1e-12, rtol=0)
    assert (after["decoupled", 1e-3] - after["decoupled", 0.1]).abs().max() > 1e-2


def test_paper_mode_equals_pytorch_mode_at_lambda_over_lr() -> None:
    """The paper's λ is PyTorch's λ·lr: the two trainers trace the same weights (tanh: no relu kinks)."""
    kw = dict(dataset="moons", optimizer="adam", lr=0.02, seed=1, activation="tanh", **COSINE)
    a = Trainer(HParams(decay_mode="decoupled_paper", weight_decay=0.02 * 0.5, **kw), device="cpu")
    b = Trainer(HParams(decay_mode="decoupled", weight_decay=0.5, **kw), device="cpu")
    a.step(30)
    b.step(30)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-5, rtol=0)


def test_live_switch_to_the_paper_mode_keeps_the_moments() -> None:
    t = Trainer(HParams(dataset="moons", optimizer="adam", decay_mode="decoupled", weight_decay=0.1,
                        lr=0.01), device="cpu")
    t.step(5)
    opt, p = t.optimizer, t.model.linears[0].weight
    m = t.optimizer.state[p]["exp_avg"].clone()
    t.update(decay_mode="decoupled_paper")
    t._apply_pending()
    assert t.optimizer is opt and torch.equal(opt.state[p]["exp_avg"], m)
    g = {g["name"]: g for g in opt.param_groups}
    assert g["decay"][MODE_KEY] == "decoupled_paper" and g["decay"][LAMBDA_KEY] == 0.1
    assert g["decay"]["weight_decay"] == pytest.approx(0.1 / 0.01)  # lr_t·(λ/lr) = η_t·λ
    # a later lr change re-derives the coefficient, so the decay per step stays η_t·λ
    t.update(lr=0.05)
    t._apply_pending()
    assert g["decay"]["weight_decay"] == pytest.approx(0.1 / 0.05)


def test_normalized_weight_decay() -> None:
    """λ = λ_norm·√(b/(B·T)), T the epochs = total_steps·b/B (L&H 2019, §B.1)."""
    h = HParams(weight_decay=0.05, normalized_decay=True, batch_size=32, train_size=200, total_steps=1000)
    epochs = 1000 * 32 / 200
    assert effective_lambda(h) == pytest.approx(0.05 * math.sqrt(32 / (200 * epochs)))
    assert effective_lambda(h) == pytest.approx(0.05 / math.sqrt(1000))
    assert effective_lambda(h.replace(normalized_decay=False)) == 0.05
    model = _model()
    opt = build_optimizer(model, h)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(0.05 / math.sqrt(1000))
    opt = apply_settings(opt, model, h, h.replace(normalized_decay=False))
    assert opt.param_groups[0]["weight_decay"] == 0.05
