"""The 2-D constraint geometry (regsim/quadratic.py) and the Bayesian view's numbers (regsim/prior.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regsim import prior as pr
from regsim import quadratic as qd

Q = qd.Quadratic2D(w_star=(2.0, 1.5), angle=0.6, condition=10.0, scale=1.0)


@pytest.mark.parametrize("lam", [0.0, 0.05, 0.3, 2.0])
def test_green_point_is_closed_form_and_where_long_l2_descent_ends(lam: float) -> None:
    green = qd.regularized_optimum(Q, lam)
    # Independent: the total loss's gradient vanishes there, and torch's SGD with weight_decay
    # (the L2 gradient λw) ends there too.
    np.testing.assert_allclose(Q.grad(green) + lam * green, 0.0, atol=1e-12)
    gd = qd.gd_l2(Q, lam, lr=0.5, steps=4000)[-1]
    np.testing.assert_allclose(gd, green, atol=1e-6)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5, weight_decay=lam)
    H, ws = torch.from_numpy(Q.H), torch.from_numpy(Q.ws)
    for _ in range(4000):
        opt.zero_grad()
        (0.5 * (w - ws) @ H @ (w - ws)).backward()
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), green, atol=1e-6)


def test_lambda_path_runs_from_w_star_to_origin_through_the_closed_form() -> None:
    lams, pts = qd.lambda_path(Q, n=50)
    np.testing.assert_allclose(pts[0], Q.ws, atol=1e-12)
    np.testing.assert_allclose(pts[-1], 0.0, atol=1e-12)
    for i in (5, 25, 45):
        np.testing.assert_allclose(pts[i], qd.regularized_optimum(Q, lams[i]), atol=1e-12)
    norms = np.linalg.norm(pts, axis=1)
    assert np.all(np.diff(norms) <= 1e-12)  # ‖w_λ‖ shrinks monotonically along the path


def test_shrunk_percent_readout() -> None:
    iso = qd.Quadratic2D(w_star=(3.0, 4.0), condition=1.0, scale=1.0)
    # Isotropic H = I: w_λ = w*/(1 + λ), so the shrink is λ/(1 + λ): 0.6 → 37.5 %.
    assert qd.shrunk_percent(iso, 0.6) == pytest.approx(37.5, abs=1e-10)
    assert qd.shrunk_percent(Q, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_adam_l2_ends_on_the_path_and_adamw_in_the_linf_box() -> None:
    lam = 0.8  # 1/λ = 1.25 < w*'s coordinates: the box binds
    green = qd.regularized_optimum(Q, lam)
    l2 = qd.adam(Q, lam, 0.05, 20000, decoupled=False, lr_decay=True)[-1]
    np.testing.assert_allclose(l2, green, atol=1e-6)
    adamw = qd.adam(Q, lam, 0.05, 20000, decoupled=True, lr_decay=True)[-1]
    box = qd.linf_box_optimum(Q, lam)
    np.testing.assert_allclose(box, [1.25, 1.25], atol=1e-9)  # both constraints active here
    np.testing.assert_allclose(adamw, box, atol=2e-3)  # ε = 1e-8 and the step's tail: ~4e-4
    assert np.linalg.norm(adamw - green) > 0.3  # decoupled decay converges elsewhere
    # torch's AdamW, same schedule, agrees with our loop.
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=0.05, weight_decay=lam)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / 20000)
    H, ws = torch.from_numpy(Q.H), torch.from_numpy(Q.ws)
    for _ in range(20000):
        opt.zero_grad()
        (0.5 * (w - ws) @ H @ (w - ws)).backward()
        opt.step()
        sched.step()
    np.testing.assert_allclose(w.detach().numpy(), adamw, atol=1e-8)


def test_quadratic_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="^condition = "):
        qd.Quadratic2D(condition=0.5)
    with pytest.raises(ValueError, match="λ = "):
        qd.regularized_optimum(Q, -1.0)


def test_sigma_readout_is_one_over_root_n_lambda() -> None:
    assert pr.prior_sigma(0.01, 200) == pytest.approx(1 / math.sqrt(200 * 0.01), rel=1e-15)
    assert pr.prior_sigma(0.01, 200, loss="sum") == pytest.approx(10.0)
    assert pr.prior_sigma(0.0, 200) == math.inf
    r = pr.implied_prior("sgd", "l2", 0.02, 500)
    assert r.sigma == pytest.approx(1 / math.sqrt(500 * 0.02)) and "1/√(Nλ)" in r.formula
    assert pr.prior_lambda(r.sigma, 500) == pytest.approx(0.02)
    m = pr.implied_prior("momentum", "decoupled", 0.02, 500, momentum=0.9)
    assert m.sigma == pytest.approx(1 / math.sqrt(500 * 0.1 * 0.02))
    w = pr.implied_prior("adam", "decoupled", 0.02, 500)
    assert math.isnan(w.sigma) and "not a Gaussian prior" in w.note


def test_map_with_the_implied_prior_is_the_l2_optimum() -> None:
    """Brute force: on a summed Gaussian-likelihood regression the MAP under N(0, σ²) with
    σ² = 1/(Nλ) is the minimum of the averaged loss + λ/2‖w‖² (ridge regression)."""
    rng = np.random.default_rng(0)
    N, lam = 50, 0.1
    X, y = rng.normal(size=(N, 3)), rng.normal(size=N)
    # Averaged loss ½·mean((Xw − y)²) + λ/2‖w‖²  →  (XᵀX/N + λI) w = Xᵀy/N
    w_l2 = np.linalg.solve(X.T @ X / N + lam * np.eye(3), X.T @ y / N)
    s2 = pr.prior_sigma(lam, N) ** 2
    # MAP: ½Σ(Xw − y)² + ‖w‖²/(2σ²)  →  (XᵀX + I/σ²) w = Xᵀy
    w_map = np.linalg.solve(X.T @ X + np.eye(3) / s2, X.T @ y)
    np.testing.assert_allclose(w_map, w_l2, rtol=1e-12)


def test_prior_counts_on_histogram_edges() -> None:
    edges = np.linspace(-3, 3, 61)
    counts = pr.prior_counts(edges, 0.5, 10_000)
    rng = np.random.default_rng(1)
    sample = np.histogram(rng.normal(0, 0.5, 200_000), bins=edges)[0] / 20
    np.testing.assert_allclose(counts, sample, atol=15)  # Monte Carlo noise ~ √(count)
    assert counts.sum() == pytest.approx(10_000 * (math.erf(6 / math.sqrt(2))), rel=1e-9)
    centers = 0.5 * (edges[1:] + edges[:-1])
    mid = 10_000 * 0.1 * pr.prior_density(centers, 0.5)  # the midpoint rule: error ~ h²f''/24
    np.testing.assert_allclose(counts, mid, atol=2e-3 * mid.max())
    assert not pr.prior_counts(edges, math.inf, 100).any()
