"""The update rules, written out: Adam+L2, AdamW (PyTorch's and the paper's), SGD+L2 and SGDW.

Each rule is a plain function of one parameter tensor, a few lines long, that a code view shows as it
is (`source(name)`); the tests check every one against torch.optim step by step, so the lines on
screen are the arithmetic the program runs. Every rule returns `(theta_new, locals())`: the value of
every line, by variable name, for the code view. `explain` runs the rule that a live optimizer uses on
one of its parameters, from that optimizer's current state, without changing anything.

The one line that differs between "L2" and "decoupled" is marked `# <- L2` / `# <- DECOUPLED`:
- L2: the decay λθ joins the gradient, so Adam divides it by √v̂ like any gradient: parameters with a
  large gradient history get *less* decay (the effective rate is lr·λ/(√v̂ + ε), per element).
- decoupled: θ shrinks by lr·λ (PyTorch) or η_t·λ (Loshchilov & Hutter 2019, η_t the schedule
  multiplier) outside Adam's rescaling: every element shrinks by the same factor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .optim import DECAY_KEY, LAMBDA_KEY, MODE_KEY

EPS = 1e-8  # torch.optim.Adam's default ε


# ------------------------------------------------------------------------------------------ the rules
def adam_l2(theta, g, m, v, t, lr, lam, b1, b2, eps=EPS):
    """Adam with an L2 penalty = torch.optim.Adam(weight_decay=λ). t counts steps from 1."""
    l2 = lam * theta                            # the decay term λθ ...
    g = g + l2                                  # <- L2: ... joins the gradient
    m = b1 * m + (1 - b1) * g                   # first moment: running mean of g
    v = b2 * v + (1 - b2) * g * g               # second moment: running mean of g²
    m_hat = m / (1 - b1 ** t)                   # bias corrections
    v_hat = v / (1 - b2 ** t)
    step = lr * m_hat / (v_hat.sqrt() + eps)    # ... so λθ is divided by √v̂ here: uneven decay
    theta_new = theta - step
    return theta_new, locals()


def adamw(theta, g, m, v, t, lr, lam, b1, b2, eps=EPS):
    """AdamW as PyTorch does it = torch.optim.AdamW(weight_decay=λ): the decay is lr·λ·θ."""
    m = b1 * m + (1 - b1) * g                   # first moment: running mean of g (no λθ in it)
    v = b2 * v + (1 - b2) * g * g               # second moment: running mean of g²
    m_hat = m / (1 - b1 ** t)                   # bias corrections
    v_hat = v / (1 - b2 ** t)
    step = lr * m_hat / (v_hat.sqrt() + eps)    # the adaptive step, decay-free
    decay = lr * lam * theta                    # <- DECOUPLED: uniform, but coupled to lr
    theta_new = theta - decay - step
    return theta_new, locals()


def adamw_paper(theta, g, m, v, t, lr, eta_t, lam, b1, b2, eps=EPS):
    """AdamW as the paper writes it (L&H 2019, Alg. 2): the decay is η_t·λ·θ, η_t = lr_t / lr."""
    m = b1 * m + (1 - b1) * g                   # first moment: running mean of g (no λθ in it)
    v = b2 * v + (1 - b2) * g * g               # second moment: running mean of g²
    m_hat = m / (1 - b1 ** t)                   # bias corrections
    v_hat = v / (1 - b2 ** t)
    step = lr * m_hat / (v_hat.sqrt() + eps)    # the adaptive step, decay-free
    decay = eta_t * lam * theta                 # <- DECOUPLED: the schedule only; lr plays no part
    theta_new = theta - decay - step
    return theta_new, locals()


def sgd_l2(theta, g, buf, lr, lam, mu=0.0):
    """SGD (+ momentum μ) with an L2 penalty = torch.optim.SGD(momentum=μ, weight_decay=λ)."""
    l2 = lam * theta                            # the decay term λθ ...
    g = g + l2                                  # <- L2: ... joins the gradient
    buf = mu * buf + g                          # momentum buffer (buf₀ = 0; μ = 0: plain SGD)
    theta_new = theta - lr * buf                # with momentum, λθ is carried along: ~1/(1 − μ) more
    return theta_new, locals()


def sgdw(theta, g, buf, lr, lam, mu=0.0):
    """SGDW as PyTorch-style code does it (regsim's "decoupled"): the decay is lr·λ·θ."""
    buf = mu * buf + g                          # momentum buffer of the gradient alone
    decay = lr * lam * theta                    # <- DECOUPLED: outside the momentum, coupled to lr
    theta_new = theta - decay - lr * buf
    return theta_new, locals()


def sgdw_paper(theta, g, buf, lr, eta_t, lam, mu=0.0):
    """SGDW as the paper writes it (L&H 2019, Alg. 1): the decay is η_t·λ·θ, η_t = lr_t / lr."""
    buf = mu * buf + g                          # momentum buffer of the gradient alone
    decay = eta_t * lam * theta                 # <- DECOUPLED: the schedule only; lr plays no part
    theta_new = theta - decay - lr * buf
    return theta_new, locals()


RULES: dict[str, Callable] = {  # name → rule; the names are (family, decay mode) in words
    "Adam+L2": adam_l2, "AdamW": adamw, "AdamW (paper)": adamw_paper,
    "SGD+L2": sgd_l2, "SGDW": sgdw, "SGDW (paper)": sgdw_paper,
}
RULE_FOR = {("adam", "l2"): "Adam+L2", ("adam", "decoupled"): "AdamW",
            ("adam", "decoupled_paper"): "AdamW (paper)", ("sgd", "l2"): "SGD+L2",
            ("sgd", "decoupled"): "SGDW", ("sgd", "decoupled_paper"): "SGDW (paper)"}


def source(name: str) -> str:
    """The rule's code as the code view shows it (the function itself, docstring included)."""
    return inspect.getsource(RULES[name])


def marked_line(name: str) -> int:
    """The 0-based line of `source(name)` that makes the rule L2 or decoupled."""
    lines = source(name).splitlines()
    return next(i for i, s in enumerate(lines) if "# <- " in s)


# ------------------------------------------------------------------------------- the live explanation
@dataclass(frozen=True)
class Explained:
    """Every line's value for one parameter tensor at its optimizer's next step."""

    rule: str  # the RULES key the optimizer follows, e.g. "Adam+L2"
    values: dict[str, Any]  # variable name → value (tensors of the parameter's shape, or numbers)
    l2_before: torch.Tensor | None  # L2 modes: λθ as it joins the gradient; None when decoupled
    l2_after: torch.Tensor | None  # Adam+L2: λθ/(√v̂ + ε), what the division leaves of it; SGD: λθ
    decoupled: torch.Tensor | None  # decoupled modes: the decay term subtracted from θ
    effective_decay: torch.Tensor  # the fraction of θ this step takes away, per element: lr·λ/(√v̂ + ε)
    # for Adam+L2 (uneven), lr·λ or η_t·λ for the decoupled modes (uniform), lr·λ for SGD+L2


def _group_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict:
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("the parameter is not in this optimizer's param_groups")


@torch.no_grad()
def explain(param: torch.Tensor, optimizer: torch.optim.Optimizer,
            grad: torch.Tensor | None = None) -> Explained:
    """The values on every line of the rule `optimizer` applies to `param`, for its next step.

    The gradient is `grad` (default: `param.grad`, the last batch's gradient); m, v, the step count
    and the momentum buffer are read from `optimizer.state`. Nothing is changed: the rule runs on
    copies. λ and the mode come from the param_group (regsim.optim writes them there); the decoupled
    coefficient is the group's own torch coefficient c (lr_t·c = lr_t·λ, or = η_t·λ in the paper's
    mode), so this is exactly what the optimizer will do."""
    group = _group_of(optimizer, param)
    g = (grad if grad is not None else param.grad)
    if g is None:
        raise ValueError("the parameter has no gradient yet: take a step first or pass grad=")
    theta, g = param.detach().clone(), g.detach().clone()
    lr, mode = float(group["lr"]), group.get(MODE_KEY, "l2")
    lam = float(group.get(LAMBDA_KEY, group.get("weight_decay", 0.0)))
    state = optimizer.state.get(param, {})
    adam = isinstance(optimizer, torch.optim.Adam)
    coef = float(group["weight_decay"] if adam else group.get(DECAY_KEY, 0.0))
    eta_t = lr * coef / lam if lam else 1.0
    name = RULE_FOR["adam" if adam else "sgd", mode]
    if adam:
        b1, b2 = group["betas"]
        eps = float(group.get("eps", EPS))
        m = state["exp_avg"].clone() if "exp_avg" in state else torch.zeros_like(theta)
        v = state["exp_avg_sq"].clone() if "exp_avg_sq" in state else torch.zeros_like(theta)
        t = int(state["step"]) + 1 if "step" in state else 1
        common = dict(m=m, v=v, t=t, lr=lr, b1=b1, b2=b2, eps=eps)
    else:
        buf = state.get("momentum_buffer")
        common = dict(buf=buf.clone() if buf is not None else torch.zeros_like(theta), lr=lr,
                      mu=float(group.get("momentum", 0.0)))
    if mode == "decoupled_paper":
        common["eta_t"] = eta_t
    _, values = RULES[name](theta, g, lam=lam, **common)
    values = dict(values)
    if mode == "l2":
        values["g_total"] = values["g"]  # an L2 rule rebinds g to g + λθ; keep both
    values["g"] = g
    if mode == "l2":
        before = lam * theta
        after = before / (values["v_hat"].sqrt() + eps) if adam else before
        rate = lr * lam / (values["v_hat"].sqrt() + eps) if adam else torch.full_like(theta, lr * lam)
        return Explained(name, values, before, after, None, rate)
    rate = torch.full_like(theta, lr * coef)
    return Explained(name, values, None, None, values["decay"], rate)
