"""Lesson metrics that need an analysis of the trained network, not its loss curves (issue 10).

A lesson's claim names a metric from regsim.lessons.METRICS; the ones here are measured on a live
Trainer at the claim's at_step by `train_lesson` (the CLI's `main.py lesson NAME`), because
snapshots and Histories do not carry them (the GUI's lesson strip leaves them out and says so).

MC dropout (Gal & Ghahramani 2016): with dropout kept on at inference, T passes give f_t(x); the
predictive σ(x) = std_t f_t(x) is the model's epistemic uncertainty, which should be larger where
there was no data. The 1-D regression set draws its inputs from [−3, −1] ∪ [1, 3] (regsim.data), so

    mc_std_gap_ratio    = mean σ over |x| < 0.8        ÷ mean σ over 1.2 < |x| < 2.8 (on the data)
    mc_std_beyond_ratio = mean σ over 3.2 < |x| ≤ 4    ÷ the same on-data mean

(0.2 away from the data's edges on each side, so neither region mixes with the other).

The ensemble of sub-networks (Srivastava et al. 2014 §7 / Hinton's "weight scaling inference
rule"): for one dropout layer feeding a softmax, the normalized geometric mean over all 2ⁿ masks
G(x) ∝ Π_m p_m(x)^P(m) equals the weight-scaled network W(x) exactly (the logits are linear in the
mask, so E_m[log-softmax] = log-softmax(E_m[logits]) + const); the arithmetic mean A(x) = Σ_m P(m)
p_m(x) does not. With a ReLU and a Linear between the mask and the logits (the first of two hidden
layers) G ≠ W: weight scaling only approximates. Both metrics enumerate the masks of the FIRST
hidden layer (site fc1, ≤ 16 units: exact), on the train + validation points, in probability:

    ensemble_geo_vs_scaled   = max |G − W|
    ensemble_arith_vs_scaled = max |A − W|
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .shrink_bands import shrink_flat_over_stiff, shrink_keep_flat, shrink_keep_stiff

MC_T = 100  # passes; the MC panel's default range and the bench's row
ON_DATA = (1.2, 2.8)  # |x| range inside the data [1, 3]
GAP = 0.8  # |x| < GAP: the hole (−1, 1) in the inputs
BEYOND = 3.2  # |x| > BEYOND: beyond the data (the curve runs to |x| = 4)


def _mc_std(trainer: Any) -> tuple[np.ndarray, np.ndarray]:
    from .analyses import analyze

    if trainer.hparams.dataset != "regression":
        raise ValueError(f"the MC σ metrics need dataset = 'regression' (a 1-D input with a gap); "
                         f"this run has {trainer.hparams.dataset!r}")
    res = analyze(trainer, "mc_dropout", T=MC_T)
    return np.asarray(res.x)[:, 0], np.asarray(res.std).reshape(len(res.x), -1).mean(1)


def _on_data(x: np.ndarray, s: np.ndarray) -> float:
    return float(s[(np.abs(x) > ON_DATA[0]) & (np.abs(x) < ON_DATA[1])].mean())


def mc_std_gap_ratio(trainer: Any) -> float:
    x, s = _mc_std(trainer)
    return float(s[np.abs(x) < GAP].mean()) / _on_data(x, s)


def mc_std_beyond_ratio(trainer: Any) -> float:
    x, s = _mc_std(trainer)
    return float(s[np.abs(x) > BEYOND].mean()) / _on_data(x, s)


def _ensemble(trainer: Any) -> Any:
    from .analyses import analyze

    res = analyze(trainer, "ensemble", site="fc1", page_size=0)
    if not res.exact:
        raise ValueError(f"the ensemble metrics enumerate every mask of fc1: it has {res.n_units} units "
                         "(allowed: ≤ 16)")
    return res


def ensemble_geo_vs_scaled(trainer: Any) -> float:
    return float(_ensemble(trainer).max_diff_geometric)


def ensemble_arith_vs_scaled(trainer: Any) -> float:
    return float(_ensemble(trainer).max_diff_arithmetic)


# name → (label in a claim's text, what it is, how it is measured on a Trainer)
ANALYSIS_METRICS: dict[str, tuple[str, str, Callable[[Any], float]]] = {
    "mc_std_gap_ratio": ("MC σ gap/data", f"mean MC-dropout σ (T = {MC_T}) in the gap |x| < {GAP} ÷ "
                         f"on the data {ON_DATA[0]} < |x| < {ON_DATA[1]} (1-D regression)",
                         mc_std_gap_ratio),
    "mc_std_beyond_ratio": ("MC σ beyond/data", f"mean MC-dropout σ (T = {MC_T}) beyond the data "
                            f"|x| > {BEYOND} ÷ on the data (1-D regression)", mc_std_beyond_ratio),
    "ensemble_geo_vs_scaled": ("max |G − W|", "max |normalized geometric mean − weight-scaled net| "
                               "over all 2ⁿ masks of fc1, train + val points, in probability",
                               ensemble_geo_vs_scaled),
    "ensemble_arith_vs_scaled": ("max |A − W|", "max |arithmetic mean − weight-scaled net| over "
                                 "all 2ⁿ masks of fc1, train + val points, in probability",
                                 ensemble_arith_vs_scaled),
    "shrink_flat_over_stiff": ("flat/stiff keep", "decay run vs its no-decay partner: kept fraction "
                               "‖Q_Fᵀw_decay‖/‖Q_Fᵀw_nodecay‖ of the flat band 0 < λᵢ ≤ α ÷ that of the "
                               "stiff band λᵢ > 10α (the partner's Hessian; regsim/shrink_bands.py)",
                               shrink_flat_over_stiff),
    "shrink_keep_stiff": ("stiff keep", "decay run vs its no-decay partner: kept fraction of the stiff "
                          "band λᵢ > 10α (theory: ≥ 10/11)", shrink_keep_stiff),
    "shrink_keep_flat": ("flat keep", "decay run vs its no-decay partner: kept fraction of the flat "
                         "band 0 < λᵢ ≤ α (theory: ≤ 1/2)", shrink_keep_flat),
}
