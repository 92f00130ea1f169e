"""Loss surfaces: a 2-D slice of the real model's loss around its current weights.

    f(α, β) = L(θ + α·d1 + β·d2)

Li et al. (2018) "filter normalization": each row of a direction (one output neuron's incoming
weights) is rescaled to the norm of the same row of θ, so α = 1 means "a step as large as the weights
themselves" in every layer, and slices of differently regularized networks can be compared. Biases
and norm parameters get zero direction, as in the paper.

Directions default to the top two principal components of the recent weight trajectory (then
filter-normalized), so the optimizer's path projects onto the slice visibly; "random" gives the
paper's random filter-normalized directions. The whole grid is evaluated with batched matmuls, many
perturbed networks per forward pass, instead of one grid point at a time.

With weight decay the optimizer does not minimize the data loss, so its current weights need not sit
at a minimum of it. Each result also carries the decay term of the objective on the same grid (see
`decay_term`): for L2 mode exactly λ/2·‖θ_decay‖² over the parameters the optimizer decays. It is a
quadratic in (α, β), so it costs six dot products, not a forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .optim import DECAY_KEY
from .snapshot import LandscapeResult

if TYPE_CHECKING:
    from .trainer import Trainer

MAX_CHUNK_FLOATS = 16 * 2**20  # perturbed weights materialized per batched forward (64 MB)
# Activations per batched forward: small enough to stay in cache. Measured here: bmm on 16 networks
# at a time ran at 125 GFLOP/s, on 1024 at once at 27 GFLOP/s (memory-bound).
CACHE_FLOATS = 2**19


@dataclass(frozen=True)
class LandscapeRequest:
    resolution: int = 51  # grid points per axis, in [3, 201]
    span: float = 1.0  # half-width of the grid in filter-normalized units, in (0, 10]
    points: int = 512  # training examples the loss is averaged over, >= 1
    directions: str = "pca"  # "pca" (of the recent trajectory) or "random"
    preview: int = 11  # resolution of the coarse preview sent first; 0 = no preview
    seed: int = 0  # seeds the random directions

    def __post_init__(self) -> None:
        if not (isinstance(self.resolution, int) and 3 <= self.resolution <= 201):
            raise ValueError(f"resolution = {self.resolution!r} is out of range; allowed: [3, 201]")
        if not (0 < float(self.span) <= 10):
            raise ValueError(f"span = {self.span!r} is out of range; allowed: (0, 10]")
        if not (isinstance(self.points, int) and self.points >= 1):
            raise ValueError(f"points = {self.points!r} is out of range; allowed: [1, ∞)")
        if self.directions not in ("pca", "random"):
            raise ValueError(f"directions = {self.directions!r} is not allowed; choose one of: "
                             "pca, random")
        if not (isinstance(self.preview, int) and (self.preview == 0 or 3 <= self.preview <= 51)):
            raise ValueError(f"preview = {self.preview!r} is out of range; allowed: 0 or [3, 51]")

    @classmethod
    def from_dict(cls, d: dict) -> LandscapeRequest:
        known = {"resolution", "span", "points", "directions", "preview", "seed"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown landscape setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**d)


def filter_normalize(direction: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Rescale each row of each matrix direction to the norm of that row of the weights."""
    out = []
    for d, p in zip(direction, params):
        if p.dim() < 2:
            out.append(torch.zeros_like(p))
            continue
        d2, p2 = d.reshape(d.shape[0], -1), p.detach().reshape(p.shape[0], -1)
        scale = p2.norm(dim=1, keepdim=True) / (d2.norm(dim=1, keepdim=True) + 1e-10)
        out.append((d2 * scale).reshape(p.shape))
    return out


def _unflatten(flat: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for p in params:
        out.append(flat[i:i + p.numel()].reshape(p.shape))
        i += p.numel()
    return out


def _flatten(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in parts])


def path_pca(path: list[torch.Tensor], theta: torch.Tensor
             ) -> tuple[torch.Tensor, tuple[float, float]] | None:
    """Top two principal directions (2, n) of the path relative to θ, and the share of
    Σ‖θ_t − θ‖² each explains; None when the path has fewer than 3 points or is degenerate.

    Uncentred, relative to the current weights (as Li et al. 2018 take the final point as the
    origin), so the plane through θ is the one that holds most of the path's distance from θ."""
    if len(path) < 3:
        return None
    m = torch.stack(path) - theta  # (P, n): trajectory relative to the current weights
    # Top right-singular vectors via the small (P, P) Gram matrix: its eigenvalues are the
    # squared singular values, i.e. the variance along each principal direction.
    evals, evecs = torch.linalg.eigh(m @ m.T)
    if float(evals[-2]) <= 1e-20:
        return None
    top = evecs[:, -2:].flip(1)  # (P, 2), largest first
    total = float(evals.clamp_min(0).sum())
    return top.T @ m, (float(evals[-1]) / total, float(evals[-2]) / total)


