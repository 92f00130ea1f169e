"""The 2-D race in numpy: what the Race panel runs in the GUI process, where torch is never loaded.

regsim/race.py runs each racer through its readable rule (regsim/rules.py, the code tested against
torch.optim) on torch tensors; the window's process must not import torch (ui never does: the engine
owns it, in a child process), so this module is the same arithmetic written once more in numpy, all
racers at once as rows of (V, 2) arrays. tests/test_panel_race.py checks every path, loss, decay and
rate here against regsim.race to 1e-9, so the two cannot drift apart.

The update of every racer, in one loop (η = lr, λ the shared decay, t = 1, 2, …):

    g ← ∇L(θ) (+ λθ for the L2 racers)                       L2: the decay joins the gradient
    Adam: m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  step = η·m̂/(√v̂ + ε)
    SGD:  buf ← μ·buf + g;                             step = η·buf
    θ ← θ − d·θ − step                                  d = ηλ (PyTorch), λ_paper (η_t = 1), 0 for L2

and the decay each axis receives per step, as a fraction of θ (`rate`): Adam+L2 ηλ/(√v̂ + ε), per
axis (the axis with the larger gradient history gets less), every decoupled racer d on both axes,
SGD+L2 ηλ. Measured: 6 racers × 200 steps take ~3 ms here against ~40 ms through the torch rules
(`python main.py bench --only optim`), so a drag of the start point can rerun the race every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VARIANTS = ("Adam+L2", "AdamW", "AdamW (paper)", "SGD+L2", "SGDW", "SGDW (paper)")
LOSSES = ("quadratic", "rosenbrock")
QUAD_CURV = (1.0, 25.0)  # the quadratic's curvatures along x and y: condition number 25
QUAD_MIN = (2.0, 1.0)  # its minimum, away from the origin, so the decay visibly moves the end point
EPS = 1e-8  # torch.optim.Adam's default ε, as regsim/rules.py
LIMIT = 1e6  # |θ| past this is a divergence: the rest of that path is NaN


@dataclass(frozen=True)
class Trajectory:
    """One racer's run (the fields of regsim.race.Trajectory, plus where it diverged)."""

    name: str  # a VARIANTS entry
    path: np.ndarray  # (steps + 1, 2) θ from the start on; NaN after a divergence
    loss: np.ndarray  # (steps + 1,) the loss along the path (without the decay term)
    decay: np.ndarray  # (steps, 2) the displacement the decay causes per axis at each step
    rate: np.ndarray  # (steps, 2) that displacement as a fraction of θ
    diverged_at: int = -1  # the first step whose θ left |θ| ≤ LIMIT (or was not finite); -1: never


@dataclass(frozen=True)
class RaceSettings:
    """The race's inputs, validated: each bad one raises a ValueError naming the field and range."""

    loss: str = "quadratic"
    start: tuple[float, float] = (-1.5, 2.0)
    lr: float = 0.05
    lam: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    steps: int = 200
    paper_lam: float | None = None  # the paper variants' λ (η_t = 1); None = lr·λ (they then match)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss = {self.loss!r} is not allowed; choose one of: {', '.join(LOSSES)}")
        if len(self.start) != 2 or not all(_finite(s) and abs(s) <= 100 for s in self.start):
            raise ValueError(f"start = {self.start!r} is out of range; allowed: two numbers in [-100, 100]")
        if not (_finite(self.lr) and 0 < self.lr <= 10):
            raise ValueError(f"lr = {self.lr!r} is out of range; allowed: (0, 10]")
        if not (_finite(self.lam) and 0 <= self.lam <= 10):
            raise ValueError(f"λ = {self.lam!r} is out of range; allowed: [0, 10]")
        if len(self.betas) != 2:
            raise ValueError(f"betas = {self.betas!r}: give two numbers β₁, β₂ in [0, 1)")
        for i, b in enumerate(self.betas, 1):
            if not (_finite(b) and 0 <= b < 1):
                raise ValueError(f"β{'₁₂'[i - 1]} = {b!r} is out of range; allowed: [0, 1)")
        if not (_finite(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum = {self.momentum!r} is out of range; allowed: [0, 1)")
        if not (isinstance(self.steps, (int, np.integer)) and 0 <= self.steps <= 100_000):
            raise ValueError(f"steps = {self.steps!r} is out of range; allowed: whole numbers in [0, 100000]")
        if self.paper_lam is not None and not (_finite(self.paper_lam) and 0 <= self.paper_lam <= 10):
            raise ValueError(f"paper λ = {self.paper_lam!r} is out of range; allowed: [0, 10]")


def _finite(x: object) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) \
        and bool(np.isfinite(x))


def loss_fn(name: str, theta: np.ndarray) -> np.ndarray:
    """The race's 2-D losses, on θ of shape (..., 2): a numpy array or a torch tensor (regsim.race
    uses this one function; only arithmetic, so either works).

    quadratic: ½(a(x − x*)² + b(y − y*)²), a = 1, b = 25 (ill-conditioned: a narrow valley along x).
    rosenbrock: (1 − x)² + 100(y − x²)², the curved valley with its minimum at (1, 1)."""
    x, y = theta[..., 0], theta[..., 1]
    if name == "quadratic":
        (a, b), (cx, cy) = QUAD_CURV, QUAD_MIN
        return 0.5 * (a * (x - cx) ** 2 + b * (y - cy) ** 2)
    if name == "rosenbrock":
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2
    raise ValueError(f"loss = {name!r} is not allowed; choose one of: {', '.join(LOSSES)}")


def grad_fn(name: str, theta: np.ndarray) -> np.ndarray:
    """∇loss on θ of shape (V, 2), in closed form."""
    x, y = theta[:, 0], theta[:, 1]
    if name == "quadratic":
        (a, b), (cx, cy) = QUAD_CURV, QUAD_MIN
        return np.stack([a * (x - cx), b * (y - cy)], axis=1)
    return np.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)], axis=1)


