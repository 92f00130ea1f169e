"""The loss landscape's arithmetic (torch): directions, the batched grid, the decay term.

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

Everything here reads a `RunView` (a consistent copy of the run), never the Trainer. The request,
the result and the generator the engine drives are in regsim/analyses/landscape.py, which imports
this module only when it computes (the GUI unpickles results without loading torch).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..optim import DECAY_KEY
from .base import RunView

MAX_CHUNK_FLOATS = 16 * 2**20  # perturbed weights materialized per batched forward (64 MB)
# Activations per batched forward: small enough to stay in cache. Measured here: bmm on 16 networks
# at a time ran at 125 GFLOP/s, on 1024 at once at 27 GFLOP/s (memory-bound).
CACHE_FLOATS = 2**19
# The set-up (PCA of the path, its projection and residuals) walks the (P, n) matrix of path points
# relative to θ in column blocks of this many elements, yielding after each: in one piece each step
# took 0.3–1.7 s on one busy CPU thread for 64-512-512-10 (55 path points × 300 k weights).
BLOCK_FLOATS = 2**20


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


def _drain(gen: Generator) -> object:
    """Run a set-up generator to the end (the synchronous callers: tests, make_directions)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _blocks(n: int, rows: int) -> list[tuple[int, int]]:
    """Column ranges [a, b) of the (rows, n) path matrix, BLOCK_FLOATS elements each."""
    size = max(1, BLOCK_FLOATS // max(1, rows))
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def _rows(path: list[torch.Tensor], theta: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Columns a:b of the path relative to θ, (P, b − a)."""
    return torch.stack([v[a:b] for v in path]) - theta[a:b]


def path_pca(path: list[torch.Tensor], theta: torch.Tensor
             ) -> tuple[torch.Tensor, tuple[float, float]] | None:
    """`iter_path_pca` run to the end."""
    return _drain(iter_path_pca(path, theta))  # type: ignore[return-value]


def iter_path_pca(path: list[torch.Tensor], theta: torch.Tensor
                  ) -> Generator[None, None, tuple[torch.Tensor, tuple[float, float]] | None]:
    """Top two principal directions (2, n) of the path relative to θ, and the share of
    Σ‖θ_t − θ‖² each explains; None when the path has fewer than 3 points or is degenerate.

    Uncentred, relative to the current weights (as Li et al. 2018 take the final point as the
    origin), so the plane through θ is the one that holds most of the path's distance from θ.
    A generator that yields after each block of weights (see BLOCK_FLOATS)."""
    if len(path) < 3:
        return None
    n = theta.numel()
    # Top right-singular vectors via the small (P, P) Gram matrix: its eigenvalues are the
    # squared singular values, i.e. the variance along each principal direction.
    gram = theta.new_zeros((len(path), len(path)))
    for a, b in _blocks(n, len(path)):
        m = _rows(path, theta, a, b)  # (P, block): trajectory relative to the current weights
        gram += m @ m.T
        yield
    evals, evecs = torch.linalg.eigh(gram)
    if float(evals[-2]) <= 1e-20:
        return None
    top = evecs[:, -2:].flip(1)  # (P, 2), largest first
    total = float(evals.clamp_min(0).sum())
    parts = []
    for a, b in _blocks(n, len(path)):
        parts.append(top.T @ _rows(path, theta, a, b))  # (2, block)
        yield
    return torch.cat(parts, 1), (float(evals[-1]) / total, float(evals[-2]) / total)


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
    """`iter_project_path` run to the end."""
    return _drain(iter_project_path(path, theta, d1, d2))  # type: ignore[return-value]


def iter_project_path(path: list[torch.Tensor], theta: torch.Tensor, d1: torch.Tensor,
                      d2: torch.Tensor) -> Generator[None, None, np.ndarray]:
    """Least-squares coordinates (α, β) of each path point in the plane θ + α·d1 + β·d2, (P, 2);
    a generator that yields after each block of weights."""
    if not path:
        return np.zeros((0, 2))
    gram = torch.zeros((2, 2), dtype=torch.float64, device=theta.device)  # BᵀB
    rhs = torch.zeros((2, len(path)), dtype=torch.float64, device=theta.device)  # Bᵀ(θ_t − θ)
    for a, b in _blocks(theta.numel(), len(path)):
        basis = torch.stack([d1[a:b], d2[a:b]], 1).double()  # (block, 2)
        gram += basis.T @ basis
        rhs += basis.T @ _rows(path, theta, a, b).double().T
        yield
    coords = torch.linalg.lstsq(gram, rhs).solution  # (2, P)
    return coords.T.cpu().numpy()


def path_residuals(path: list[torch.Tensor], theta: torch.Tensor, d1: torch.Tensor,
                   d2: torch.Tensor, coords: np.ndarray) -> tuple[np.ndarray, float]:
    """`iter_path_residuals` run to the end."""
    return _drain(iter_path_residuals(path, theta, d1, d2, coords))  # type: ignore[return-value]


def iter_path_residuals(path: list[torch.Tensor], theta: torch.Tensor, d1: torch.Tensor,
                        d2: torch.Tensor, coords: np.ndarray
                        ) -> Generator[None, None, tuple[np.ndarray, float]]:
    """Each path point's distance from the plane θ + α·d1 + β·d2, in units of ‖d1‖, and the share
    of the path's squared distance from θ that the plane holds, 1 − Σ r² / Σ ‖θ_t − θ‖².

    `coords` are the least-squares (α, β) of `project_path`, so θ + α·d1 + β·d2 is each point's
    orthogonal projection and the residual is orthogonal to the plane. A generator that yields
    after each block of weights: the residual is summed block by block, never materialized."""
    if not path:
        return np.zeros(0), float("nan")
    c = torch.as_tensor(coords, dtype=torch.float64, device=theta.device)  # (P, 2)
    r2 = torch.zeros(len(path), dtype=torch.float64, device=theta.device)
    total = 0.0
    for a, b in _blocks(theta.numel(), len(path)):
        delta = _rows(path, theta, a, b).double()  # (P, block)
        resid = delta - c @ torch.stack([d1[a:b], d2[a:b]]).double()
        r2 += (resid * resid).sum(1)
        total += float((delta * delta).sum())
        yield
    unit = float(d1.double().norm()) or 1.0
    captured = 1.0 - float(r2.sum()) / total if total > 0 else float("nan")
    return (r2.sqrt() / unit).cpu().numpy(), captured


@dataclass(frozen=True)
class DecayTerm:
    """The weight-decay part of the objective: ½·Σᵢ cᵢ·θᵢ² over the decayed parameters."""

    coef: list[torch.Tensor | float]  # per model parameter: cᵢ (a number or elementwise); 0 = none
    formula: str  # e.g. "λ/2·‖θ_decay‖²"; "" when nothing is decayed
    note: str  # what is shown and why it is the right term


def _group_names(run: RunView) -> str:
    """"the 3 weight matrices" / "all 6 parameter tensors": what the decayed set is, in words."""
    decayed = {i for g in run.param_groups for i in g["params"]
               if g.get("weight_decay", 0.0) or g.get(DECAY_KEY, 0.0)}
    params = list(run.model.parameters())
    n = sum(1 for i in range(len(params)) if i in decayed)
    matrices = all(p.dim() >= 2 for i, p in enumerate(params) if i in decayed)
    if n == len(params):
        return f"all {n} parameter tensors (biases and norms included)"
    return f"the {n} weight matrices (biases and norms not decayed)" if matrices else \
        f"{n} of {len(params)} parameter tensors"


def decay_term(run: RunView) -> DecayTerm:
    """The decay term of the objective the optimizer's fixed points minimize, per decay group.

    Read from the optimizer's own param_groups (as plain data in the view), so it covers exactly
    what is decayed (the decay group; the no_decay biases and norms only with
    decay_norms_and_biases). With η the learning rate and g = ∇L (η cancels in every fixed point,
    so schedules don't matter):
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
    n_params = len(list(run.model.parameters()))
    coef: list[torch.Tensor | float] = [0.0] * n_params
    kinds, lams = set(), set()
    adam = run.optimizer == "adam"
    for g in run.param_groups:
        l2, dec = float(g.get("weight_decay", 0.0)), float(g.get(DECAY_KEY, 0.0))
        if adam and g.get("decoupled_weight_decay", False):
            l2, dec = 0.0, l2
        for i, state in zip(g["params"], g["state"]):
            if not (0 <= i < n_params) or not (l2 or dec):
                continue
            if l2:
                coef[i], kind = l2, "l2"
            elif not adam:
                mu = float(g.get("momentum", 0.0))
                coef[i], kind = (1.0 - mu) * dec, ("sgdw" if mu else "sgd")
            else:
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
                        for g in run.param_groups):
            return DecayTerm(coef, "", "AdamW has taken no step yet: no decay term to show")
        return DecayTerm(coef, "", "λ = 0: nothing is decayed, the objective is the data loss")
    lam = ", ".join(f"{v:g}" for v in sorted(lams))
    what = _group_names(run)
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


def grid_losses(run: RunView, d1: list[torch.Tensor], d2: list[torch.Tensor],
                alphas: np.ndarray, betas: np.ndarray, x: torch.Tensor, y: torch.Tensor
                ) -> np.ndarray:
    """The whole grid at once (for the bench and for tests): `iter_grid_losses` run to the end."""
    gen = iter_grid_losses(run, d1, d2, alphas, betas, x, y)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def iter_grid_losses(run: RunView, d1: list[torch.Tensor], d2: list[torch.Tensor],
                     alphas: np.ndarray, betas: np.ndarray, x: torch.Tensor, y: torch.Tensor
                     ) -> Generator[tuple[np.ndarray, int], None, np.ndarray]:
    """Loss at every (α, β) with many perturbed networks per batched forward; returns (B, A).

    A generator: after each chunk of grid points it yields (the grid so far, unfinished points NaN,
    (B, A); points done), so a job runner can interleave it with training. A chunk is the unit of
    work: measured on one CPU thread, 16 points (~2 ms) on a 2-64-64-2 net with 512 examples, 2
    points on a 64-512-512-10 net. The yielded grid is the working buffer: copy it to keep it.

    Works on the view's own copy of the network (its parameters are θ), never the live model."""
    model = run.model
    linears = model.weight_layers()
    index = {id(p): i for i, p in enumerate(model.parameters())}
    w_idx = [index[id(lin.weight)] for lin in linears]
    b_idx = [index[id(lin.bias)] for lin in linears]
    params = [p.detach() for p in model.parameters()]
    dev = params[0].device
    aa, bb = np.meshgrid(alphas, betas)  # (B, A), rows = betas
    coef_a = torch.as_tensor(aa.ravel(), dtype=torch.float32, device=dev)
    coef_b = torch.as_tensor(bb.ravel(), dtype=torch.float32, device=dev)
    total = coef_a.numel()
    out = np.full(total, np.nan)
    grid = out.reshape(aa.shape)
    with torch.no_grad():
        # The first layer is linear in its parameters, so its output at θ + α·d₁ + β·d₂ is
        #   x·W₀ᵀ + b₀ + α·(x·D₁ᵀ + d₁b) + β·(x·D₂ᵀ + d₂b):
        # three (N, H1) products once, then two multiply-adds per grid point, instead of a batched
        # matmul over perturbed copies of W₀ (on a 2-64-64-2 net that matmul and its copies were a
        # third of the time).
        w0, b0 = w_idx[0], b_idx[0]
        first = F.linear(x, params[w0], params[b0])  # (N, H1)
        first_a = F.linear(x, d1[w0], d1[b0])
        first_b = F.linear(x, d2[w0], d2[b0])
        n_weights = sum(params[i].numel() for i in w_idx[1:] + b_idx[1:])
        widest = max(model.sizes)
        chunk = int(max(1, min(1024, MAX_CHUNK_FLOATS // max(1, n_weights),
                               CACHE_FLOATS // max(1, len(x) * widest))))
        # Every chunk reuses the same buffers: a fresh multi-megabyte tensor per chunk is a fresh
        # mmap, and its page faults cost as much as the arithmetic (measured: a broadcast
        # multiply-add into a new (16, 512, 64) tensor took 660 µs, into a reused one 115 µs).
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
        return buf.addcmul_(b.view(shape), d2[i]).add_(params[i])

    for start in range(0, total, chunk):
        # no_grad per chunk, not around the loop: a generator's suspended `with` would leave
        # grad mode off in whoever runs between two chunks (the training step).
        with torch.no_grad():
            a = coef_a[start:start + chunk]  # (G,)
            b = coef_b[start:start + chunk]
            g = len(a)
            weights = [perturb(wi, buf[:g], a, b) for (wi, _), buf in zip(later, w_buf)]
            biases = [perturb(bi, buf[:g], a, b) for (_, bi), buf in zip(later, b_buf)]
            h1 = torch.mul(first_a, a.view(-1, 1, 1), out=h_buf[0][:g])  # (G, N, H1)
            h1.addcmul_(b.view(-1, 1, 1), first_b).add_(first)
            logits = model.forward_batched(h1, weights, biases,
                                           out=[buf[:g] for buf in h_buf[1:]])  # (G, C, N)
            loss = run.loss(logits, target.expand(g, *target.shape), reduction="none")
            out[start:start + g] = loss.reshape(g, -1).mean(1).double().cpu().numpy()
        yield grid, start + g
    return grid
