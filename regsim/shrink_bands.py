"""Weight decay's selective shrink measured in curvature bands: what a lesson can honestly claim.

The quadratic theory (Goodfellow et al. 2016 §7.1.1, eq. 7.13): near a minimum w* of the data loss L
with Hessian H = QΛQᵀ, the optimum of L + α/2‖w‖² is w̃ = Q(Λ + αI)⁻¹ΛQᵀw*, so along eigenvector qᵢ
the component qᵢᵀw* is kept by the factor λᵢ/(λᵢ + α): stiff directions (λᵢ ≫ α) keep it, flat ones
(λᵢ ≪ α) lose it.

On the app's real networks the per-direction factor does not hold (measured, see the lesson
flat_directions_shrink_most's notes and regsim/analyses/hessian.py's docstring): even a 1-8-1 tanh net
has 10–13 of its 25 eigenvalues below α, whose components of w* are O(1); decay removes them, a move
far outside the quadratic region, and the third-order terms it excites move every other coordinate
by more than the theory's λᵢ/(λᵢ + α) − 1. Individual ratios qᵢᵀw_decay / qᵢᵀw_nodecay are then noise
where qᵢᵀw_nodecay is small (−1.9 measured where 0.988 was predicted). What survives is the ordering,
measured per band with the components' norms (robust to one small component):

    keep(B) = ‖Q_Bᵀ w_decay‖ / ‖Q_Bᵀ w_nodecay‖,   B = {i : λᵢ in the band}

with the bands STIFF = {λᵢ > 10α} (theory: every factor ≥ 10/11) and FLAT = {0 < λᵢ ≤ α} (theory:
every factor ≤ 1/2); negative-curvature directions (not a minimum) are in neither. The Hessian is the
no-decay run's, at its weights, by Lanczos on Hessian-vector products run to k = P (exact for the
tiny nets a lesson uses: m = n Lanczos steps span ℝⁿ).

numpy only, except `measure_bands` (it runs the Hessian analysis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

STIFF = 10.0  # λᵢ > STIFF·α: the stiff band (predicted factor ≥ 10/11)
MAX_PARAMS = 400  # the full eigen-decomposition (Lanczos with k = P) is for tiny nets only


@dataclass(frozen=True)
class BandKeeps:
    keep_stiff: float  # ‖Q_Sᵀw_decay‖ / ‖Q_Sᵀw_nodecay‖ over λᵢ > 10α (nan: empty band)
    keep_flat: float  # the same over 0 < λᵢ ≤ α (nan: empty band)
    predicted_stiff: float  # ‖diag(λᵢ/(λᵢ+α)) Q_Sᵀw_nodecay‖ / ‖Q_Sᵀw_nodecay‖
    predicted_flat: float  # the same over the flat band
    n_stiff: int
    n_flat: int
    n_negative: int  # λᵢ ≤ 0: not a minimum along them; in no band
    alpha: float


def band_keeps(eigenvalues: np.ndarray, eigenvectors: np.ndarray, w_decay: np.ndarray,
               w_nodecay: np.ndarray, alpha: float) -> BandKeeps:
    """Per-band kept fraction of the no-decay weights' components (eigenvectors (k, P), unit rows)."""
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha = {alpha!r} is out of range; allowed: (0, ∞) (a decay run)")
    lam = np.asarray(eigenvalues, np.float64)
    Q = np.asarray(eigenvectors, np.float64)
    cd = Q @ np.asarray(w_decay, np.float64).ravel()
    cn = Q @ np.asarray(w_nodecay, np.float64).ravel()
    pred = np.where(lam > 0, lam / np.maximum(lam + alpha, 1e-300), np.nan)

    def keep(band: np.ndarray) -> tuple[float, float]:
        den = float(np.linalg.norm(cn[band]))
        if not band.any() or den == 0:
            return math.nan, math.nan
        return float(np.linalg.norm(cd[band])) / den, float(np.linalg.norm(pred[band] * cn[band])) / den

    stiff, flat = lam > STIFF * alpha, (lam > 0) & (lam <= alpha)
    ks, ps = keep(stiff)
    kf, pf = keep(flat)
    return BandKeeps(ks, kf, ps, pf, int(stiff.sum()), int(flat.sum()), int((lam <= 0).sum()),
                     float(alpha))


def _partner(trainer: Any, trainers: dict[str, Any]) -> Any:
    """The no-decay run of the group whose settings equal `trainer`'s but for weight_decay."""
    want = trainer.hparams.replace(weight_decay=0.0)
    for t in trainers.values():
        if t is not trainer and t.hparams == want:
            return t
    raise ValueError("the band-keep metrics need a run with the same settings and weight_decay = 0 "
                     "beside the decay run (a lockstep pair)")


_CACHE: dict[tuple[int, int, int], BandKeeps | None] = {}  # one claim reads up to three metrics


def measure_bands(trainer: Any, trainers: dict[str, Any]) -> BandKeeps | None:
    """BandKeeps of a decay run against its no-decay partner; None for a run without decay."""
    key = (id(trainer), trainer.step_count, id(trainers))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _measure(trainer, trainers)
    return _CACHE[key]


def _measure(trainer: Any, trainers: dict[str, Any]) -> BandKeeps | None:
    from .analyses import analyze

    flat = analyze(trainer, "flat_weights")
    if flat.alpha == 0:
        return None
    if not (flat.uniform and math.isfinite(flat.alpha)):
        raise ValueError(f"the band-keep metrics need the penalty α/2‖θ‖² on every parameter (L2 or "
                         f"plain SGD, decay_norms_and_biases on); this run: {flat.note}")
    partner = _partner(trainer, trainers)
    P = flat.weights.size
    if P > MAX_PARAMS:
        raise ValueError(f"the band-keep metrics decompose the whole Hessian: this network has P = {P} "
                         f"parameters (allowed: ≤ {MAX_PARAMS})")
    hess = analyze(partner, "hessian", k=P, trace_samples=0)
    nodecay = analyze(partner, "flat_weights")
    return band_keeps(hess.eigenvalues, hess.eigenvectors, flat.weights, nodecay.weights, flat.alpha)


def shrink_flat_over_stiff(trainer: Any, trainers: dict[str, Any]) -> float:
    b = measure_bands(trainer, trainers)
    return math.nan if b is None else b.keep_flat / b.keep_stiff


def shrink_keep_stiff(trainer: Any, trainers: dict[str, Any]) -> float:
    b = measure_bands(trainer, trainers)
    return math.nan if b is None else b.keep_stiff


def shrink_keep_flat(trainer: Any, trainers: dict[str, Any]) -> float:
    b = measure_bands(trainer, trainers)
    return math.nan if b is None else b.keep_flat


for _f in (shrink_flat_over_stiff, shrink_keep_stiff, shrink_keep_flat):
    _f.pair_runs = True  # type: ignore[attr-defined]  # train_lesson passes the group's trainers
