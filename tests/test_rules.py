"""The readable update rules (regsim/rules.py) against torch.optim and regsim's own optimizers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regsim import rules
from regsim.hparams import HParams
from regsim.optim import apply_decoupled_decay, build_optimizer, lr_at

STEPS = 50
LR, LAM, BETAS, MU = 0.03, 0.2, (0.85, 0.99), 0.7
COSINE = dict(schedule="warmup_cosine", warmup_steps=5, total_steps=60, min_lr_ratio=0.1)


def _grad(k: int, shape: tuple[int, ...], theta: torch.Tensor) -> torch.Tensor:
    """A gradient that depends on θ (a quadratic pull plus noise), so a wrong θ changes later steps."""
    gen = torch.Generator().manual_seed(k)
    return 0.5 * theta + torch.randn(shape, generator=gen, dtype=torch.float64)


def _run_rule(name: str, theta0: torch.Tensor, lr_of, lam: float, mu: float = 0.0) -> torch.Tensor:
    theta, m, v, buf = theta0.clone(), torch.zeros_like(theta0), torch.zeros_like(theta0), \
        torch.zeros_like(theta0)
    rule = rules.RULES[name]
    for k in range(STEPS):
        g, lr = _grad(k, theta.shape, theta), lr_of(k)
        kw: dict = dict(lam=lam, lr=lr)
        if "paper" in name:
            kw["eta_t"] = lr / LR
        if name.startswith("Adam"):
            theta, vals = rule(theta, g, m, v, k + 1, b1=BETAS[0], b2=BETAS[1], **kw)
            m, v = vals["m"], vals["v"]
        else:
            theta, vals = rule(theta, g, buf, mu=mu, **kw)
            buf = vals["buf"]
    return theta


def _run_torch(opt_cls, theta0: torch.Tensor, lr_of, decay_step=None, **kw) -> torch.Tensor:
    p = nn.Parameter(theta0.clone())
    opt = opt_cls([p], lr=LR, **kw)
    for k in range(STEPS):
        p.grad = _grad(k, p.shape, p.detach())
        opt.param_groups[0]["lr"] = lr_of(k)
        if decay_step is not None:
            decay_step(opt)
        opt.step()
    return p.detach()


THETA0 = torch.randn((6, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _const(k: int) -> float:
    return LR


def _cosine(k: int) -> float:
    return lr_at(HParams(lr=LR, **COSINE), k)


@pytest.mark.parametrize("lr_of", [_const, _cosine])
def test_adam_rules_equal_torch(lr_of) -> None:
    ref = _run_torch(torch.optim.Adam, THETA0, lr_of, betas=BETAS, weight_decay=LAM)
    torch.testing.assert_close(_run_rule("Adam+L2", THETA0, lr_of, LAM), ref, atol=1e-6, rtol=0)
    ref = _run_torch(torch.optim.AdamW, THETA0, lr_of, betas=BETAS, weight_decay=LAM)
    torch.testing.assert_close(_run_rule("AdamW", THETA0, lr_of, LAM), ref, atol=1e-6, rtol=0)
    # the paper's AdamW is torch's AdamW with λ/lr: lr_t·λ/lr = η_t·λ
    ref = _run_torch(torch.optim.AdamW, THETA0, lr_of, betas=BETAS, weight_decay=LAM / LR)
    torch.testing.assert_close(_run_rule("AdamW (paper)", THETA0, lr_of, LAM), ref, atol=1e-6, rtol=0)
    # and the difference is real: L2 and decoupled part ways
    assert (_run_rule("Adam+L2", THETA0, lr_of, LAM) - ref).abs().max() > 1e-3


@pytest.mark.parametrize("mu", [0.0, MU])
def test_sgd_rules_equal_torch(mu: float) -> None:
    ref = _run_torch(torch.optim.SGD, THETA0, _cosine, momentum=mu, weight_decay=LAM)
    torch.testing.assert_close(_run_rule("SGD+L2", THETA0, _cosine, LAM, mu), ref, atol=1e-6, rtol=0)

    def shrink(opt, c=LAM):  # SGDW by hand around torch's SGD: θ ← (1 − lr_t·c)θ before the step
        opt.param_groups[0]["params"][0].data.mul_(1 - opt.param_groups[0]["lr"] * c)

    ref = _run_torch(torch.optim.SGD, THETA0, _cosine, decay_step=shrink, momentum=mu)
    torch.testing.assert_close(_run_rule("SGDW", THETA0, _cosine, LAM, mu), ref, atol=1e-6, rtol=0)
    ref = _run_torch(torch.optim.SGD, THETA0, _cosine, decay_step=lambda o: shrink(o, LAM / LR),
                     momentum=mu)
    torch.testing.assert_close(_run_rule("SGDW (paper)", THETA0, _cosine, LAM, mu), ref, atol=1e-6,
                               rtol=0)
    if mu:  # with momentum, SGD+L2 ≠ SGDW (without it they are the same update)
        assert (_run_rule("SGD+L2", THETA0, _cosine, LAM, mu) - ref).abs().max() > 1e-3


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode", ["l2", "decoupled", "decoupled_paper"])
def test_rules_equal_regsims_optimizers(optimizer: str, mode: str) -> None:
    """build_optimizer + apply_decoupled_decay (what Trainer.step runs) follows the rule, and
    `explain` predicts each of its steps (θ_new) before it is taken."""
    h = HParams(optimizer=optimizer, decay_mode=mode, lr=LR, weight_decay=LAM, betas=BETAS, momentum=MU,
                **COSINE)
    model = nn.Linear(5, 6, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(THETA0)
    opt = build_optimizer(model, h)
    p = model.weight
    name = rules.RULE_FOR["adam" if optimizer == "adam" else "sgd", mode]
    for k in range(STEPS):
        p.grad = _grad(k, p.shape, p.detach())
        for group in opt.param_groups:
            group["lr"] = lr_at(h, k)
        told = rules.explain(p, opt)
        assert told.rule == name
        apply_decoupled_decay(opt)
        opt.step()
        torch.testing.assert_close(p.detach(), told.values["theta_new"], atol=1e-6, rtol=0)
    mu = MU if optimizer == "momentum" else 0.0
    torch.testing.assert_close(p.detach(), _run_rule(name, THETA0, _cosine, LAM, mu), atol=1e-6, rtol=0)


def test_explain_reports_the_l2_term_and_the_effective_decay() -> None:
    h = HParams(optimizer="adam", decay_mode="l2", lr=LR, weight_decay=LAM, betas=BETAS)
    model = nn.Linear(5, 6, bias=False).double()
    opt = build_optimizer(model, h)
    p = model.weight
    for k in range(3):
        p.grad = _grad(k, p.shape, p.detach())
        opt.step()
    e = rules.explain(p, opt)
    v_hat = (opt.state[p]["exp_avg_sq"] * BETAS[1] + (1 - BETAS[1]) * e.values["g_total"] ** 2) \
        / (1 - BETAS[1] ** 4)
    torch.testing.assert_close(e.values["v_hat"], v_hat)
    torch.testing.assert_close(e.l2_before, LAM * p.detach())
    torch.testing.assert_close(e.l2_after, LAM * p.detach() / (v_hat.sqrt() + 1e-8))
    torch.testing.assert_close(e.effective_decay, LR * LAM / (v_hat.sqrt() + 1e-8))
    assert e.decoupled is None and e.effective_decay.std() > 0  # uneven
    opt = build_optimizer(model, h.replace(decay_mode="decoupled"))
    p.grad = _grad(9, p.shape, p.detach())
    e = rules.explain(p, opt)
    torch.testing.assert_close(e.decoupled, LR * LAM * p.detach())
    assert torch.all(e.effective_decay == LR * LAM)  # uniform


def test_sources_mark_the_decoupling_line() -> None:
    for name in rules.RULES:
        src = rules.source(name)
        line = src.splitlines()[rules.marked_line(name)]
        assert ("<- L2" in line) == name.endswith("L2"), (name, line)
        assert len(src.splitlines()) <= 14, name  # readable: ~10 lines
