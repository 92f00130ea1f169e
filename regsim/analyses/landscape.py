"""Loss landscape: a 2-D slice of the real model's loss around its current weights (Li et al. 2018).

    f(α, β) = L(θ + α·d1 + β·d2)

with d1, d2 filter-normalized directions (PCA of the recent trajectory, or random) and, beside the
data loss, the decay term of the objective the optimizer minimizes on the same grid. The arithmetic
is in regsim/analyses/landscape_math.py; this module is the analysis contract around it (see
regsim/analyses/base.py): a `LandscapeRequest`, a `LandscapeResult` of numpy arrays, and `compute`,
a generator that yields after every chunk of grid points and, with `preview`, yields a finished
coarse grid as a partial result before computing the full one.

Importing this module does not import torch (`compute` does, on first use): the GUI process
unpickles `LandscapeResult`s sent by the engine without loading torch.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from .base import Progress, RunView, require

# A half-filled grid (unfinished points NaN) is offered as a partial result at most this often: the
# panel only moves its progress bar on it, so more would only fill the queue.
PARTIAL_EVERY_S = 0.05


@dataclass(frozen=True)
class LandscapeRequest:
    resolution: int = 51  # grid points per axis, in [3, 201]
    span: float = 1.0  # half-width of the grid in filter-normalized units, in (0, 10]
    points: int = 512  # training examples the loss is averaged over, >= 1
    directions: str = "pca"  # "pca" (of the recent trajectory) or "random"
    preview: int = 11  # resolution of the coarse preview sent first; 0 = no preview
    seed: int = 0  # seeds the random directions

    def __post_init__(self) -> None:
        def integer(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not (integer(self.resolution) and 3 <= self.resolution <= 201):
            raise ValueError(f"resolution = {self.resolution!r} is out of range; allowed: [3, 201]")
        if not (isinstance(self.span, (int, float)) and not isinstance(self.span, bool)
                and 0 < float(self.span) <= 10):
            raise ValueError(f"span = {self.span!r} is out of range; allowed: (0, 10]")
        if not (integer(self.points) and self.points >= 1):
            raise ValueError(f"points = {self.points!r} is out of range; allowed: [1, ∞)")
        if self.directions not in ("pca", "random"):
            raise ValueError(f"directions = {self.directions!r} is not allowed; choose one of: "
                             "pca, random")
        if not (integer(self.preview) and (self.preview == 0 or 3 <= self.preview <= 51)):
            raise ValueError(f"preview = {self.preview!r} is out of range; allowed: 0 or [3, 51]")
        if not (integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")


@dataclass(frozen=True)
class LandscapeResult:
    """A 2-D slice of the real loss around the current weights (Li et al. 2018)."""

    step: int  # the step whose weights are the centre
    alphas: np.ndarray  # (A,) coefficients along direction 1
    betas: np.ndarray  # (B,) coefficients along direction 2
    loss: np.ndarray  # (B, A) loss at θ + α·d1 + β·d2; rows = betas
    center_loss: float  # loss at (0, 0)
    path: np.ndarray  # (P, 2) recent weights projected onto (d1, d2), oldest first
    path_steps: np.ndarray  # (P,) the step of each path point
    coarse: bool  # True for the quick preview, False for the full grid
    elapsed: float  # seconds spent computing
    done: int = 0  # progress: grid points finished
    total: int = 0  # progress: grid points in all
    directions: str = "pca"  # how d1, d2 were chosen: "pca" of the trajectory, or "random"
    # The weight-decay term of the objective the optimizer minimizes, on the same grid: the panel
    # shows loss + penalty ("objective") or loss alone. None when nothing is decayed (λ = 0).
    # L2 mode: λ/2·‖θ_decay‖² over the decay group; see landscape_math.decay_term for the
    # decoupled modes.
    penalty: np.ndarray | None = None  # (B, A), same grid as `loss`
    center_penalty: float = 0.0  # the penalty at (0, 0), the current weights
    objective: str = ""  # the penalty as a formula, e.g. "λ/2·‖θ_decay‖²" ("" = data loss only)
    objective_note: str = ""  # one sentence: what the penalty is and why it is the right one
    # How far the path lies off the plotted plane (Li et al. 2018: a 2-D projection of a path in
    # ℝⁿ). Each path point's distance from the plane θ + span(d1, d2), in units of ‖d1‖ (the
    # scale of the α axis), and the share of the path's squared distance from θ that the plane
    # holds: 1 − Σ residual² / Σ ‖θ_t − θ‖².
    path_residual: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (P,)
    path_captured: float = float("nan")
    # PCA directions: the share of the path's (uncentred, relative to θ) variance each of the top
    # two principal components explains, before filter normalization; () for random directions.
    pca_explained: tuple[float, ...] = ()


# The names the analysis contract asks every module for.
Request = LandscapeRequest
Result = LandscapeResult


def compute(run: RunView, request: LandscapeRequest
            ) -> Generator[Progress, None, LandscapeResult]:
    """A coarse preview (if asked; yielded as a partial result), then the full grid (returned).

    Progress counts grid points over preview and full grid together (preview² + resolution²).
    It yields after the set-up steps and after every chunk of the batched grid evaluation."""
    from . import landscape_math as m  # torch: only where we compute (see the module docstring)

    # The batched grid evaluates the MLP's Linear layers in closed form (landscape_math).
    require(run, "The loss surface")
    t0 = time.perf_counter()
    stages = ([request.preview] if request.preview else []) + [request.resolution]
    total = sum(n * n for n in stages)
    params = [p.detach() for p in run.model.parameters()]
    path = [v for _, v in run.trajectory]
    theta = m._flatten(params)

    def setup(gen: Generator) -> Generator[Progress, None, object]:
        """A set-up step (O(path points × weights)), yielding as it goes: in one piece each took
        0.3–1.7 s on one busy CPU thread for 64-512-512-10 (55 path points × 300 k weights)."""
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value
            yield Progress(0, total)

    pca = (yield from setup(m.iter_path_pca(path, theta))) if request.directions == "pca" else None
    d1, d2, used = m.make_directions(params, path, request.directions, request.seed, pca)
    f1, f2 = m._flatten(d1), m._flatten(d2)
    coords = yield from setup(m.iter_project_path(path, theta, f1, f2))
    residual, captured = yield from setup(m.iter_path_residuals(path, theta, f1, f2, coords))
    explained = pca[1] if pca is not None and used == "pca" else ()
    yield Progress(0, total)
    term = m.decay_term(run)
    info = dict(objective=term.formula, objective_note=term.note, path_residual=residual,
                path_captured=captured, pca_explained=explained, directions=used)
    path_steps = np.asarray([s for s, _ in run.trajectory], dtype=np.int64)
    n = min(request.points, len(run.x_train))
    x, y = run.x_train[:n], run.y_train[:n]
    # Widen the window, if needed, so the whole recent path fits on the slice.
    reach = np.abs(coords).max(0) * 1.1 if len(coords) else np.zeros(2)
    span_a, span_b = max(request.span, float(reach[0])), max(request.span, float(reach[1]))
    zero = np.zeros(1)
    center = float(m.grid_losses(run, d1, d2, zero, zero, x, y)[0, 0])
    center_penalty = (float(m.penalty_grid(term, params, d1, d2, zero, zero)[0, 0])
                      if term.formula else 0.0)
    before = 0  # grid points of the finished stages
    result: LandscapeResult | None = None
    for k, res in enumerate(stages):
        coarse = k == 0 and len(stages) == 2
        alphas, betas = np.linspace(-span_a, span_a, res), np.linspace(-span_b, span_b, res)
        last_partial = time.perf_counter()
        grid = m.iter_grid_losses(run, d1, d2, alphas, betas, x, y)
        while True:
            try:
                partial_loss, done = next(grid)
            except StopIteration as stop:
                loss = stop.value
                break
            now = time.perf_counter()
            partial = None
            if done < res * res and now - last_partial > PARTIAL_EVERY_S:
                last_partial = now
                partial = LandscapeResult(run.step, alphas, betas, partial_loss.copy(), float("nan"),
                                          coords, path_steps, coarse, now - t0, done, res * res,
                                          directions=used)
            yield Progress(before + done, total, partial)
        penalty = m.penalty_grid(term, params, d1, d2, alphas, betas) if term.formula else None
        result = LandscapeResult(run.step, alphas, betas, loss, center, coords, path_steps, coarse,
                                 time.perf_counter() - t0, res * res, res * res, penalty=penalty,
                                 center_penalty=center_penalty, **info)
        before += res * res
        if coarse:
            yield Progress(before, total, result)
    assert result is not None
    return result
