"""The constraint picture on the real model: the loss on the plane of its top two Hessian eigenvectors.

    f(a, b) = L(θ + a·q₁ + b·q₂),   Hqᵢ = λᵢqᵢ,  λ₁ ≥ λ₂ the largest eigenvalues at θ (the current weights)

In these coordinates the loss near θ is ≈ L(θ) + gᵀ(a q₁ + b q₂) + ½(λ₁a² + λ₂b²): the same ellipses as
the 2-D toy of the Constraint geometry panel, with the stiffest axis along a. The decay term pulls the
weights toward the origin; its force −c⊙θ (cᵢ: each parameter's coefficient, landscape_math.decay_term)
projected on the plane is `pull`, and the origin's own projection onto the plane through θ is
`origin` = (−q₁ᵀθ, −q₂ᵀθ). Treating θ as the no-decay minimum w*, the quadratic theory moves it to
w̃ with qᵢᵀw̃ = λᵢ/(λᵢ + α)·qᵢᵀθ (Goodfellow et al. 2016 eq. 7.13), i.e. to `predicted` =
(−α/(λ₁+α)·q₁ᵀθ, −α/(λ₂+α)·q₂ᵀθ) on the plane (nan when the penalty is not α/2‖θ‖² on every
parameter, or λᵢ + α ≤ 0).

The eigenvectors come from regsim.analyses.hessian (Lanczos on Hessian-vector products, eval mode)
and the grid from landscape_math's batched forward; both average the loss over the same `points`
training examples. Importing this module does not import torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from .base import Progress, RunView, drain, require


@dataclass(frozen=True)
class HessianPlaneRequest:
    resolution: int = 41  # grid points per axis, in [3, 201]
    span: float = 0.0  # half-width of the grid (parameter units); 0 = auto (the origin's projection
    #                    and the predicted optimum inside, at least 3 / √λ₂ · 0.1)
    points: int = 512  # training examples the loss (and the Hessian) average over, >= 1
    seed: int = 0  # the Lanczos start vector

    def __post_init__(self) -> None:
        def integer(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not (integer(self.resolution) and 3 <= self.resolution <= 201):
            raise ValueError(f"resolution = {self.resolution!r} is out of range; allowed: [3, 201]")
        if not (isinstance(self.span, (int, float)) and not isinstance(self.span, bool)
                and math.isfinite(float(self.span)) and 0 <= float(self.span) <= 100):
            raise ValueError(f"span = {self.span!r} is out of range; allowed: 0 (auto) or (0, 100]")
        if not (integer(self.points) and self.points >= 1):
            raise ValueError(f"points = {self.points!r} is out of range; allowed: [1, ∞)")
        if not (integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")


@dataclass(frozen=True)
class HessianPlaneResult:
    step: int  # the step whose weights θ are the centre
    eigenvalues: np.ndarray  # (2,) λ₁ ≥ λ₂
    eigenvectors: np.ndarray  # (2, P) float32 unit rows q₁, q₂ (model.parameters() order)
    alphas: np.ndarray  # (A,) coefficients a along q₁
    betas: np.ndarray  # (B,) coefficients b along q₂
    loss: np.ndarray  # (B, A) L(θ + a q₁ + b q₂); rows = betas
    center_loss: float  # L(θ)
    origin: np.ndarray  # (2,) the origin's projection onto the plane: (−q₁ᵀθ, −q₂ᵀθ)
    pull: np.ndarray  # (2,) the decay force −c⊙θ projected on (q₁, q₂) (0 without decay)
    alpha: float  # α when the penalty is α/2‖θ‖² on every parameter, else nan (0: no decay)
    predicted: np.ndarray  # (2,) the quadratic theory's decayed optimum on the plane (see docstring)
    note: str  # the decay term and any caveat (landscape_math.decay_term, flat_weights)
    points: int  # training examples averaged
    iterations: int  # Lanczos steps
    elapsed: float


Request = HessianPlaneRequest
Result = HessianPlaneResult


def compute(run: RunView, request: HessianPlaneRequest
            ) -> Generator[Progress, None, HessianPlaneResult]:
    """Lanczos (k = 2; progress per Hessian-vector product), then the grid (progress per chunk)."""
    import torch

    from . import flat_weights, hessian
    from . import landscape_math as m

    require(run, "The Hessian plane")
    t0 = time.perf_counter()
    res = request.resolution
    n = min(request.points, len(run.x_train))
    gen = hessian.compute(run, hessian.HessianRequest(k=2, points=n, seed=request.seed, trace_samples=0))
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            hess = stop.value
            break
        yield Progress(p.done, p.total + res * res)
    lanczos_total = hess.iterations
    fw = drain(flat_weights.compute(run, flat_weights.FlatWeightsRequest()))
    Q = hess.eigenvectors.astype(np.float64)
    theta = fw.weights
    origin = -(Q @ theta)
    pull = -(Q @ (fw.coef * theta))
    lam = np.asarray(hess.eigenvalues, np.float64)
    alpha = fw.alpha if fw.uniform or fw.alpha == 0 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        predicted = np.where(lam + alpha > 0, alpha / (lam + alpha) * origin, np.nan)
    if request.span:
        span = float(request.span)
    else:
        reach = [abs(v) for v in (*origin, *predicted) if math.isfinite(v)]
        span = max([1.15 * r for r in reach] + [0.3 / math.sqrt(max(lam[1], 1e-6))])
    alphas, betas = np.linspace(-span, span, res), np.linspace(-span, span, res)
    params = [q for q in run.model.parameters() if q.requires_grad]
    dtype = params[0].dtype
    d1 = m._unflatten(torch.from_numpy(hess.eigenvectors[0]).to(dtype), params)
    d2 = m._unflatten(torch.from_numpy(hess.eigenvectors[1]).to(dtype), params)
    x, y = run.x_train[:n], run.y_train[:n]
    grid = m.iter_grid_losses(run, d1, d2, alphas, betas, x, y)
    while True:
        try:
            _, done = next(grid)
        except StopIteration as stop:
            loss = stop.value
            break
        yield Progress(lanczos_total + done, lanczos_total + res * res)
    zero = np.zeros(1)
    center = float(m.grid_losses(run, d1, d2, zero, zero, x, y)[0, 0])
    return HessianPlaneResult(step=run.step, eigenvalues=lam, eigenvectors=hess.eigenvectors,
                              alphas=alphas, betas=betas, loss=np.asarray(loss), center_loss=center,
                              origin=origin, pull=pull, alpha=float(alpha), predicted=predicted,
                              note=fw.note, points=n, iterations=hess.iterations,
                              elapsed=time.perf_counter() - t0)