def make_directions(params: list[torch.Tensor], path: list[torch.Tensor], kind: str,
                    seed: int, pca: tuple | None | str = "compute"
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor], str]:
    """Two filter-normalized directions; PCA of the trajectory when it has enough points.

    `pca`: the result of `path_pca` when the caller has it already (it costs as much as the
    path's projection: ~5 % of a 51×51 landscape on a 2-64-64-2 net)."""
    theta = _flatten([p.detach() for p in params])
    used = kind
    if kind == "pca":
        if isinstance(pca, str):
            pca = path_pca(path, theta)
        if pca is not None:
            dirs = pca[0]  # (2, n)
            d1, d2 = _unflatten(dirs[0], params), _unflatten(dirs[1], params)
            return filter_normalize(d1, params), filter_normalize(d2, params), "pca"
        used = "random (trajectory too short)"
    g = torch.Generator(device="cpu").manual_seed(seed)
    rand = [torch.randn(p.shape, generator=g).to(p.device) for p in params]
    rand2 = [torch.randn(p.shape, generator=g).to(p.device) for p in params]
    return filter_normalize(rand, params), filter_normalize(rand2, params), used


def project_path(path: list[torch.Tensor], theta: torch.Tensor, d1: torch.Tensor,
                 d2: torch.Tensor) -> np.ndarray:
    """Least-squares coordinates (α, β) of each path point in the plane θ + α·d1 + β·d2."""
    if not path:
        return np.zeros((0, 2))
    basis = torch.stack([d1, d2], 1).double()  # (n, 2)
    delta = (torch.stack(path) - theta).double().T  # (n, P)
    gram = basis.T @ basis
    coords = torch.linalg.lstsq(gram, basis.T @ delta).solution  # (2, P)
    return coords.T.cpu().numpy()


def path_residuals(path: list[torch.Tensor], theta: torch.Tensor, d1: torch.Tensor,
                   d2: torch.Tensor, coords: np.ndarray) -> tuple[np.ndarray, float]:
    """Each path point's distance from the plane θ + α·d1 + β·d2, in units of ‖d1‖, and the share
    of the path's squared distance from θ that the plane holds, 1 − Σ r² / Σ ‖θ_t − θ‖².

    `coords` are the least-squares (α, β) of `project_path`, so θ + α·d1 + β·d2 is each point's
    orthogonal projection and the residual is orthogonal to the plane."""
    if not path:
        return np.zeros(0), float("nan")
    delta = (torch.stack(path) - theta).double()  # (P, n)
    basis = torch.stack([d1, d2]).double()  # (2, n)
    resid = delta - torch.as_tensor(coords, dtype=torch.float64, device=delta.device) @ basis
    r2 = (resid * resid).sum(1)
    total = float((delta * delta).sum())
    unit = float(d1.double().norm()) or 1.0
    captured = 1.0 - float(r2.sum()) / total if total > 0 else float("nan")
    return (r2.sqrt() / unit).cpu().numpy(), captured


@dataclass(frozen=True)
class DecayTerm:
    """The weight-decay part of the objective: ½·Σᵢ cᵢ·θᵢ² over the decayed parameters."""

    coef: list[torch.Tensor | float]  # per model parameter: cᵢ (a number or elementwise); 0 = none
    formula: str  # e.g. "λ/2·‖θ_decay‖²"; "" when nothing is decayed
    note: str  # what is shown and why it is the right term


