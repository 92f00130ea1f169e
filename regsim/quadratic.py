"""The 2-D constraint geometry of weight decay, on a quadratic data loss (numpy only, no torch, no Qt).

    L(w) = ½(w − w*)ᵀH(w − w*),   H = R(θ)·diag(s, s/κ)·R(θ)ᵀ

an ellipse with its minimum at w* (the user drags it), its major axis at angle θ and its condition
number κ = λ_max/λ_min. With the L2 penalty λ/2‖w‖² the total loss is minimized where
H(w − w*) + λw = 0, the closed form

    w_λ = (H + λI)⁻¹ H w*                 (Goodfellow et al. 2016, eq. 7.10)

which runs from w* (λ = 0) to the origin (λ → ∞) along the λ-path; in H's eigenbasis each
component of w* is scaled by λᵢ/(λᵢ + λ), so the path bends toward the stiff axis (the flat one is
given up first). "% shrunk" = 100·(1 − ‖w_λ‖/‖w*‖).

Two optimizers run on it:
- gradient descent on L + λ/2‖w‖²: w ← w − η(H(w − w*) + λw). For η < 2/(λ_max + λ) it converges to
  w_λ (the green point), geometrically with rate max|1 − η(λᵢ + λ)|.
- Adam with decoupled decay (AdamW, Loshchilov & Hutter 2019): w ← w − η(m̂/(√v̂ + ε) + λw). The decay
  is no term of any loss; at a fixed point m̂ ≈ g and √v̂ ≈ |g| per coordinate, so
  gᵢ + λwᵢ(|gᵢ| + ε) = 0: with ε → 0 either gᵢ → 0 or |wᵢ| → 1/λ. So AdamW (with a decaying step)
  ends at the minimum of L inside the box ‖w‖∞ ≤ 1/λ (Xie & Li 2024, "Implicit bias of AdamW:
  ℓ∞-norm constrained optimization"), not on the λ-path: at w* itself when w* is inside the box.
  Adam + L2 (the penalty's gradient inside the adaptive step) has the fixed point g + λw = 0, w_λ
  again: on a deterministic problem Adam+L2 and GD+L2 end at the same point by different paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quadratic2D:
    """½(w − w*)ᵀH(w − w*) on ℝ², H from an angle, a condition number and a scale."""

    w_star: tuple[float, float] = (2.0, 1.0)  # the data loss's minimum (blue point)
    angle: float = 0.5  # radians: direction of H's stiff eigenvector (the ellipse's minor axis)
    condition: float = 4.0  # κ = λ_max / λ_min, in [1, 1e6]
    scale: float = 1.0  # λ_max, in (0, 1e6]

    def __post_init__(self) -> None:
        w = self.w_star
        if not (len(w) == 2 and all(isinstance(c, (int, float)) and math.isfinite(c) for c in w)):
            raise ValueError(f"w_star = {w!r} is not allowed; give two finite numbers")
        if not (isinstance(self.angle, (int, float)) and math.isfinite(self.angle)):
            raise ValueError(f"angle = {self.angle!r} is not allowed; give a finite number (radians)")
        if not (isinstance(self.condition, (int, float)) and 1.0 <= self.condition <= 1e6):
            raise ValueError(f"condition = {self.condition!r} is out of range; allowed: [1, 1e6]")
        if not (isinstance(self.scale, (int, float)) and 0.0 < self.scale <= 1e6):
            raise ValueError(f"scale = {self.scale!r} is out of range; allowed: (0, 1e6]")

    @property
    def eigenvalues(self) -> np.ndarray:
        """(2,) descending: s, s/κ."""
        return np.array([self.scale, self.scale / self.condition])

    @property
    def eigenvectors(self) -> np.ndarray:
        """(2, 2) columns = eigenvectors, stiff first."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    @property
    def H(self) -> np.ndarray:
        Q = self.eigenvectors
        return Q @ np.diag(self.eigenvalues) @ Q.T

    @property
    def ws(self) -> np.ndarray:
        return np.asarray(self.w_star, dtype=np.float64)

    def loss(self, w: np.ndarray) -> np.ndarray:
        """L at points w (..., 2) → (...)."""
        d = np.asarray(w, np.float64) - self.ws
        return 0.5 * np.einsum("...i,ij,...j->...", d, self.H, d)

    def grad(self, w: np.ndarray) -> np.ndarray:
        """∇L = H(w − w*), (..., 2)."""
        return (np.asarray(w, np.float64) - self.ws) @ self.H.T

    def grid(self, extent: float, resolution: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs (R,), ys (R,), L (R, R) with rows = y) on [−extent, extent]²: the contours' data."""
        xs = np.linspace(-extent, extent, resolution)
        X, Y = np.meshgrid(xs, xs)
        return xs, xs.copy(), self.loss(np.stack([X, Y], -1))


