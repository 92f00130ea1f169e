"""The Hessian analysis: Lanczos against a dense Hessian, known quadratics, train vs eval mode, the
trace and density estimates, and the selective shrinkage of weight decay."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, hessian

import regsim
from regsim import HParams, Trainer
from regsim.analyses import ANALYSES
from regsim.analyses import hessian as hs
from regsim.analyses.base import drain
from regsim.models import MLP

SMALL = HParams(dataset="moons", hidden=(8, 8), train_size=64, dropout=0.3, seed=3)


@pytest.fixture(scope="module")
def trained() -> Trainer:
    t = Trainer(SMALL, device="cpu")
    t.step(60)
    return t


def dense_hessian(view, mode: str = "eval", seed: int = 0) -> torch.Tensor:
    """The full (P, P) Hessian by torch.func.hessian of the loss as a function of the flat weights,
    independent of the analysis's double-backward products."""
    m = view.model
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for _, p in m.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()]).double()
    masks = None
    if mode == "train":  # the float32 masks the network draws from (seed, 0), applied by hand below
        m.train()
        m.seed_dropout(seed, 0)
        m(view.x_train)
        masks = [None if d.last_scaled_mask is None else d.last_scaled_mask.double()
                 for d in m.dropout_modules()]
        assert masks[0] is None and all(k is not None for k in masks[1:])  # hidden dropout only
    m = m.double().eval()
    x = view.x_train.double()

    def f(w):
        ps, i = {}, 0
        for n, s in zip(names, shapes):
            c = math.prod(s)
            ps[n] = w[i:i + c].reshape(s)
            i += c
        if masks is None:
            return view.loss(functional_call(m, ps, (x,)), view.y_train)
        h = x
        for j in range(len(m.linears)):
            h = torch.relu(h @ ps[f"linears.{j}.weight"].T + ps[f"linears.{j}.bias"]) * masks[j + 1]
        return view.loss(h @ ps["out.weight"].T + ps["out.bias"], view.y_train)

    H = hessian(f)(flat)
    m.float().eval()
    return H


def test_lanczos_top_k_matches_dense_eigh(trained: Trainer) -> None:
    res = regsim.analyze(trained, "hessian", k=6, trace_samples=0)
    ref_vals, ref_vecs = torch.linalg.eigh(dense_hessian(trained.view()))
    ref_vals, ref_vecs = ref_vals.flip(0)[:6].numpy(), ref_vecs.flip(1)[:, :6].T.numpy()
    assert res.eigenvalues.shape == (6,) and res.eigenvectors.shape == (6, res.n_params)
    assert np.all(np.diff(res.eigenvalues) <= 0)
    np.testing.assert_allclose(res.eigenvalues, ref_vals, rtol=1e-4)
    overlap = np.abs(np.sum(res.eigenvectors * ref_vecs, axis=1))  # |cos| between the two
    assert np.all(overlap > 0.999), overlap
    assert res.converged and res.iterations < 60 and res.mode == "eval"
    assert res.n_params == sum(res.param_sizes) == sum(p.numel() for p in trained.model.parameters())


