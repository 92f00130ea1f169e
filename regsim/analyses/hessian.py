"""The Hessian of the live training loss: top-k eigen-pairs by Lanczos, a trace, a spectral density.

    H = ∇²L(θ),   L(θ) = (1/N) Σₙ ℓ(f(xₙ; θ), yₙ)   (the data loss on N training points, no penalty)

H (P × P, P = every parameter) is never formed: Lanczos needs only Hessian-vector products Hv, and
one costs about two backward passes. The gradient g = ∇L is built once with `create_graph=True`;
each product is then Hv = ∇(gᵀv) = autograd.grad(g, θ, grad_outputs=v, retain_graph=True), a
double backward through the retained graph with no new forward pass (Pearlmutter 1994). Because
there is one forward pass, the function is one function even in train mode: its dropout masks are
drawn once, from the Request's seed (the network's own (seed, step, site) stream, see
regsim/models.py), and every product differentiates the same masked network. PyHessian
(Yao et al. 2020) forces eval mode; `mode="train"` is the loss the optimizer actually descends.

- **Lanczos** (Golub & Van Loan §10.1) with full reorthogonalization (classical Gram–Schmidt twice,
  in float64; at m ≤ a few hundred vectors of ≤ 10⁵ entries it costs less than the products):
  Tₘ = VₘᵀHVₘ is tridiagonal, its eigenvalues θᵢ (Ritz values) converge to H's extreme eigenvalues
  first. A Ritz pair's residual ‖Hy − θy‖ = |βₘ sₘᵢ| (sₘᵢ: last entry of Tₘ's i-th eigenvector), so
  convergence is checked for free; we stop when the top k residuals are ≤ tol·max|θ|.
- **Hutchinson** (1990): tr H = E[zᵀHz] for Rademacher z (entries ±1), averaged over `trace_samples`
  probes; the standard error is reported beside it.
- **Stochastic Lanczos quadrature** (Lin, Saad & Yang 2016; Ghorbani et al. 2019): for a unit probe
  v, m Lanczos steps give nodes θⱼ and weights τⱼ = (first entry of Tₘ's j-th eigenvector)² with
  vᵀφ(H)v ≈ Σⱼ τⱼ φ(θⱼ); averaged over probes and broadened by a Gaussian, the eigenvalue density
  (1/P)Σᵢ δ(t − λᵢ), which integrates to 1.

Also here (numpy only): the selective shrinkage of weight decay along H's eigen-directions
(Goodfellow et al. 2016 §7.1.1). Near a minimum w* the data loss is ½(w − w*)ᵀH(w − w*) and with the
penalty α/2‖w‖² the optimum is w̃ = Q(Λ + αI)⁻¹ΛQᵀw*: along eigenvector qᵢ the component of w* is
scaled by λᵢ/(λᵢ + α) — stiff directions (λᵢ ≫ α) keep it, flat ones (λᵢ ≪ α) lose it.
`shrink_factors` is that prediction; `project_weights` measures what decay did in two lockstep runs.

Measured on the real MLP the per-direction factor is only a sketch (why the lesson
flat_directions_shrink_most claims the ordering per curvature band instead, regsim/shrink_bands.py):
train A without decay to a minimum (full-batch SGD, tanh, L2 on every parameter), fork B from it
with α, continue both to convergence, project on A's top-k eigenvectors. Moons 2-16-16-2 (and
1-3-1, 1-4-1, 1-8-1 regression, 2-2-2 and 2-4-2 moons), seeds 0 and 1: max |measured − predicted| over
the top 10 was 0.5–7 (e.g. 1-3-1, α = 0.002, predicted 1.00/1.00/0.997/0.994/0.988/0.972 against
1.07/0.83/0.95/1.03/−1.9/0.90). Even these small nets have a bulk of eigenvalues ≪ α (10⁻³–10⁻⁵) whose
components of w* are O(1); decay removes them (the theory's factor ≈ 0), a move far outside the
quadratic region, and the third-order terms it excites shift the sharp directions' coordinates by
0.02–0.5, which is large against their small qᵢᵀw*. Forking B from A at λ_A > 0 (so A's bulk is gone
already; prediction (λᵢ+λ_A)/(λᵢ+λ_B)) did not fix it either (max error 0.7 and 2.0 on 2-16-16-2).

Importing this module does not import torch (`compute` does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Progress, RunView

if TYPE_CHECKING:
    import torch

MODES = ("eval", "train")
LANCZOS_BYTES = 2 * 2**30  # the Lanczos basis may take this much memory (64-256-256-10, k = 20: 44 MB)


def _integer(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class HessianRequest:
    k: int = 5  # eigen-pairs wanted (largest eigenvalues), in [1, 200]
    mode: str = "eval"  # "eval" (dropout off) or "train" (dropout on, one fixed mask set from `seed`)
    points: int = 0  # training examples the loss averages over; 0 = the whole training split
    seed: int = 0  # seeds the train-mode masks, the Lanczos start vector and the random probes
    max_iter: int = 0  # Lanczos steps at most; 0 = auto: max(3k + 20, 2k + 40), at most P
    tol: float = 1e-5  # stop when the top-k Ritz residuals are ≤ tol·max|θ|, in (0, 0.1]
    trace_samples: int = 16  # Hutchinson probes for tr H, in [0, 1000] (0 = no trace: nan)
    density: int = 0  # stochastic Lanczos quadrature probes for the spectral density, in [0, 100]
    density_steps: int = 40  # Lanczos steps per density probe, in [2, 300]
    density_bins: int = 200  # points of the density's grid, in [10, 2000]

    def __post_init__(self) -> None:
        if not (_integer(self.k) and 1 <= self.k <= 200):
            raise ValueError(f"k = {self.k!r} is out of range; allowed: [1, 200]")
        if self.mode not in MODES:
            raise ValueError(f"mode = {self.mode!r} is not allowed; choose one of: {', '.join(MODES)}")
        if not (_integer(self.points) and self.points >= 0):
            raise ValueError(f"points = {self.points!r} is out of range; allowed: 0 (all) or [1, ∞)")
        if not (_integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")
        if not (_integer(self.max_iter) and 0 <= self.max_iter <= 2000):
            raise ValueError(f"max_iter = {self.max_iter!r} is out of range; allowed: 0 (auto) or "
                             "[1, 2000]")
        if self.max_iter and self.max_iter < self.k:
            raise ValueError(f"max_iter = {self.max_iter!r} is out of range; allowed: 0 (auto) or "
                             f"at least k = {self.k}")
        if not (_number(self.tol) and 0 < float(self.tol) <= 0.1):
            raise ValueError(f"tol = {self.tol!r} is out of range; allowed: (0, 0.1]")
        if not (_integer(self.trace_samples) and 0 <= self.trace_samples <= 1000):
            raise ValueError(f"trace_samples = {self.trace_samples!r} is out of range; allowed: [0, 1000]")
        if not (_integer(self.density) and 0 <= self.density <= 100):
            raise ValueError(f"density = {self.density!r} is out of range; allowed: [0, 100]")
        if not (_integer(self.density_steps) and 2 <= self.density_steps <= 300):
            raise ValueError(f"density_steps = {self.density_steps!r} is out of range; allowed: [2, 300]")
        if not (_integer(self.density_bins) and 10 <= self.density_bins <= 2000):
            raise ValueError(f"density_bins = {self.density_bins!r} is out of range; allowed: [10, 2000]")


@dataclass(frozen=True)
class HessianResult:
    """Top-k eigen-pairs of the training loss's Hessian at one step (see the module docstring)."""

    step: int  # the step whose weights were used
    mode: str  # "eval" or "train" (dropout on, masks from `seed`)
    eigenvalues: np.ndarray  # (k,) float64, descending
    eigenvectors: np.ndarray  # (k, P) float32, unit rows, in model.parameters() order, flattened
    residuals: np.ndarray  # (k,) ‖Hy − θy‖ of each Ritz pair
    iterations: int  # Lanczos steps (Hessian-vector products) the eigen-pairs took
    converged: bool  # every residual ≤ tol·max|θ| (False: max_iter was reached first)
    trace: float  # Hutchinson estimate of tr H (nan with trace_samples = 0)
    trace_std: float  # its standard error, std / √samples (nan with fewer than 2 samples)
    loss: float  # L(θ) of the function differentiated
    points: int  # training examples L averages over
    n_params: int  # P
    param_names: tuple[str, ...]  # the parameters eigenvectors' columns run through, in order
    param_sizes: tuple[int, ...]  # their sizes (numel), summing to P
    seed: int  # the Request's seed
    elapsed: float  # seconds spent computing
    # Stochastic Lanczos quadrature (empty with density = 0): the density of eigenvalues
    # (1/P)Σδ(t − λᵢ), Gaussian-broadened, on a grid; it integrates to 1. The nodes and weights
    # (probes, steps) are kept so a panel can broaden differently.
    density_grid: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (G,)
    density: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (G,)
    density_nodes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (probes, m)
    density_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (probes, m)
    note: str = ""  # e.g. that train mode equals eval mode because the network has no dropout


