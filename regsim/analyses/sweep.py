"""The (lr × λ) sweep as a background job: Loshchilov & Hutter (2019) Fig. 2 at small scale.

Every cell is a short run of the live run's settings (its dataset, network, batch size, schedule)
with one (variant, lr, λ, seed), trained from scratch for `steps` steps; its value is the final
validation error (1 − accuracy; the validation loss for regression). The variants differ only in
where the decay enters the update (regsim.optim):

    L2 (SGD+L2, Adam+L2):      g ← ∇L + λθ            (for Adam then divided by √v̂ + ε)
    PyTorch's AdamW:           θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + ε)       (lr and λ coupled again)
    the paper's (SGDW, AdamW): θ ← θ − η_t·λ·θ − …    (η_t the schedule multiplier only)

The paper's claim is about the shape of the grid: with L2 the best λ moves with lr (for SGD
lr·λ ≈ const, a diagonal valley), decoupled it stays put. A small grid shows that for SGD; for Adam
the best cells here differ by less than one standard error, which is why the result carries the
spread: `se` per cell, and `near_best`, the cells within one SE (of the difference) of the best.

The job never touches the live run: it reads the settings from the view and trains fresh runs
through regsim.sweep (`Trainer(h)` per cell, or batched under torch.func.vmap), yielding every
optimizer step (a vmapped step of a whole batch of runs: ~5–20 ms for a digits MLP), with a partial
Result each time a batch of runs is done. Importing this module does not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from .base import Progress, RunView

# The five variants of the panel: the paper's four panels (SGD+L2 | SGDW, Adam+L2 | AdamW) plus
# PyTorch's AdamW. regsim.sweep.VARIANTS also has "sgdw" (SGD decoupled as PyTorch would, lr·λ).
VARIANT_SLUGS = ("sgd-l2", "sgdw", "sgdw-paper", "adam-l2", "adamw", "adamw-paper")
MAX_RUNS = 5000  # cells × seeds one request may ask for
MAX_STEPS = 20_000


@dataclass(frozen=True)
class SweepRequest:
    lrs: tuple[float, ...] = (1e-3, 1e-2, 1e-1)  # the lr axis, each in (0, 10]
    decays: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1)  # the λ axis, each in [0, 10]
    variants: tuple[str, ...] = ("sgd-l2", "sgdw-paper", "adam-l2", "adamw-paper", "adamw")
    seeds: int = 2  # seeds 0 … seeds−1 per cell, in [1, 16]
    steps: int = 200  # optimizer steps per run, in [1, 20000]
    dropout_off: bool = True  # every cell without dropout (so the batched vmap path applies)

    def __post_init__(self) -> None:
        for name, lo, hi, zero in (("lrs", 0.0, 10.0, False), ("decays", 0.0, 10.0, True)):
            vals = getattr(self, name)
            if isinstance(vals, (int, float)):
                vals = (vals,)
            try:
                vals = tuple(float(v) for v in vals)
            except (TypeError, ValueError):
                raise ValueError(f"{name} = {getattr(self, name)!r}: expected a list of numbers") from None
            if not vals:
                raise ValueError(f"{name}: give at least one value")
            if len(vals) > 24:
                raise ValueError(f"{name}: {len(vals)} values; allowed: at most 24")
            for x in vals:
                if not (math.isfinite(x) and (lo <= x if zero else lo < x) and x <= hi):
                    rng = f"[{lo:g}, {hi:g}]" if zero else f"({lo:g}, {hi:g}]"
                    raise ValueError(f"{name}: {x:g} is out of range; allowed: {rng}")
            if len(set(vals)) != len(vals):
                raise ValueError(f"{name}: a value appears twice")
            object.__setattr__(self, name, vals)
        variants = (self.variants,) if isinstance(self.variants, str) else tuple(self.variants)
        bad = [v for v in variants if v not in VARIANT_SLUGS]
        if bad or not variants:
            raise ValueError(f"variants: {bad[0] if bad else 'none'!r} is not allowed; choose from: "
                             f"{', '.join(VARIANT_SLUGS)}")
        object.__setattr__(self, "variants", variants)
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= 16:
            raise ValueError(f"seeds = {self.seeds!r} is out of range; allowed: [1, 16]")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or \
                not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps = {self.steps!r} is out of range; allowed: [1, {MAX_STEPS}]")
        runs = len(self.lrs) * len(self.decays) * len(variants) * self.seeds
        if runs > MAX_RUNS:
            raise ValueError(f"the grid has {runs} runs (variants × lrs × λ × seeds); allowed: at most "
                             f"{MAX_RUNS}")


@dataclass(frozen=True)
class SweepResult:
    """The grid so far (a partial result has NaN where a cell has no finished seed yet)."""

    variants: tuple[str, ...]  # slugs (regsim.sweep.VARIANTS), one per heatmap
    names: tuple[str, ...]  # display names: "SGD+L2", "AdamW (paper)"…
    lrs: np.ndarray  # (L,) the lr axis
    decays: np.ndarray  # (D,) the λ axis
    seeds: int  # seeds asked for per cell
    steps: int  # steps per run
    error: np.ndarray  # (V, L, D, S) final validation error per seed (NaN: not trained yet)
    diverged: np.ndarray  # (V, L, D, S) bool
    mean: np.ndarray  # (V, L, D) mean over the seeds trained (NaN: none yet)
    std: np.ndarray  # (V, L, D) sample standard deviation (ddof 1; NaN with n < 2)
    se: np.ndarray  # (V, L, D) standard error of the mean, std/√n
    n: np.ndarray  # (V, L, D) seeds trained per cell
    best_decay: np.ndarray  # (V, L) index of the best λ at each lr (-1: none yet)
    top: np.ndarray  # (V, 10, 2) (lr index, λ index) of the 10 best cells, best first; -1 pads
    near_best: np.ndarray  # (V, L, D) bool: mean − best mean ≤ the SE of that difference
    resolved: np.ndarray  # (V,) bool: the best cell beats the runner-up by more than one SE
    done: int  # runs finished
    total: int  # runs in all
    seconds: float  # wall time so far
    regression: bool  # the values are validation losses, not error rates
    base: str  # the settings every cell shares, in words
    batched: bool  # trained under torch.func.vmap in batches

    @property
    def complete(self) -> bool:
        return self.done == self.total


Request = SweepRequest
Result = SweepResult


def spec_of(run: RunView, request: SweepRequest):  # -> regsim.sweep.SweepSpec
    """The SweepSpec of `request` on the run's settings: ValueError names a bad field."""
    from ..sweep import SweepSpec

    base = run.hparams
    if request.dropout_off:
        base = base.replace(dropout=0.0, input_dropout=0.0,
                            layer_dropout=tuple(0.0 for _ in base.layer_dropout))
    return SweepSpec(base, request.lrs, request.decays, request.variants, tuple(range(request.seeds)),
                     request.steps)


