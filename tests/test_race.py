"""The 2-D race (regsim/race.py): SGD+L2 ≡ SGDW, the paper's SGDW joining them, Adam+L2's uneven decay."""

from __future__ import annotations

import numpy as np
import pytest

from regsim import race

SETUPS = {"quadratic": dict(lr=0.03, lam=0.2, start=(-1.5, 2.0)),
          "rosenbrock": dict(lr=1e-3, lam=0.5, start=(-1.2, 1.0))}


@pytest.mark.parametrize("loss", race.LOSSES)
def test_sgd_l2_and_sgdw_trace_the_same_path(loss: str) -> None:
    kw = SETUPS[loss]
    runs = race.race(loss, steps=400, **kw)
    l2, sgdw, paper = runs["SGD+L2"].path, runs["SGDW"].path, runs["SGDW (paper)"].path
    assert np.isfinite(l2).all()
    np.testing.assert_allclose(sgdw, l2, atol=1e-9, rtol=0)
    np.testing.assert_allclose(paper, l2, atol=1e-9, rtol=0)  # paper λ defaults to lr·λ
    # with another paper λ it leaves them, and so does Adam: the test can see a difference
    other = race.run_one("SGDW (paper)", loss, steps=400, paper_lam=kw["lr"] * kw["lam"] * 3,
                         start=kw["start"], lr=kw["lr"], lam=kw["lam"])
    assert np.abs(other.path - l2).max() > 1e-3
    assert np.abs(runs["Adam+L2"].path - l2).max() > 1e-3


def test_sgd_l2_on_the_quadratic_is_the_linear_recursion() -> None:
    """θ ← θ − lr·(H(θ − c) + λθ), H = diag(a, b): an independent numpy iteration."""
    lr, lam, start = 0.03, 0.2, np.array([-1.5, 2.0])
    h, c = np.diag(race.QUAD_CURV), np.array(race.QUAD_MIN)
    theta, path = start.copy(), [start.copy()]
    for _ in range(100):
        theta = theta - lr * (h @ (theta - c) + lam * theta)
        path.append(theta.copy())
    got = race.run_one("SGD+L2", "quadratic", tuple(start), lr=lr, lam=lam, steps=100)
    np.testing.assert_allclose(got.path, np.array(path), atol=1e-12, rtol=0)
    # the fixed point is the L2-regularized minimum (H + λI)⁻¹Hc
    long = race.run_one("SGD+L2", "quadratic", tuple(start), lr=lr, lam=lam, steps=3000)
    np.testing.assert_allclose(long.path[-1], np.linalg.solve(h + lam * np.eye(2), h @ c), atol=1e-9)


def test_adam_l2_decays_the_steep_axis_less() -> None:
    """Adam+L2's per-axis decay rate lr·λ/(√v̂ + ε) is uneven (the steep y axis, b = 25, has the larger
    v̂ and gets less); AdamW's is lr·λ on both axes."""
    runs = race.race("quadratic", lr=0.03, lam=0.2, steps=200, variants=("Adam+L2", "AdamW"))
    r = runs["Adam+L2"].rate
    assert (r[20:, 1] < r[20:, 0]).all()
    np.testing.assert_array_equal(runs["AdamW"].rate, np.full_like(r, 0.03 * 0.2))
    np.testing.assert_allclose(runs["AdamW"].decay, 0.03 * 0.2 * runs["AdamW"].path[:-1])


def test_bad_race_input_names_the_field() -> None:
    with pytest.raises(ValueError, match="lr = -1 is out of range"):
        race.race(lr=-1)
    with pytest.raises(ValueError, match="loss = 'bowl'"):
        race.race(loss="bowl")
    xs, ys, z = race.contours("rosenbrock", (-2, -1), (2, 3), n=5)
    assert z.shape == (5, 5) and z[0, 0] == pytest.approx((1 + 2) ** 2 + 100 * (-1 - 4) ** 2)