def _check_lam(lam: float) -> float:
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"λ = {lam!r} is out of range; allowed: [0, ∞)")
    return float(lam)


def regularized_optimum(q: Quadratic2D, lam: float) -> np.ndarray:
    """w_λ = (H + λI)⁻¹ H w*, the minimum of L + λ/2‖w‖² (the green point), (2,)."""
    lam = _check_lam(lam)
    return np.linalg.solve(q.H + lam * np.eye(2), q.H @ q.ws)


def lambda_path(q: Quadratic2D, n: int = 200, lo: float | None = None, hi: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The λ-path: (lams (n + 2,), points (n + 2, 2)) from λ = 0 (w*) through a log-spaced sweep
    to λ = ∞ (the origin). The sweep spans 10⁻³·λ_min to 10³·λ_max unless lo/hi are given, which
    covers the whole bend: outside it every factor λᵢ/(λᵢ + λ) is within 0.1 % of 1 or 0."""
    ev = q.eigenvalues
    lo = 1e-3 * float(ev.min()) if lo is None else lo
    hi = 1e3 * float(ev.max()) if hi is None else hi
    lams = np.concatenate([[0.0], np.logspace(math.log10(lo), math.log10(hi), n), [np.inf]])
    Q, lam_i = q.eigenvectors, ev
    c = Q.T @ q.ws  # w* in the eigenbasis
    with np.errstate(invalid="ignore"):
        factors = np.where(np.isinf(lams)[:, None], 0.0,
                           lam_i[None] / (lam_i[None] + np.where(np.isinf(lams), 0.0, lams)[:, None]))
    return lams, (factors * c[None]) @ Q.T


def shrunk_percent(q: Quadratic2D, lam: float) -> float:
    """100·(1 − ‖w_λ‖/‖w*‖): the readout "Weights shrunk toward origin by 37.5 %" (0 if w* = 0)."""
    n = float(np.linalg.norm(q.ws))
    if n == 0.0:
        return 0.0
    return 100.0 * (1.0 - float(np.linalg.norm(regularized_optimum(q, lam))) / n)


def gd_l2(q: Quadratic2D, lam: float, lr: float, steps: int, w0: np.ndarray | tuple = (0.0, 0.0)
          ) -> np.ndarray:
    """Gradient descent on L + λ/2‖w‖²: w ← w − η(H(w − w*) + λw). Returns the path (steps + 1, 2).

    Converges to w_λ iff η < 2/(λ_max + λ)."""
    lam = _check_lam(lam)
    H, ws = q.H, q.ws
    A = np.eye(2) - lr * (H + lam * np.eye(2))  # the affine map's linear part
    b = lr * (H @ ws)
    path = np.empty((steps + 1, 2))
    path[0] = w0
    for t in range(steps):
        path[t + 1] = A @ path[t] + b
    return path


def adam(q: Quadratic2D, lam: float, lr: float, steps: int, w0: np.ndarray | tuple = (0.0, 0.0),
         decoupled: bool = True, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         lr_decay: bool = False) -> np.ndarray:
    """Adam on L with decay λ, as torch.optim.Adam/AdamW compute it; the path (steps + 1, 2).

    decoupled=True (AdamW): w ← w(1 − ηλ) − η·m̂/(√v̂ + ε), m and v of g = ∇L alone.
    decoupled=False (Adam + L2): g = ∇L + λw goes into m and v.
    lr_decay: η_t = η·(1 − t/steps) (a linear schedule to 0), so the iterate settles at the fixed point
    instead of orbiting it at amplitude ~η."""
    lam = _check_lam(lam)
    b1, b2 = betas
    w = np.array(w0, dtype=np.float64)
    m = np.zeros(2)
    v = np.zeros(2)
    path = np.empty((steps + 1, 2))
    path[0] = w
    for t in range(1, steps + 1):
        eta = lr * (1.0 - (t - 1) / steps) if lr_decay else lr
        g = q.grad(w)
        if decoupled:
            w = w * (1.0 - eta * lam)
        else:
            g = g + lam * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1**t), v / (1 - b2**t)
        w = w - eta * mh / (np.sqrt(vh) + eps)
        path[t] = w
    return path


def linf_box_optimum(q: Quadratic2D, lam: float, iters: int = 5000) -> np.ndarray:
    """min L(w) subject to ‖w‖∞ ≤ 1/λ, by projected gradient descent (step 1/λ_max): where AdamW
    ends on a deterministic problem as ε → 0 and the step decays (see the module docstring).
    λ = 0: no box, w*."""
    lam = _check_lam(lam)
    if lam == 0.0:
        return q.ws.copy()
    r = 1.0 / lam
    w = np.clip(q.ws, -r, r)
    step = 1.0 / float(q.eigenvalues.max())
    for _ in range(iters):
        w = np.clip(w - step * q.grad(w), -r, r)
    return w