def result_of(grid, regression: bool, batched: bool) -> SweepResult:  # grid: regsim.sweep.SweepGrid
    """The numpy Result of a (partial) SweepGrid."""
    from ..sweep import VARIANTS

    sp = grid.spec
    mean, std = grid.mean(), grid.std()
    n = np.sum(~np.isnan(grid.error), axis=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(n >= 2, std / np.sqrt(np.maximum(n, 1)), np.nan)
    V, L, D, _ = sp.shape
    top = np.full((V, 10, 2), -1, dtype=np.int64)
    for v, cells in enumerate(grid.top(10)):
        for k, c in enumerate(cells):
            top[v, k] = c
    near = np.zeros((V, L, D), dtype=bool)
    for v in range(V):
        if top[v, 0, 0] < 0:
            continue
        b = tuple(top[v, 0])
        # SE of (cell − best): √(se_cell² + se_best²); with one seed there is none, so only the
        # best cell itself is marked.
        diff_se = np.sqrt(np.nan_to_num(se[v] ** 2) + np.nan_to_num(se[v][b] ** 2))
        with np.errstate(invalid="ignore"):
            near[v] = (mean[v] - mean[v][b]) <= diff_se
    h = sp.base
    base = (f"{h.dataset}, hidden {'-'.join(str(x) for x in h.hidden)}, batch {h.batch_size}, "
            f"{h.schedule} schedule, {sp.steps} steps")
    return SweepResult(
        variants=sp.variants, names=tuple(VARIANTS[v][0] for v in sp.variants),
        lrs=np.asarray(sp.lrs, dtype=np.float64), decays=np.asarray(sp.decays, dtype=np.float64),
        seeds=len(sp.seeds), steps=sp.steps, error=grid.error.copy(), diverged=grid.diverged.copy(),
        mean=mean, std=std, se=se, n=n, best_decay=grid.best_decay_per_lr(), top=top, near_best=near,
        resolved=grid.resolved(), done=grid.done, total=grid.total, seconds=grid.seconds,
        regression=regression, base=base, batched=batched)


def compute(run: RunView, request: SweepRequest) -> Generator[Progress, None, SweepResult]:
    """Train the grid; Progress (in run-steps) every optimizer step, a partial Result per batch."""
    from ..sweep import SweepGrid, can_batch, sweep_steps

    spec = spec_of(run, request)
    device = str(run.x_train.device)
    batched = can_batch(spec.base)
    regression = run.task == "regression"
    total = spec.run_steps
    grid = None
    for item in sweep_steps(spec, device, batched):
        if isinstance(item, SweepGrid):
            grid = item
            if grid.done < grid.total:
                yield Progress(grid.done * spec.steps, total, result_of(grid, regression, batched))
        else:
            yield Progress(min(item, total - 1), total)
    assert grid is not None
    return result_of(grid, regression, batched)