Request = HessianRequest
Result = HessianResult


# --------------------------------------------------------------------------------------------------
# Lanczos on a Hessian-vector product (torch, float64 bookkeeping)


def _tridiagonal_eigh(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-pairs of the symmetric tridiagonal matrix with diagonal α (m,) and off-diagonal β (m−1,),
    ascending. scipy's LAPACK stev when available (30 µs at m = 100), else a dense numpy eigh."""
    try:
        from scipy.linalg import eigh_tridiagonal

        return eigh_tridiagonal(alpha, beta)
    except ImportError:  # pragma: no cover - scipy ships with the project's environment
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        return np.linalg.eigh(T)


def lanczos(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, k: int, max_iter: int, tol: float,
            generator: torch.Generator, device: Any = "cpu", check_every: int = 0,
            start: torch.Tensor | None = None
            ) -> Generator[int, None, tuple[np.ndarray, torch.Tensor, np.ndarray, int, bool]]:
    """Top-k eigen-pairs of the symmetric operator `hvp` on ℝⁿ by Lanczos with full
    reorthogonalization; yields the step count after every step, returns
    (eigenvalues (k,) descending, eigenvectors (k, n) float64, residuals (k,), steps, converged).

    A breakdown (βⱼ ≈ 0: the Krylov space is invariant, e.g. H has fewer than m distinct
    eigenvalues) restarts with a random vector orthogonal to all before it and β = 0, so Tₘ stays
    VₘᵀHVₘ (block diagonal) and the pairs found are exact. At m = n the pairs are exact."""
    import torch

    k = min(k, n)
    m_max = min(n, max(k, max_iter))
    # Tₘ's eigen-decomposition checks convergence; every step for small k, every k/5 steps beyond
    # (0.7 ms at m = 80 vs ~0.5 ms for a product on 2-64-64-2: at most k/5 − 1 extra products).
    check_every = check_every or max(1, k // 5)
    V = torch.zeros(m_max, n, dtype=torch.float64, device=device)  # (m, n) orthonormal rows
    alphas, betas = np.zeros(m_max), np.zeros(m_max)

    def orthogonalize(w: torch.Tensor, j: int) -> torch.Tensor:
        """w − VⱼᵀVⱼw, a second pass only when the first removed most of w (the DGKS criterion,
        ‖w′‖ < 0.7‖w‖; "twice is enough", Parlett). Written (Vw)V, not Vᵀ(Vw): the transposed
        matvec took 0.5 ms vs 0.13 ms at (60, 4482), one thread."""
        before = float(w.norm())
        w = w - (V[:j] @ w) @ V[:j]
        if float(w.norm()) < 0.7 * before:
            w = w - (V[:j] @ w) @ V[:j]
        return w

    def fresh(j: int) -> torch.Tensor:
        for _ in range(10):
            w = orthogonalize(torch.randn(n, dtype=torch.float64, generator=generator).to(device), j)
            norm = float(w.norm())
            if norm > 1e-8:
                return w / norm
        raise RuntimeError("Lanczos could not find a vector orthogonal to its basis")

    v = fresh(0) if start is None else start.to(torch.float64) / start.norm()
    m, converged = 0, False
    theta = np.zeros(0)
    S = np.zeros((0, 0))
    resid = np.zeros(0)
    for j in range(m_max):
        V[j] = v
        w = hvp(v).to(torch.float64)
        a = float(w @ v)
        alphas[j] = a
        w = w - a * v  # the three-term recurrence first, then the full reorthogonalization
        if j > 0:
            w = w - betas[j - 1] * V[j - 1]
        w = orthogonalize(w, j + 1)
        b = float(w.norm())
        m = j + 1
        yield m
        scale = max(abs(a), float(np.abs(alphas[:m]).max()), 1e-30)
        breakdown = b <= 1e-10 * scale
        if m >= k and (m == m_max or (not breakdown and (m - k) % check_every == 0)):
            theta, S = _tridiagonal_eigh(alphas[:m], betas[:m - 1])
            resid = np.abs(b * S[-1, ::-1][:k])
            scale = max(float(np.abs(theta).max()), 1e-30)
            if np.all(resid <= tol * scale) or m == m_max:
                converged = bool(np.all(resid <= tol * scale))
                break
        if m == m_max:
            break
        if breakdown:  # invariant subspace: restart orthogonally, Tₘ block diagonal
            betas[j] = 0.0
            v = fresh(j + 1)
        else:
            betas[j] = b
            v = w / b
    if theta.size == 0 or len(theta) != m:
        theta, S = _tridiagonal_eigh(alphas[:m], betas[:m - 1])
        resid = np.abs(betas[m - 1] * S[-1, ::-1][:k]) if m < m_max else np.zeros(k)
    order = np.argsort(theta)[::-1][:k]
    vecs = torch.from_numpy(np.ascontiguousarray(S[:, order].T)).to(device) @ V[:m]  # (k, n)
    return theta[order].copy(), vecs, resid[:k].copy(), m, converged


def slq_nodes(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int,
              generator: torch.Generator, device: Any = "cpu"
              ) -> Generator[int, None, tuple[np.ndarray, np.ndarray]]:
    """One stochastic-Lanczos-quadrature probe: nodes θⱼ and weights τⱼ (steps,) from a Rademacher
    start vector (Ghorbani et al. 2019, Algorithm 1). Σⱼ τⱼ = 1."""
    import torch

    z = torch.randint(0, 2, (n,), generator=generator, dtype=torch.float64).mul_(2).sub_(1).to(device)
    steps = min(steps, n)
    gen = lanczos(hvp, n, steps, steps, 1e-30, generator, device, check_every=steps, start=z)
    while True:
        try:
            yield next(gen)
        except StopIteration as stop:
            theta, vecs, _, _, _ = stop.value
            break
    # Re-derive the quadrature from the tridiagonal: weights are the squared first components of
    # Tₘ's eigenvectors in the basis whose first vector is the probe. lanczos returns Ritz vectors
    # in ℝⁿ; their overlap with the unit probe is exactly that first component.
    u = z / z.norm()
    tau = (vecs @ u).pow(2).cpu().numpy()
    return theta, tau / max(tau.sum(), 1e-300)


def broaden(nodes: np.ndarray, weights: np.ndarray, bins: int, sigma: float | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian-broadened density from quadrature nodes/weights (probes, m): (grid (G,), density
    (G,)), normalized to integrate to 1 on the grid. σ defaults to 1 % of the nodes' range."""
    lo, hi = float(nodes.min()), float(nodes.max())
    width = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    sigma = sigma if sigma is not None else 0.01 * width
    grid = np.linspace(lo - 4 * sigma - 0.02 * width, hi + 4 * sigma + 0.02 * width, bins)
    t = grid[:, None, None] - nodes[None]
    dens = (weights[None] * np.exp(-0.5 * (t / sigma) ** 2)).sum((1, 2)) / (sigma * math.sqrt(2 * math.pi))
    dens /= len(nodes)
    area = np.trapezoid(dens, grid) if hasattr(np, "trapezoid") else np.trapz(dens, grid)
    return grid, dens / max(area, 1e-300)


def make_hvp(run: RunView, request: HessianRequest
             ) -> tuple[Callable[[torch.Tensor], torch.Tensor], int, float, list, str]:
    """The Hessian-vector product of the run's data loss on the request's points and mode.

    Returns (hvp(v (P,)) → Hv (P,) in float64, P, L(θ), [(name, param)], note). One forward pass and
    a create_graph backward here; each hvp call is one double backward through the kept graph."""
    import torch

    model = run.model
    named = [(n_, p) for n_, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    n = request.points or len(run.x_train)
    n = min(n, len(run.x_train))
    x, y = run.x_train[:n], run.y_train[:n]
    note = ""
    if request.mode == "train":
        model.train()
        drops = model.dropout_modules() if hasattr(model, "dropout_modules") else []
        if hasattr(model, "seed_dropout"):
            model.seed_dropout(request.seed, 0)
        if not any(float(d.p) > 0 for d in drops):
            note = "this network has no dropout (p = 0 at every site): train mode = eval mode"
    else:
        model.eval()
    with torch.enable_grad():
        loss = run.loss(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
    flat_g = torch.cat([g.reshape(-1) for g in grads])
    dtype = flat_g.dtype
    P = flat_g.numel()
    if request.mode == "train" and hasattr(model, "dropout_modules"):
        for d in model.dropout_modules():  # the graph holds the masks; the module needs no copies
            d.last_scaled_mask = d.last_input = d.last_output = None
    model.eval()

    def hvp(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            hv = torch.autograd.grad(flat_g, params, grad_outputs=v.to(dtype), retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).to(torch.float64)

    return hvp, P, float(loss.detach()), named, note


def compute(run: RunView, request: HessianRequest) -> Generator[Progress, None, HessianResult]:
    """Lanczos (yields after every Hessian-vector product), then Hutchinson, then the density."""
    import torch

    t0 = time.perf_counter()
    hvp, P, loss, named, note = make_hvp(run, request)
    device = run.x_train.device
    k = min(request.k, P)
    max_iter = min(P, request.max_iter or max(3 * k + 20, 2 * k + 40))
    need = max_iter * P * 8  # Lanczos keeps its m basis vectors, float64
    if need > LANCZOS_BYTES:
        fit = max(1, LANCZOS_BYTES // (8 * P))
        raise ValueError(f"k = {request.k}: this network has P = {P:,} parameters and Lanczos keeps "
                         f"{max_iter} basis vectors of P numbers ({need / 2**30:.1f} GiB, more than "
                         f"{LANCZOS_BYTES / 2**30:.0f} GiB); allowed here: at most {fit} Lanczos "
                         "steps (set max_iter, a smaller k) or a smaller network")
    total = max_iter + request.trace_samples + request.density * min(request.density_steps, P)
    g = torch.Generator()
    g.manual_seed(request.seed)
    done = 0
    gen = lanczos(hvp, P, k, max_iter, float(request.tol), g, device)
    while True:
        try:
            done = next(gen)
        except StopIteration as stop:
            evals, vecs, resid, iters, converged = stop.value
            break
        yield Progress(done, total)
    total -= max_iter - iters
    done = iters
    if request.trace_samples or request.density:  # the eigen-pairs are worth showing already
        yield Progress(done, total, partial=_result(run, request, evals, vecs, resid, iters, converged,
                                                    math.nan, math.nan, loss, named, P, note, t0, {}))
    trace = trace_std = float("nan")
    if request.trace_samples:
        samples = []
        for _ in range(request.trace_samples):
            z = torch.randint(0, 2, (P,), generator=g, dtype=torch.float64).mul_(2).sub_(1).to(device)
            samples.append(float(z @ hvp(z)))
            done += 1
            yield Progress(done, total)
        s = np.asarray(samples)
        trace = float(s.mean())
        trace_std = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else float("nan")
    extra: dict[str, Any] = {}
    if request.density:
        nodes, weights = [], []
        for _ in range(request.density):
            probe = slq_nodes(hvp, P, request.density_steps, g, device)
            while True:
                try:
                    yield Progress(done + next(probe), total)
                except StopIteration as stop:
                    th, tau = stop.value
                    break
            done += len(th)
            m = min(request.density_steps, P)
            nodes.append(np.pad(th, (0, m - len(th)), constant_values=th[-1]))
            weights.append(np.pad(tau, (0, m - len(tau))))
        nodes_a, weights_a = np.stack(nodes), np.stack(weights)
        grid, dens = broaden(nodes_a, weights_a, request.density_bins)
        extra = dict(density_grid=grid, density=dens, density_nodes=nodes_a, density_weights=weights_a)
    return _result(run, request, evals, vecs, resid, iters, converged, trace, trace_std, loss, named,
                   P, note, t0, extra)


def _result(run: RunView, request: HessianRequest, evals: np.ndarray, vecs: torch.Tensor,
            resid: np.ndarray, iters: int, converged: bool, trace: float, trace_std: float,
            loss: float, named: list, P: int, note: str, t0: float, extra: dict) -> HessianResult:
    import torch

    vecs32 = vecs.to(torch.float32)
    # A deterministic sign: each eigenvector's largest-magnitude entry positive.
    idx = vecs32.abs().argmax(1)
    sign = torch.sign(vecs32[torch.arange(len(vecs32)), idx])
    vecs32 = vecs32 * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
    return HessianResult(
        step=run.step, mode=request.mode, eigenvalues=evals, eigenvectors=vecs32.cpu().numpy(),
        residuals=resid, iterations=iters, converged=converged, trace=trace, trace_std=trace_std,
        loss=loss, points=min(request.points or len(run.x_train), len(run.x_train)), n_params=P,
        param_names=tuple(n_ for n_, _ in named), param_sizes=tuple(p.numel() for _, p in named),
        seed=request.seed, elapsed=time.perf_counter() - t0, note=note, **extra)


# --------------------------------------------------------------------------------------------------
# Selective shrinkage (numpy only)


def shrink_factors(eigenvalues: np.ndarray, alpha: float) -> np.ndarray:
    """λᵢ/(λᵢ + α): the factor by which the L2 penalty α/2‖w‖² scales w*'s component along each
    eigen-direction of H near a minimum (Goodfellow et al. 2016, eq. 7.13). Needs λᵢ + α > 0; a
    negative-curvature direction (not a minimum) gives nan."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha = {alpha!r} is out of range; allowed: [0, ∞)")
    den = lam + alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, lam / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class ShrinkageResult:
    """What decay did along each eigen-direction, against what the quadratic theory predicts."""

    eigenvalues: np.ndarray  # (k,) of H at the no-decay run's weights, descending
    alpha: float  # the L2 coefficient α of the decay run (its λ)
    predicted: np.ndarray  # (k,) λᵢ/(λᵢ + α)
    coords_decay: np.ndarray  # (k,) qᵢᵀw_decay
    coords_nodecay: np.ndarray  # (k,) qᵢᵀw_nodecay
    measured: np.ndarray  # (k,) qᵢᵀw_decay / qᵢᵀw_nodecay (nan where the no-decay component is ~0)


def project_weights(eigenvectors: np.ndarray, w_decay: np.ndarray, w_nodecay: np.ndarray,
                    eigenvalues: np.ndarray, alpha: float, reference: np.ndarray | None = None
                    ) -> ShrinkageResult:
    """Project two runs' flat weights (P,) onto H's eigenvectors (k, P) and compare per direction:
    measured = qᵢᵀ(w_decay − r) / qᵢᵀ(w_nodecay − r) against predicted λᵢ/(λᵢ + α).

    The theory measures both from the origin (r = 0, the default): the penalty pulls toward 0."""
    Q = np.asarray(eigenvectors, dtype=np.float64)
    wd, wn = np.asarray(w_decay, np.float64).ravel(), np.asarray(w_nodecay, np.float64).ravel()
    if Q.ndim != 2 or Q.shape[1] != wd.size or wd.size != wn.size:
        raise ValueError(f"eigenvectors (k, P) = {Q.shape} and weights ({wd.size},), ({wn.size},) "
                         "must agree on P")
    if reference is not None:
        r = np.asarray(reference, np.float64).ravel()
        wd, wn = wd - r, wn - r
    cd, cn = Q @ wd, Q @ wn
    small = np.abs(cn) <= 1e-12 * max(1.0, float(np.abs(cn).max(initial=0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        measured = np.where(small, np.nan, cd / np.where(small, 1.0, cn))
    return ShrinkageResult(np.asarray(eigenvalues, np.float64), float(alpha),
                           shrink_factors(eigenvalues, alpha), cd, cn, measured)


def flat_weights(run: RunView) -> np.ndarray:
    """The run's parameters flattened in model.parameters() order (P,): eigenvectors' layout."""
    return np.concatenate([p.detach().reshape(-1).cpu().double().numpy()
                           for p in run.model.parameters() if p.requires_grad])


def selective_shrinkage(comparison: Any, decay: str, nodecay: str, **request: Any
                        ) -> tuple[ShrinkageResult, HessianResult]:
    """Hessian of the no-decay run's loss at its weights, and both runs' weights projected on it.

    `comparison` is a regsim.Comparison (anything with `.trainers[name].view()`); α is the decay
    run's λ (hparams.weight_decay). The theory holds near a minimum of the no-decay run with the
    penalty α/2‖w‖² on every parameter: with AdamW, or biases in the no_decay group, it is an
    approximation (see landscape_math.decay_term)."""
    from .base import drain

    v_n, v_d = comparison.trainers[nodecay].view(), comparison.trainers[decay].view()
    hess = drain(compute(v_n, HessianRequest(**request)))
    shrink = project_weights(hess.eigenvectors, flat_weights(v_d), flat_weights(v_n), hess.eigenvalues,
                             float(v_d.hparams.weight_decay))
    return shrink, hess
