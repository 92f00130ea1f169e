"""One run's parameters as a flat vector, with the L2 coefficient its optimizer's fixed points obey.

The Hessian panel's selective shrinkage (regsim.analyses.hessian.project_weights) projects two runs'
weights onto the eigenvectors of the no-decay run's Hessian, and an analysis sees only one run: so
each run is asked for its weights by this (cheap) job, and the panel does the numpy projection.

The decay strength α comes from the optimizer's own param_groups (landscape_math.decay_term, which
says why): the objective whose stationary points the optimizer reaches is L + ½·Σᵢ cᵢθᵢ². The
eigen-direction theory (Goodfellow et al. 2016 §7.1.1) needs cᵢ = α for every parameter:

- L2 mode (any optimizer), data loss averaged: α = λ;  decoupled plain SGD: α = λ (the same update);
- decoupled with momentum μ (SGDW): α = (1 − μ)λ;
- AdamW: cᵢ = λ(√v̂ᵢ + ε) differs per weight: there is no single α (nan, and a note says so);
- biases / norm parameters in the no_decay group (decay_norms_and_biases off): cᵢ = 0 for them,
  so the penalty is not α/2‖θ‖²; α is still reported (the decayed parameters' value) with a note.

Importing this module does not import torch (`compute` does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from .base import Progress, RunView


@dataclass(frozen=True)
class FlatWeightsRequest:
    """No settings: the run's weights at the step the job starts."""


@dataclass(frozen=True)
class FlatWeightsResult:
    step: int  # the step whose weights these are
    weights: np.ndarray  # (P,) float64, every trainable parameter in model.parameters() order
    coef: np.ndarray  # (P,) float64, cᵢ of the objective's decay term ½Σcᵢθᵢ² (0: not decayed)
    alpha: float  # the single α when every decayed cᵢ is equal (nan for AdamW, 0 without decay)
    uniform: bool  # every parameter has cᵢ = α (the theory's penalty α/2‖θ‖² exactly)
    note: str  # what the decay term is, from landscape_math.decay_term, and any caveat
    param_sizes: tuple[int, ...]  # numel of each parameter, summing to P
    elapsed: float


Request = FlatWeightsRequest
Result = FlatWeightsResult


def compute(run: RunView, request: FlatWeightsRequest) -> Generator[Progress, None, FlatWeightsResult]:
    import torch

    from .landscape_math import decay_term

    t0 = time.perf_counter()
    params = [p for p in run.model.parameters()]
    term = decay_term(run)
    flat, coef = [], []
    for p, c in zip(params, term.coef):
        if not p.requires_grad:
            continue
        flat.append(p.detach().reshape(-1).double().cpu().numpy())
        if isinstance(c, torch.Tensor):
            coef.append(np.broadcast_to(c.detach().double().cpu().numpy(), p.shape).reshape(-1))
        else:
            coef.append(np.full(p.numel(), float(c)))
    yield Progress(1, 2)
    w, cs = np.concatenate(flat), np.concatenate(coef)
    decayed = cs[cs > 0]
    if decayed.size == 0:
        alpha, note = 0.0, term.note
    elif np.ptp(decayed) <= 1e-12 * float(decayed.max()):
        alpha, note = float(decayed[0]), term.note
    else:
        alpha, note = math.nan, term.note + ": no single α (it differs per weight)"
    uniform = bool(math.isfinite(alpha) and np.all(cs == alpha))
    if math.isfinite(alpha) and alpha > 0 and not uniform:
        note += (f"; {int((cs == 0).sum())} of {cs.size} parameters (biases, norms) are not decayed, "
                 "so the penalty is not α/2‖θ‖² and λᵢ/(λᵢ+α) is an approximation")
    return FlatWeightsResult(step=run.step, weights=w, coef=cs, alpha=alpha, uniform=uniform,
                             note=note, param_sizes=tuple(p.numel() for p in params if p.requires_grad),
                             elapsed=time.perf_counter() - t0)