def minimum(name: str) -> tuple[float, float]:
    """Where the loss (without decay) is smallest."""
    return QUAD_MIN if name == "quadratic" else (1.0, 1.0)


def race(settings: RaceSettings, variants: tuple[str, ...] = VARIANTS) -> dict[str, Trajectory]:
    """Every racer in `variants` from the same start with the same settings: name → Trajectory."""
    s = settings
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variant = {unknown[0]!r} is not allowed; choose one of: {', '.join(VARIANTS)}")
    n, steps = len(variants), int(s.steps)
    adam = np.array([v.startswith("Adam") for v in variants])[:, None]
    l2 = np.array([v.endswith("+L2") for v in variants])[:, None]
    paper = np.array(["paper" in v for v in variants])[:, None]
    lam_paper = s.lr * s.lam if s.paper_lam is None else s.paper_lam
    # the decoupled coefficient d per racer: lr·λ (PyTorch), λ_paper·η_t with η_t = 1 (the paper), 0 (L2)
    d = np.where(l2, 0.0, np.where(paper, lam_paper, s.lr * s.lam))
    b1, b2 = s.betas
    theta = np.tile(np.asarray(s.start, dtype=np.float64), (n, 1))
    m = np.zeros((n, 2))
    v = np.zeros((n, 2))
    buf = np.zeros((n, 2))
    path = np.empty((steps + 1, n, 2))
    rate = np.empty((steps, n, 2))
    path[0] = theta
    alive = np.ones(n, dtype=bool)
    diverged = np.full(n, -1)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            g = grad_fn(s.loss, theta)
            g = np.where(l2, g + s.lam * theta, g)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            buf = s.momentum * buf + g
            step = np.where(adam, s.lr * m_hat / (np.sqrt(v_hat) + EPS), s.lr * buf)
            r = np.where(adam & l2, s.lr * s.lam / (np.sqrt(v_hat) + EPS), np.where(l2, s.lr * s.lam, d))
            theta = theta - d * theta - step
            rate[t - 1] = r
            bad = alive & ~(np.isfinite(theta).all(axis=1) & (np.abs(theta) <= LIMIT).all(axis=1))
            if bad.any():
                diverged[bad] = t
                alive &= ~bad
                theta[bad] = np.nan
            path[t] = theta
        losses = loss_fn(s.loss, path)  # (steps + 1, V)
    decay = rate * path[:-1]
    return {name: Trajectory(name, path[:, i].copy(), losses[:, i].copy(), decay[:, i].copy(),
                             rate[:, i].copy(), int(diverged[i])) for i, name in enumerate(variants)}


def contours(loss: str, lo: tuple[float, float], hi: tuple[float, float], n: int = 120) -> tuple:
    """(xs (n,), ys (n,), Z (n, n)) with Z[i, j] = loss(xs[j], ys[i]), as regsim.race.contours."""
    xs = np.linspace(lo[0], hi[0], n)
    ys = np.linspace(lo[1], hi[1], n)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    return xs, ys, loss_fn(loss, grid)


def contour_levels(loss: str, z: np.ndarray, count: int = 12) -> np.ndarray:
    """Log-spaced levels from just above the minimum to the 90th percentile of the visible grid."""
    hi = float(np.nanpercentile(z, 90))
    lo = max(float(np.nanmin(z)), hi * 1e-4, 1e-4)
    return np.geomspace(lo * 1.5, hi, count)