def linear_view(trained: Trainer, n: int = 40, d: int = 3):
    """A view whose loss is an exact quadratic: linear regression, MSE = (1/N)‖Xw + b − y‖², so
    H = (2/N)·X̃ᵀX̃ with X̃ = [X, 1] (bias last, as nn.Linear lists weight then bias)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, d, generator=g) * torch.tensor([3.0, 1.0, 0.3])
    y = torch.randn(n, 1, generator=g)
    model = MLP(d, (), 1, dropout=())
    view = dataclasses.replace(trained.view(), model=model, x_train=x, y_train=y, task="regression",
                               loss=lambda out, yy, reduction="mean": torch.nn.functional.mse_loss(
                                   out, yy, reduction=reduction))
    xt = torch.cat([x, torch.ones(n, 1)], 1).double()
    return view, (2.0 / n) * xt.T @ xt


def test_known_quadratic_recovered_exactly(trained: Trainer) -> None:
    view, H = linear_view(trained)
    res = drain(hs.compute(view, hs.HessianRequest(k=4, trace_samples=200)))
    ref = torch.linalg.eigvalsh(H).flip(0).numpy()
    np.testing.assert_allclose(res.eigenvalues, ref, rtol=1e-5)  # float32 products
    # Hutchinson is unbiased: within 4 standard errors of tr H.
    assert abs(res.trace - float(torch.trace(H))) < 4 * res.trace_std


def test_lanczos_exact_on_a_matrix_with_repeated_eigenvalues() -> None:
    """In float64, on a rotated diagonal with a repeated eigenvalue (a breakdown the restart
    handles): the top 5 to 1e-10, eigenvectors spanning the right eigenspaces."""
    g = torch.Generator().manual_seed(0)
    lam = torch.tensor([9.0, 9.0, 4.0, 2.5, 1.0, 1.0, 0.5, 0.1, -0.3, -2.0], dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(lam) @ Q.T
    gen = hs.lanczos(lambda v: A @ v, 10, 5, 10, 1e-12, g)
    vals, vecs, resid, m, converged = drain(gen)
    np.testing.assert_allclose(vals, [9.0, 9.0, 4.0, 2.5, 1.0], atol=1e-10)
    np.testing.assert_allclose((vecs @ A @ vecs.T).numpy(), np.diag(vals), atol=1e-9)


def test_train_mode_differs_from_eval_and_is_one_function(trained: Trainer) -> None:
    ev = regsim.analyze(trained, "hessian", k=3, trace_samples=0, mode="eval")
    tr = regsim.analyze(trained, "hessian", k=3, trace_samples=0, mode="train", seed=5)
    tr2 = regsim.analyze(trained, "hessian", k=3, trace_samples=0, mode="train", seed=5)
    assert tr.mode == "train" and not tr.note
    assert np.max(np.abs(tr.eigenvalues - ev.eigenvalues) / np.abs(ev.eigenvalues)) > 1e-2
    np.testing.assert_array_equal(tr.eigenvalues, tr2.eigenvalues)  # same masks: same function
    # …and it is the Hessian of the masked network: the dense one with the same masks agrees.
    ref = torch.linalg.eigvalsh(dense_hessian(trained.view(), "train", 5)).flip(0)[:3].numpy()
    np.testing.assert_allclose(tr.eigenvalues, ref, rtol=1e-4)


def test_train_mode_without_dropout_equals_eval() -> None:
    t = Trainer(dataclasses.replace(SMALL, dropout=0.0), device="cpu")
    t.step(20)
    ev = regsim.analyze(t, "hessian", k=3, trace_samples=0)
    tr = regsim.analyze(t, "hessian", k=3, trace_samples=0, mode="train")
    np.testing.assert_allclose(tr.eigenvalues, ev.eigenvalues, rtol=1e-6)
    assert "no dropout" in tr.note


def test_density_integrates_to_one_and_its_mean_is_the_trace(trained: Trainer) -> None:
    res = regsim.analyze(trained, "hessian", k=2, trace_samples=0, density=20, density_steps=30)
    H = dense_hessian(trained.view())
    assert res.density.shape == res.density_grid.shape == (200,)
    assert np.trapezoid(res.density, res.density_grid) == pytest.approx(1.0, abs=1e-9)
    # SLQ: Σ τ θ per probe is vᵀHv/‖v‖² for a Rademacher v, an unbiased estimate of tr H / P.
    mean = float((res.density_nodes * res.density_weights).sum(1).mean())
    per_probe = (res.density_nodes * res.density_weights).sum(1)
    se = per_probe.std(ddof=1) / math.sqrt(len(per_probe))
    assert abs(mean - float(torch.trace(H)) / H.shape[0]) < 4 * se + 1e-9
    # The top node of a 30-step probe approaches λ_max from below.
    lam_max = float(torch.linalg.eigvalsh(H)[-1])
    assert res.density_nodes.max() <= lam_max * (1 + 1e-5)
    assert res.density_nodes.max() > 0.9 * lam_max


def test_job_progress_every_iteration(trained: Trainer) -> None:
    gen = ANALYSES["hessian"].compute(trained.view(), hs.HessianRequest(k=3, trace_samples=4))
    steps, partials = [], []
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            res = stop.value
            break
        (partials if p.partial is not None else steps).append(p)
    assert [p.done for p in steps] == list(range(1, res.iterations + 5))
    # Once Lanczos is done, its eigen-pairs come as a partial result (the trace still to come).
    assert len(partials) == 1 and partials[0].done == res.iterations
    np.testing.assert_array_equal(partials[0].partial.eigenvalues, res.eigenvalues)
    assert math.isnan(partials[0].partial.trace) and math.isfinite(res.trace)


def test_too_big_a_basis_is_a_clear_error(trained: Trainer, monkeypatch) -> None:
    """A network whose Lanczos basis would not fit (here: a cap lowered to 1 kB) fails with a
    message naming k, P and what is allowed, not a torch out-of-memory error."""
    monkeypatch.setattr(hs, "LANCZOS_BYTES", 1024)
    with pytest.raises(ValueError, match=r"^k = 3: this network has P = \d+ parameters.*allowed here"):
        regsim.analyze(trained, "hessian", k=3)


def test_flat_weights_alpha_per_optimizer() -> None:
    """α of the decay term: λ for L2 and plain-SGD decoupled, (1 − μ)λ for SGDW, nan for AdamW; the
    weights are the parameters in order."""
    cases = ((dict(optimizer="adam", decay_mode="l2"), 0.1),
             (dict(optimizer="sgd", decay_mode="decoupled"), 0.1),
             (dict(optimizer="momentum", momentum=0.9, decay_mode="decoupled"), 0.01),
             (dict(optimizer="adam", decay_mode="decoupled"), math.nan))
    for changes, alpha in cases:
        t = Trainer(dataclasses.replace(SMALL, weight_decay=0.1, decay_norms_and_biases=True, **changes),
                    device="cpu")
        t.step(2)
        r = regsim.analyze(t, "flat_weights")
        np.testing.assert_array_equal(r.weights, hs.flat_weights(t.view()))
        if math.isnan(alpha):
            assert math.isnan(r.alpha) and "no single α" in r.note and not r.uniform
        else:
            assert r.alpha == pytest.approx(alpha, rel=1e-12) and r.uniform, changes
    t = Trainer(dataclasses.replace(SMALL, weight_decay=0.1, decay_mode="l2"), device="cpu")
    r = regsim.analyze(t, "flat_weights")  # biases in the no_decay group: not α/2‖θ‖²
    assert r.alpha == pytest.approx(0.1) and not r.uniform and "not decayed" in r.note
    assert np.count_nonzero(r.coef == 0) == sum(p.numel() for n, p in t.model.named_parameters()
                                                 if n.endswith("bias"))


def test_request_errors_name_the_field() -> None:
    for bad, field in (({"k": 0}, "k"), ({"mode": "test"}, "mode"), ({"tol": 0.0}, "tol"),
                       ({"points": -1}, "points"), ({"max_iter": 2, "k": 5}, "max_iter"),
                       ({"density": 101}, "density")):
        with pytest.raises(ValueError, match=f"^{field} = "):
            ANALYSES["hessian"].request(bad)


def test_shrink_factors_on_a_quadratic() -> None:
    """Goodfellow et al. §7.1.1: with data loss ½(w − w*)ᵀH(w − w*) and penalty α/2‖w‖², the
    optimum (H + αI)⁻¹Hw* has w*'s component along qᵢ scaled by λᵢ/(λᵢ + α). The optimum is solved
    independently (numpy), and the eigenvectors come from our Lanczos."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    lam = np.array([50.0, 8.0, 2.0, 0.5, 0.1, 0.01])
    H = Q @ np.diag(lam) @ Q.T
    w_star = rng.normal(size=6)
    alpha = 0.7
    w_reg = np.linalg.solve(H + alpha * np.eye(6), H @ w_star)
    Ht = torch.from_numpy(H)
    vals, vecs, *_ = drain(hs.lanczos(lambda v: Ht @ v, 6, 6, 6, 1e-12, torch.Generator()))
    out = hs.project_weights(vecs.numpy(), w_reg, w_star, vals, alpha)
    np.testing.assert_allclose(out.predicted, lam / (lam + alpha), rtol=1e-12)
    np.testing.assert_allclose(out.measured, lam / (lam + alpha), rtol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        hs.shrink_factors(lam, -1.0)


def test_selective_shrinkage_on_a_comparison() -> None:
    """Two lockstep runs: the report's shapes and its α come from the decay run."""
    cmp = regsim.Comparison({"A": dataclasses.replace(SMALL, weight_decay=0.0),
                             "B": dataclasses.replace(SMALL, weight_decay=0.05, decay_mode="l2")},
                            device="cpu")
    cmp.step(30)
    shrink, hess = hs.selective_shrinkage(cmp, decay="B", nodecay="A", k=3, trace_samples=0)
    assert shrink.alpha == 0.05 and shrink.measured.shape == (3,)
    wa = hs.flat_weights(cmp.trainers["A"].view())
    np.testing.assert_allclose(shrink.coords_nodecay, hess.eigenvectors.astype(np.float64) @ wa,
                               rtol=1e-6, atol=1e-9)
