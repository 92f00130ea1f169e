"""Weight decay as a Gaussian prior: the numbers of the Bayesian view (numpy only, no torch, no Qt).

MAP estimation maximizes log p(D | w) + log p(w). With N training points, a per-example loss ℓ that
is a negative log-likelihood (cross-entropy is one; MSE is the NLL of N(f(x), ½) up to a constant),
and the prior w ~ N(0, σ²I):

    −log p(w | D) = Σₙ ℓₙ(w) + ‖w‖²/(2σ²) + const = N·[ L̄(w) + ‖w‖²/(2Nσ²) ] + const

with L̄ the *averaged* loss regsim trains on. Matching L̄ + λ/2‖w‖² gives

    λ = 1/(Nσ²),   σ² = 1/(Nλ),   σ = 1/√(Nλ)

(the seed text's λ = 1/σ² holds for a *summed* loss, N·L̄). Large λ or much data → a tight prior.

Which optimizers minimize a penalized loss at all (regsim/analyses/landscape_math.decay_term):
L2 mode (any optimizer) and decoupled plain SGD minimize L̄ + λ/2‖w‖²; SGDW with momentum μ minimizes
L̄ + (1 − μ)λ/2‖w‖², a prior with λ_eff = (1 − μ)λ; decoupled Adam (AdamW) minimizes no fixed loss —
its decay scales with each weight's √v̂, so it is not a prior on this loss and no σ is shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def prior_sigma(lam: float, n: int, loss: str = "mean") -> float:
    """σ of the MAP prior N(0, σ²) for the penalty λ/2‖w‖²: 1/√(Nλ) for an averaged loss, 1/√λ for
    a summed one; ∞ at λ = 0 (a flat prior)."""
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"λ = {lam!r} is out of range; allowed: [0, ∞)")
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"N = {n!r} is out of range; allowed: [1, ∞)")
    if loss not in ("mean", "sum"):
        raise ValueError(f"loss = {loss!r} is not allowed; choose one of: mean, sum")
    if lam == 0:
        return math.inf
    return 1.0 / math.sqrt((n if loss == "mean" else 1) * lam)


def prior_lambda(sigma: float, n: int) -> float:
    """The inverse: λ = 1/(Nσ²) for the averaged loss."""
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"σ = {sigma!r} is out of range; allowed: (0, ∞]")
    return 0.0 if math.isinf(sigma) else 1.0 / (n * sigma * sigma)


@dataclass(frozen=True)
class PriorReadout:
    """What the Bayesian panel shows for one run's settings."""

    sigma: float  # σ of the implied prior (inf at λ = 0; nan when there is no prior: AdamW)
    lam_effective: float  # the λ of the penalized loss the optimizer minimizes (nan for AdamW)
    n: int  # training points the loss averages over
    formula: str  # e.g. "σ = 1/√(Nλ) = 1/√(200 · 0.01) = 0.707"
    note: str  # one sentence on the correspondence for this optimizer


def implied_prior(optimizer: str, decay_mode: str, weight_decay: float, n: int,
                  momentum: float = 0.0) -> PriorReadout:
    """The prior a run's decay corresponds to (see the module docstring)."""
    lam = float(weight_decay)
    if optimizer == "adam" and decay_mode == "decoupled" and lam > 0:
        return PriorReadout(math.nan, math.nan, n, "no σ: AdamW's decay is no term of a loss",
                            "Decoupled decay with Adam shrinks each weight by ηλ per step outside the "
                            "adaptive step; its fixed points are not those of any L̄ + λ/2‖w‖², so "
                            "it is not a Gaussian prior on this loss.")
    if optimizer == "momentum" and decay_mode == "decoupled":
        lam_eff = (1.0 - float(momentum)) * lam
        note = (f"SGDW with momentum μ = {momentum:g} minimizes L̄ + (1 − μ)λ/2‖w‖²: a prior with "
                f"λ_eff = (1 − μ)λ = {lam_eff:g}.")
    else:
        lam_eff = lam
        note = "The optimizer minimizes L̄ + λ/2‖w‖² (L̄ averaged over N points): MAP under N(0, 1/(Nλ))."
    sigma = prior_sigma(lam_eff, n)
    formula = (f"σ = 1/√(Nλ) = 1/√({n} · {lam_eff:g}) = {sigma:.4g}" if lam_eff > 0
               else "λ = 0: a flat prior (σ = ∞)")
    return PriorReadout(sigma, lam_eff, n, formula, note)


def _phi(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise (math.erf: no scipy needed)."""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * (1.0 + erf(np.asarray(z, np.float64) / math.sqrt(2.0)))


def prior_counts(edges: np.ndarray, sigma: float, total: int | float) -> np.ndarray:
    """Expected counts (B,) of `total` weights drawn from N(0, σ²) in the histogram bins with these
    edges (B + 1,): total·(Φ(e₊/σ) − Φ(e₋/σ)). What to overlay on a live weight histogram; zeros
    for σ = ∞ or nan (no prior to draw)."""
    e = np.asarray(edges, np.float64)
    if not (math.isfinite(sigma) and sigma > 0):
        return np.zeros(len(e) - 1)
    c = _phi(e / sigma)
    return float(total) * np.diff(c)


def prior_density(x: np.ndarray, sigma: float) -> np.ndarray:
    """The prior's density N(x; 0, σ²) at x."""
    x = np.asarray(x, np.float64)
    if not (math.isfinite(sigma) and sigma > 0):
        return np.zeros_like(x)
    return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
