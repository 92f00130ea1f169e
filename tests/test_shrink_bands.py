"""The band-keep lesson metrics (regsim/shrink_bands.py) against independent computations: the full
Hessian by torch.func.hessian + torch.linalg.eigh in float64 on a tiny lockstep pair, and the exact
quadratic, where the kept fractions must equal the theory's λᵢ/(λᵢ + α)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regsim.comparison import Comparison
from regsim.hparams import HParams
from regsim.lessons import load_lesson
from regsim.shrink_bands import STIFF, band_keeps, measure_bands, shrink_flat_over_stiff

BASE = dict(dataset="regression", hidden=(3,), activation="tanh", train_size=40, val_size=8,
            batch_size=40, optimizer="momentum", lr=0.02, decay_mode="l2", decay_norms_and_biases=True)


def _pair(alpha: float = 0.01, steps: int = 150, **extra) -> Comparison:
    group = Comparison({"A": HParams(**BASE, **extra), "B": HParams(**BASE, weight_decay=alpha, **extra)},
                       "cpu")
    group.step(steps)
    return group


def _by_hand(group: Comparison, alpha: float) -> tuple[float, float]:
    """Kept fractions from the full float64 Hessian of A's loss at A's weights."""
    a, b = group.trainers["A"], group.trainers["B"]
    model = a.model
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    x, y = a.x_train.double(), a.y_train.double()
    w_a = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    w_b = torch.cat([p.detach().reshape(-1) for p in b.model.parameters()]).double()
    params = {n: p.detach().double() for n, p in model.named_parameters()}

    def loss(w):
        out, i = {}, 0
        for n, s, k in zip(names, shapes, sizes):
            out[n] = w[i:i + k].reshape(s)
            i += k
        h = x
        layers = [k for k in params if k.endswith(".weight")]
        for j, wk in enumerate(layers):
            h = h @ out[wk].T + out[wk[:-len("weight")] + "bias"]
            if j < len(layers) - 1:
                h = torch.tanh(h)
        return torch.mean((h - y) ** 2)

    lam, vec = torch.linalg.eigh(torch.func.hessian(loss)(w_a))
    cn, cd = vec.T @ w_a, vec.T @ w_b
    stiff, flat = lam > STIFF * alpha, (lam > 0) & (lam <= alpha)
    assert stiff.any() and flat.any()
    return (float(cd[stiff].norm() / cn[stiff].norm()), float(cd[flat].norm() / cn[flat].norm()))


def test_band_keeps_equal_full_hessian_eigh():
    alpha = 0.05  # 300 steps: eigenvalues 33.9, 8.8, 0.28, 0.067, 0.026 … 0.0115, −0.003: both bands
    group = _pair(alpha, 300)
    bands = measure_bands(group.trainers["B"], group.trainers)
    stiff, flat = _by_hand(group, alpha)
    assert bands.keep_stiff == pytest.approx(stiff, rel=1e-4)
    assert bands.keep_flat == pytest.approx(flat, rel=1e-4)
    assert shrink_flat_over_stiff(group.trainers["B"], group.trainers) == pytest.approx(flat / stiff,
                                                                                        rel=1e-4)
    # The no-decay run itself has no decay to measure; a swapped claim reads nan and fails.
    assert measure_bands(group.trainers["A"], group.trainers) is None
    assert math.isnan(shrink_flat_over_stiff(group.trainers["A"], group.trainers))


def test_band_keeps_are_the_theory_on_an_exact_quadratic():
    """On L = ½(w − w*)ᵀH(w − w*) the decayed optimum is (H + αI)⁻¹Hw*: per band the kept fraction is
    the norm-weighted λᵢ/(λᵢ + α), computed here by hand from a known spectrum."""
    rng = np.random.default_rng(3)
    alpha = 0.05
    lam = np.array([5.0, 2.0, 0.9, 0.3, 0.04, 0.01, 0.002, -0.01])
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    H = Q @ np.diag(lam) @ Q.T
    w_star = rng.normal(size=8)
    w_decay = np.linalg.solve(H + alpha * np.eye(8), H @ w_star)
    b = band_keeps(lam, Q.T, w_decay, w_star, alpha)
    c = Q.T @ w_star
    f = lam / (lam + alpha)
    s, fl = slice(0, 3), slice(4, 7)  # λ > 10α = 0.5 and 0 < λ ≤ α = 0.05
    assert (b.n_stiff, b.n_flat, b.n_negative) == (3, 3, 1)
    assert b.keep_stiff == pytest.approx(np.linalg.norm(f[s] * c[s]) / np.linalg.norm(c[s]), rel=1e-12)
    assert b.keep_flat == pytest.approx(np.linalg.norm(f[fl] * c[fl]) / np.linalg.norm(c[fl]), rel=1e-12)
    assert (b.keep_stiff, b.keep_flat) == pytest.approx((b.predicted_stiff, b.predicted_flat), rel=1e-12)
    with pytest.raises(ValueError, match="alpha = 0"):
        band_keeps(lam, Q.T, w_decay, w_star, 0.0)


def test_bad_pairs_name_what_is_needed():
    adam = Comparison({"A": HParams(**{**BASE, "optimizer": "adam", "decay_mode": "decoupled"}),
                       "B": HParams(**{**BASE, "optimizer": "adam", "decay_mode": "decoupled"},
                                    weight_decay=0.01)}, "cpu")
    adam.step(1)  # AdamW's per-weight coefficient λ(√v̂ᵢ + ε) exists after a step
    with pytest.raises(ValueError, match="α/2‖θ‖² on every parameter"):
        measure_bands(adam.trainers["B"], adam.trainers)
    lonely = Comparison({"B": HParams(**BASE, weight_decay=0.01)}, "cpu")
    with pytest.raises(ValueError, match="weight_decay = 0"):
        measure_bands(lonely.trainers["B"], lonely.trainers)


def test_lesson_reads_the_pair_metrics():
    lesson = load_lesson("flat_directions_shrink_most")
    assert {c.metric for c in lesson.claim} == {"shrink_keep_stiff", "shrink_keep_flat",
                                                "shrink_flat_over_stiff"}
    assert lesson.runs["B"].replace(weight_decay=0.0) == lesson.runs["A"]