def _group_names(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> str:
    """"the 3 weight matrices" / "all 6 parameter tensors": what the decayed set is, in words."""
    decayed = {id(p) for g in optimizer.param_groups for p in g["params"]
               if g.get("weight_decay", 0.0) or g.get(DECAY_KEY, 0.0)}
    params = list(model.parameters())
    n = sum(1 for p in params if id(p) in decayed)
    matrices = all(p.dim() >= 2 for p in params if id(p) in decayed)
    if n == len(params):
        return f"all {n} parameter tensors (biases and norms included)"
    return f"the {n} weight matrices (biases and norms not decayed)" if matrices else \
        f"{n} of {len(params)} parameter tensors"


def decay_term(trainer: Trainer) -> DecayTerm:
    """The decay term of the objective the optimizer's fixed points minimize, per decay group.

    Read from the optimizer's own param_groups, so it covers exactly what is decayed (the decay
    group; the no_decay biases and norms only with decay_norms_and_biases). With η the learning
    rate and g = ∇L (η cancels in every fixed point, so schedules don't matter):
    - L2 mode (any optimizer): λθ is added to g, so the objective is L + λ/2·‖θ‖², exactly.
    - decoupled, plain SGD: θ ← (1 − ηλ)θ − ηg is the same update as L2 (θ ← θ − η(g + λθ)),
      so the objective is L + λ/2·‖θ‖², exactly.
    - decoupled with momentum μ (SGDW): v ← μv + g; θ ← (1 − ηλ)θ − ηv. At a fixed point
      v = g/(1 − μ) and λθ = −v, so g + (1 − μ)λθ = 0: the stationary points of
      L + (1 − μ)·λ/2·‖θ‖².
    - decoupled Adam (AdamW): θ ← (1 − ηλ)θ − η·m̂/(√v̂ + ε). The decay is no term of any loss;
      at a fixed point (m̂ ≈ g) g + λ(√v̂ + ε)⊙θ = 0, the stationary points of
      L + λ/2·Σᵢ(√v̂ᵢ + ε)θᵢ² with Adam's current v̂ held fixed: a local objective, not a global one.
    """
    opt, model = trainer.optimizer, trainer.model
    index = {id(p): i for i, p in enumerate(model.parameters())}
    coef: list[torch.Tensor | float] = [0.0] * len(index)
    kinds, lams = set(), set()
    adam = isinstance(opt, torch.optim.Adam)
    for g in opt.param_groups:
        l2, dec = float(g.get("weight_decay", 0.0)), float(g.get(DECAY_KEY, 0.0))
        if adam and g.get("decoupled_weight_decay", False):
            l2, dec = 0.0, l2
        for p in g["params"]:
            if id(p) not in index or not (l2 or dec):
                continue
            i = index[id(p)]
            if l2:
                coef[i], kind = l2, "l2"
            elif not adam:
                mu = float(g.get("momentum", 0.0))
                coef[i], kind = (1.0 - mu) * dec, ("sgdw" if mu else "sgd")
            else:
                state = opt.state.get(p, {})
                if "exp_avg_sq" not in state:
                    continue  # no step yet: no v̂, no fixed point to speak of
                beta2 = float(g["betas"][1])
                correction = 1.0 - beta2 ** float(state["step"])
                denom = (state["exp_avg_sq"].detach() / correction).sqrt() + float(g["eps"])
                coef[i], kind = dec * denom, "adamw"
            kinds.add((kind, float(g.get("momentum", 0.0))))
            lams.add(l2 or dec)
    if not kinds:
        if adam and any(g.get("decoupled_weight_decay", False) and g.get("weight_decay", 0.0)
                        for g in opt.param_groups):
            return DecayTerm(coef, "", "AdamW has taken no step yet: no decay term to show")
        return DecayTerm(coef, "", "λ = 0: nothing is decayed, the objective is the data loss")
    lam = ", ".join(f"{v:g}" for v in sorted(lams))
    what = _group_names(opt, model)
    kind, mu = sorted(kinds)[0]
    if kind == "l2":
        return DecayTerm(coef, "λ/2·‖θ_decay‖²", f"L2 mode: λθ joins the gradient, so the optimizer "
                         f"minimizes data loss + λ/2·‖θ‖² over {what}; λ = {lam}")
    if kind == "sgd":
        return DecayTerm(coef, "λ/2·‖θ_decay‖²", f"decoupled decay with plain SGD is the same update "
                         f"as L2, so this is the objective it minimizes, over {what}; λ = {lam}")
    if kind == "sgdw":
        return DecayTerm(coef, "(1−μ)·λ/2·‖θ_decay‖²",
                         f"decoupled decay with momentum μ = {mu:g} (SGDW) is no term of the loss; "
                         f"its fixed points are the stationary points of data loss + "
                         f"(1−μ)·λ/2·‖θ‖² over {what}; λ = {lam}")
    return DecayTerm(coef, "λ/2·Σ(√v̂ᵢ+ε)·θᵢ²",
                     f"AdamW's decay is no term of the loss; its fixed points are the stationary "
                     f"points of data loss + λ/2·Σ(√v̂ᵢ+ε)θᵢ² with Adam's current v̂ held fixed "
                     f"(a local objective), over {what}; λ = {lam}")


def penalty_grid(term: DecayTerm, params: list[torch.Tensor], d1: list[torch.Tensor],
                 d2: list[torch.Tensor], alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """½·Σ c·(θ + α·d1 + β·d2)² on the grid, (B, A), from its six coefficients (float64):

        P(α, β) = ½·(Σcθ² + 2α·Σcθd1 + 2β·Σcθd2 + α²·Σcd1² + 2αβ·Σcd1d2 + β²·Σcd2²)."""
    s = np.zeros(6)
    for c, p, u, v in zip(term.coef, params, d1, d2):
        if isinstance(c, float) and c == 0.0:
            continue
        p, u, v = p.detach().double(), u.double(), v.double()
        c = c.double() if isinstance(c, torch.Tensor) else c
        s += np.array([float((c * t).sum()) for t in (p * p, p * u, p * v, u * u, u * v, v * v)])
    aa, bb = np.meshgrid(np.asarray(alphas, np.float64), np.asarray(betas, np.float64))
    return 0.5 * (s[0] + 2 * aa * s[1] + 2 * bb * s[2] + aa * aa * s[3] + 2 * aa * bb * s[4]
                  + bb * bb * s[5])


@torch.no_grad()
def grid_losses(trainer: Trainer, d1: list[torch.Tensor], d2: list[torch.Tensor],
                alphas: np.ndarray, betas: np.ndarray, x: torch.Tensor, y: torch.Tensor,
                on_chunk: Callable[[np.ndarray, int], None] | None = None) -> np.ndarray:
    """Loss at every (α, β) with many perturbed networks per batched forward. Returns (B, A)."""
    model = trainer.model
    linears = model.weight_layers()
    index = {id(p): i for i, p in enumerate(model.parameters())}
    w_idx = [index[id(lin.weight)] for lin in linears]
    b_idx = [index[id(lin.bias)] for lin in linears]
    params = list(model.parameters())
    dev = params[0].device
    aa, bb = np.meshgrid(alphas, betas)  # (B, A), rows = betas
    coef_a = torch.as_tensor(aa.ravel(), dtype=torch.float32, device=dev)
    coef_b = torch.as_tensor(bb.ravel(), dtype=torch.float32, device=dev)
    total = coef_a.numel()
    # The first layer is linear in its parameters, so its output at θ + α·d₁ + β·d₂ is
    #   x·W₀ᵀ + b₀ + α·(x·D₁ᵀ + d₁b) + β·(x·D₂ᵀ + d₂b):
    # three (N, H1) products once, then two multiply-adds per grid point, instead of a batched
    # matmul over perturbed copies of W₀ (on a 2-64-64-2 net that matmul and its copies were a
    # third of the time).
    w0, b0 = w_idx[0], b_idx[0]
    first = F.linear(x, params[w0].detach(), params[b0].detach())  # (N, H1)
    first_a = F.linear(x, d1[w0], d1[b0])
    first_b = F.linear(x, d2[w0], d2[b0])
    n_weights = sum(params[i].numel() for i in w_idx[1:] + b_idx[1:])
    widest = max(model.sizes)
    chunk = int(max(1, min(1024, MAX_CHUNK_FLOATS // max(1, n_weights),
                           CACHE_FLOATS // max(1, len(x) * widest))))
    out = np.full(total, np.nan)
    # Every chunk reuses the same buffers: a fresh multi-megabyte tensor per chunk is a fresh mmap,
    # and its page faults cost as much as the arithmetic (measured: a broadcast multiply-add into
    # a new (16, 512, 64) tensor took 660 µs, into a reused one 115 µs).
    later = list(zip(w_idx[1:], b_idx[1:]))
    w_buf = [params[wi].new_empty((chunk, *params[wi].shape)) for wi, _ in later]
    b_buf = [params[bi].new_empty((chunk, *params[bi].shape)) for _, bi in later]
    h_buf = [first.new_empty((chunk, len(x), size)) for size in model.sizes[1:-1]]
    h_buf.append(first.new_empty((chunk, model.sizes[-1], len(x))))  # logits: (G, C, N)
    target = y if y.dim() == 1 else y.T  # (N,) classes, or (1, N) regression targets

    def perturb(i: int, buf: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """θᵢ + a·d₁ᵢ + b·d₂ᵢ for every (a, b) of the chunk, written into `buf`."""
        shape = (-1,) + (1,) * params[i].dim()
        torch.mul(d1[i], a.view(shape), out=buf)
        return buf.addcmul_(b.view(shape), d2[i]).add_(params[i].detach())

    was_training = model.training
    model.eval()
    try:
        for start in range(0, total, chunk):
            a = coef_a[start:start + chunk]  # (G,)
            b = coef_b[start:start + chunk]
            g = len(a)
            weights = [perturb(wi, buf[:g], a, b) for (wi, _), buf in zip(later, w_buf)]
            biases = [perturb(bi, buf[:g], a, b) for (_, bi), buf in zip(later, b_buf)]
            h1 = torch.mul(first_a, a.view(-1, 1, 1), out=h_buf[0][:g])  # (G, N, H1)
            h1.addcmul_(b.view(-1, 1, 1), first_b).add_(first)
            logits = model.forward_batched(h1, weights, biases,
                                           out=[buf[:g] for buf in h_buf[1:]])  # (G, C, N)
            loss = trainer._loss(logits, target.expand(g, *target.shape), reduction="none")
            out[start:start + g] = loss.reshape(g, -1).mean(1).double().cpu().numpy()
            if on_chunk is not None:
                on_chunk(out.reshape(aa.shape), start + g)
    finally:
        model.train(was_training)
    return out.reshape(aa.shape)


def compute_landscape(trainer: Trainer, request: LandscapeRequest,
                      progress: Callable[[LandscapeResult], None] | None = None
                      ) -> list[LandscapeResult]:
    """A coarse preview (if asked), then the full grid; `progress` sees partial grids as they fill."""
    t0 = time.perf_counter()
    params = list(trainer.model.parameters())
    steps_path = trainer.history_path()
    path = [v for _, v in steps_path]
    theta = _flatten([p.detach() for p in params])
    pca = path_pca(path, theta) if request.directions == "pca" else None
    d1, d2, used = make_directions(params, path, request.directions, request.seed, pca)
    coords = project_path(path, theta, _flatten(d1), _flatten(d2))
    residual, captured = path_residuals(path, theta, _flatten(d1), _flatten(d2), coords)
    explained = pca[1] if pca is not None and used == "pca" else ()
    term = decay_term(trainer)
    penalty_info = dict(objective=term.formula, objective_note=term.note, path_residual=residual,
                        path_captured=captured, pca_explained=explained)
    path_steps = np.asarray([s for s, _ in steps_path], dtype=np.int64)
    n = min(request.points, len(trainer.x_train))
    x, y = trainer.x_train[:n], trainer.y_train[:n]
    # Widen the window, if needed, so the whole recent path fits on the slice.
    reach = np.abs(coords).max(0) * 1.1 if len(coords) else np.zeros(2)
    span_a, span_b = max(request.span, float(reach[0])), max(request.span, float(reach[1]))
    results: list[LandscapeResult] = []
    resolutions = ([request.preview] if request.preview else []) + [request.resolution]
    center = float(grid_losses(trainer, d1, d2, np.zeros(1), np.zeros(1), x, y)[0, 0])
    for k, res in enumerate(resolutions):
        coarse = k == 0 and len(resolutions) == 2
        alphas, betas = np.linspace(-span_a, span_a, res), np.linspace(-span_b, span_b, res)
        last_emit = [time.perf_counter()]

        def on_chunk(partial: np.ndarray, done: int, alphas: np.ndarray = alphas,
                     betas: np.ndarray = betas, res: int = res, coarse: bool = coarse,
                     last_emit: list = last_emit) -> None:
            now = time.perf_counter()
            if progress is not None and done < res * res and now - last_emit[0] > 0.05:
                last_emit[0] = now
                progress(LandscapeResult(trainer.step_count, alphas, betas, partial.copy(),
                                         float("nan"), coords, path_steps, coarse,
                                         now - t0, done, res * res))

        loss = grid_losses(trainer, d1, d2, alphas, betas, x, y, on_chunk)
        penalty = (penalty_grid(term, params, d1, d2, alphas, betas) if term.formula else None)
        center_penalty = (float(penalty_grid(term, params, d1, d2, np.zeros(1), np.zeros(1))[0, 0])
                          if term.formula else 0.0)
        result = LandscapeResult(trainer.step_count, alphas, betas, loss, center, coords, path_steps,
                                 coarse, time.perf_counter() - t0, res * res, res * res,
                                 directions=used, penalty=penalty, center_penalty=center_penalty,
                                 **penalty_info)
        results.append(result)
        if progress is not None:
            progress(result)
    return results
