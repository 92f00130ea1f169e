"""The Constraint geometry panel's real-model plane (regsim/analyses/hessian_plane.py and
ui/panels/constraint.py): its two directions are the top-2 eigenvectors of the full Hessian
(torch.func.hessian + torch.linalg.eigh, up to sign, 1e-4); its grid is the loss evaluated by hand at
θ + a·q₁ + b·q₂; the origin's projection, the decay's pull and the theory's point by hand; the panel
asks for the job and draws what comes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import make_snapshot

from regsim import HParams
from regsim.analyses import analyze
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from regsim.trainer import Trainer

ALPHA = 0.01
H = HParams(dataset="regression", hidden=(4,), activation="tanh", train_size=40, val_size=8,
            batch_size=40, optimizer="sgd", lr=0.05, decay_mode="l2", weight_decay=ALPHA,
            decay_norms_and_biases=True)


@pytest.fixture(scope="module")
def trained():
    t = Trainer(H, "cpu")
    t.step(200)
    return t, analyze(t, "hessian_plane", resolution=7, points=40)


def _loss_fn(t: Trainer):
    model = t.model
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    x, y = t.x_train.double(), t.y_train.double()

    def loss(w: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            params[n] = w[i:i + k].reshape(s)
            i += k
        w1, b1, w2, b2 = (params[n] for n in names)  # 1-4-1: fc1 (weight, bias), out
        return torch.mean((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2)

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    return loss, theta


def test_plane_directions_are_the_top_two_eigenvectors(trained):
    t, r = trained
    loss, theta = _loss_fn(t)
    lam, vec = torch.linalg.eigh(torch.func.hessian(loss)(theta))
    top = vec[:, [-1, -2]].T.numpy()  # λ₁ ≥ λ₂
    np.testing.assert_allclose(r.eigenvalues, lam.numpy()[[-1, -2]], rtol=1e-4)
    for got, want in zip(r.eigenvectors.astype(np.float64), top):
        sign = np.sign(got @ want)
        np.testing.assert_allclose(sign * got, want, atol=1e-4)


def test_plane_grid_origin_and_theory_by_hand(trained):
    t, r = trained
    loss, theta = _loss_fn(t)
    Q = torch.from_numpy(r.eigenvectors.astype(np.float64))
    for i, j in [(0, 0), (3, 3), (1, 5), (6, 2)]:  # (row b, column a)
        w = theta + float(r.alphas[j]) * Q[0] + float(r.betas[i]) * Q[1]
        assert r.loss[i, j] == pytest.approx(float(loss(w)), rel=1e-4)
    assert r.center_loss == pytest.approx(float(loss(theta)), rel=1e-5)
    origin = -(Q @ theta).numpy()
    np.testing.assert_allclose(r.origin, origin, rtol=1e-6)
    np.testing.assert_allclose(r.pull, ALPHA * origin, rtol=1e-6)  # −αθ projected: L2 on every tensor
    assert r.alpha == pytest.approx(ALPHA)
    np.testing.assert_allclose(r.predicted, ALPHA / (r.eigenvalues + ALPHA) * origin, rtol=1e-9)
    assert abs(r.predicted[0]) / abs(origin[0]) < abs(r.predicted[1]) / abs(origin[1])  # stiff moves less
    # The auto span holds the origin's projection.
    assert r.alphas[-1] >= abs(origin[0]) and r.betas[-1] >= abs(origin[1])


def test_plane_request_names_bad_fields():
    from regsim.analyses.hessian_plane import HessianPlaneRequest

    with pytest.raises(ValueError, match=r"resolution = 2 is out of range; allowed: \[3, 201\]"):
        HessianPlaneRequest(resolution=2)
    with pytest.raises(ValueError, match="span = -1"):
        HessianPlaneRequest(span=-1)


def test_panel_asks_for_the_plane_and_draws_it(qtbot, trained):
    from ui.panels.constraint import ConstraintPanel

    _, r = trained
    panel = ConstraintPanel(History())
    qtbot.addWidget(panel)
    panel.ingest(make_snapshot())
    asked = []
    panel.request.connect(lambda kind, payload: asked.append((kind, payload)))
    assert panel.real.hint.isVisible() or not panel.real.image.isVisible()
    panel.real.button.click()
    assert asked[-1][0] == "analyze" and asked[-1][1]["analysis"] == "hessian_plane"
    job = asked[-1][1]["id"]
    assert not panel.real.button.isEnabled()
    panel.on_job(JobEvent(job, "", "hessian_plane", "progress", 5, 10))
    assert "50 %" in panel.real.status.text()
    panel.on_job(JobEvent("someone-else", "", "hessian_plane", "result", result=r))
    assert panel.real.result is None  # not our job
    panel.on_job(JobEvent(job, "", "hessian_plane", "result", result=r))
    assert panel.real.result is r and panel.real.button.isEnabled()
    xs, ys = panel.real.green.getData()
    assert (xs[0], ys[0]) == pytest.approx(tuple(r.predicted))
    xs, ys = panel.real.origin.getData()
    assert (xs[0], ys[0]) == pytest.approx(tuple(r.origin))
    levels = [iso.level for iso in panel.real.isos]
    assert all(r.center_loss < lv <= float(r.loss.max()) for lv in levels) and levels == sorted(levels)
    assert f"λ₁ = {r.eigenvalues[0]:.3g}" in panel.real.status.text()
    # A failure says why; a new run forgets the plane.
    panel.real.button.click()
    job = asked[-1][1]["id"]
    panel.on_job(JobEvent(job, "", "hessian_plane", "failed", message="The Hessian plane is computed "
                          "on an MLP's Linear layers"))
    assert "failed: The Hessian plane" in panel.real.status.text()
    panel.reset()
    assert panel.real.result is None and not panel.real.image.isVisible()
    panel.cleanup()
