"""The 2-D race: Adam+L2, AdamW, SGD+L2 and SGDW on the same loss with the same hyperparameters.

Each racer runs its readable rule from regsim/rules.py (the ones tested against torch.optim) on a
2-vector θ in float64, so the race shows exactly the arithmetic of the real optimizers. Along the way
it records the decay each axis receives per step:
- Adam+L2: lr·λθ/(√v̂ + ε), per axis: the axis with the larger gradient history (larger v̂) is decayed
  *less* (on the ill-conditioned quadratic the steep axis barely feels λ);
- AdamW: lr·λθ (PyTorch) or η_t·λθ (the paper): the same fraction of θ on both axes;
- SGD+L2 and SGDW: lr·λθ. Without momentum the two are the same update, so their paths lie on top
  of each other (the test checks 1e-9), and the paper's SGDW joins them when its λ is lr·λ.

The schedule is constant here, so η_t = 1 and the paper variants decay by λ_paper·θ per step;
`paper_lam` defaults to lr·λ, the value that makes them match PyTorch's variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import rules

# One definition of the variants, the losses and their constants, shared with the numpy race
# the panel runs (regsim/race_np.py, no torch).
from .race_np import LOSSES, QUAD_CURV, QUAD_MIN, VARIANTS, loss_fn  # noqa: F401 (re-exported)


def grad_fn(name: str, theta: torch.Tensor) -> torch.Tensor:
    """∇loss in closed form (float64; autograd would cost ~10× more per step here)."""
    x, y = theta[0], theta[1]
    if name == "quadratic":
        (a, b), (cx, cy) = QUAD_CURV, QUAD_MIN
        return torch.stack([a * (x - cx), b * (y - cy)])
    if name == "rosenbrock":
        return torch.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    raise ValueError(f"loss = {name!r} is not allowed; choose one of: {', '.join(LOSSES)}")


@dataclass(frozen=True)
class Trajectory:
    """One racer's run."""

    name: str  # a VARIANTS entry
    path: np.ndarray  # (steps + 1, 2) θ from the start on
    loss: np.ndarray  # (steps + 1,) the loss along the path (without the decay term)
    decay: np.ndarray  # (steps, 2) the displacement the decay causes per axis at each step
    rate: np.ndarray  # (steps, 2) that displacement as a fraction of θ: lr·λ/(√v̂ + ε) for Adam+L2


def run_one(name: str, loss: str = "quadratic", start: tuple[float, float] = (-1.5, 2.0),
            lr: float = 0.05, lam: float = 0.1, betas: tuple[float, float] = (0.9, 0.999),
            momentum: float = 0.0, steps: int = 200, paper_lam: float | None = None) -> Trajectory:
    """One racer from `start` for `steps` steps; the bad inputs raise a ValueError naming the field."""
    _check(name, loss, lr, lam, betas, momentum, steps)
    theta = torch.tensor(start, dtype=torch.float64)
    zeros = torch.zeros(2, dtype=torch.float64)
    m, v, buf = zeros, zeros, zeros
    b1, b2 = betas
    lam_used = (lr * lam if paper_lam is None else paper_lam) if "paper" in name else lam
    rule = rules.RULES[name]
    path, decay, rate = [theta], [], []
    for t in range(1, steps + 1):
        g = grad_fn(loss, theta)
        kw: dict = dict(lr=lr, lam=lam_used)
        if "paper" in name:
            kw["eta_t"] = 1.0  # constant schedule
        if name.startswith("Adam"):
            new, vals = rule(theta, g, m, v, t, b1=b1, b2=b2, **kw)
            m, v = vals["m"], vals["v"]
        else:
            new, vals = rule(theta, g, buf, mu=momentum, **kw)
            buf = vals["buf"]
        if name == "Adam+L2":  # the L2 term after Adam's division
            r = lr * lam_used / (vals["v_hat"].sqrt() + rules.EPS)
        else:  # uniform: lr·λ, or η_t·λ for the paper variants
            r = torch.full((2,), (1.0 if "paper" in name else lr) * lam_used, dtype=torch.float64)
        rate.append(r)
        decay.append(r * theta)
        theta = new
        path.append(theta)
    p = torch.stack(path)
    return Trajectory(name, p.numpy(), loss_fn(loss, p).numpy(),
                      torch.stack(decay).numpy() if decay else np.zeros((0, 2)),
                      torch.stack(rate).numpy() if rate else np.zeros((0, 2)))


def race(loss: str = "quadratic", start: tuple[float, float] = (-1.5, 2.0), lr: float = 0.05,
         lam: float = 0.1, betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.0,
         steps: int = 200, variants: tuple[str, ...] = VARIANTS,
         paper_lam: float | None = None) -> dict[str, Trajectory]:
    """Every variant from the same start with the same (lr, λ, β, μ): name → Trajectory."""
    return {n: run_one(n, loss, start, lr, lam, betas, momentum, steps, paper_lam) for n in variants}


def contours(loss: str, lo: tuple[float, float], hi: tuple[float, float], n: int = 120) -> tuple:
    """(xs (n,), ys (n,), Z (n, n)) for the contour plot, Z[i, j] = loss(xs[j], ys[i])."""
    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (n, n, 2)
    return xs.numpy(), ys.numpy(), loss_fn(loss, grid).numpy()


def _check(name: str, loss: str, lr: float, lam: float, betas: tuple[float, float], momentum: float,
           steps: int) -> None:
    if name not in rules.RULES:
        raise ValueError(f"variant = {name!r} is not allowed; choose one of: {', '.join(VARIANTS)}")
    if loss not in LOSSES:
        raise ValueError(f"loss = {loss!r} is not allowed; choose one of: {', '.join(LOSSES)}")
    if not 0 < lr <= 10:
        raise ValueError(f"lr = {lr!r} is out of range; allowed: (0, 10]")
    if not 0 <= lam <= 10:
        raise ValueError(f"lam = {lam!r} is out of range; allowed: [0, 10]")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas = {betas!r} is out of range; allowed: two numbers in [0, 1)")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum = {momentum!r} is out of range; allowed: [0, 1)")
    if not 0 <= steps <= 100_000:
        raise ValueError(f"steps = {steps!r} is out of range; allowed: [0, 100000]")
