"""Co-adaptation by ablation: every damage against a brute force on a hand-edited copy of the model."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import regsim
from regsim import HParams, Trainer
from regsim.analyses import coadaptation
from regsim.analyses.base import NotApplicable


def trained(**kw) -> Trainer:
    h = dict(dataset="moons", hidden=(8, 6, 5), dropout=0.3, train_size=80, val_size=60, lr=0.02,
             optimizer="adam")
    h.update(kw)
    t = Trainer(HParams(**h), device="cpu")
    t.step(60)
    return t


def brute_loss(trainer: Trainer, site: int, removed: tuple[int, ...], points: str = "val") -> float:
    """The loss of a copy of the model whose units `removed` of hidden layer `site` (1 = fc1) are cut
    out by hand: the columns of the next Linear that read them set to 0, a plain eval-mode forward."""
    model = copy.deepcopy(trainer.model).eval()
    nxt = model.weight_layers()[site]  # the Linear after hidden layer `site`
    with torch.no_grad():
        for i in removed:
            nxt.weight[:, i] = 0.0
        x, y = (trainer.x_val, trainer.y_val) if points == "val" else (trainer.x_train, trainer.y_train)
        out = model(x)
        if trainer.data.task == "regression":
            return float(F.mse_loss(out, y))
        return float(F.cross_entropy(out, y, label_smoothing=trainer.hparams.label_smoothing))


@pytest.mark.parametrize("kw", [{}, {"layer_norm": True, "activation": "tanh", "label_smoothing": 0.1},
                                {"dataset": "regression"}], ids=["relu", "layernorm-tanh-smoothing", "mse"])
def test_ablation_damages_equal_a_brute_force(kw: dict) -> None:
    t = trained(**kw)
    for k, site in enumerate(("fc1", "fc2", "fc3"), start=1):
        points = "train" if k == 2 else "val"
        r = regsim.analyze(t, "coadaptation", site=site, points=points)
        base = brute_loss(t, k, (), points)
        assert r.base_loss == pytest.approx(base, abs=1e-6)
        n = t.hparams.hidden[k - 1]
        assert r.n_units == n and r.all_pairs and r.linear == (site == "fc3")
        single = np.array([brute_loss(t, k, (i,), points) - base for i in range(n)])
        np.testing.assert_allclose(r.single, single, atol=1e-6)
        assert list(zip(r.pair_i, r.pair_j)) == list(itertools.combinations(range(n), 2))
        pair = np.array([brute_loss(t, k, (i, j), points) - base for i, j in zip(r.pair_i, r.pair_j)])
        np.testing.assert_allclose(r.pair_damage, pair, atol=1e-6)
        np.testing.assert_allclose(r.interaction, pair - single[r.pair_i] - single[r.pair_j], atol=2e-6)
        assert np.abs(r.single).max() > 1e-4  # the units matter: a test that can fail
    # the default site is the last hidden layer
    assert regsim.analyze(t, "coadaptation").site == "fc3"


def test_dead_units_have_zero_damage_and_leave_the_summaries() -> None:
    t = trained()
    with torch.no_grad():  # kill unit 2 of fc2: its pre-activation is −1 on every point
        t.model.linears[1].weight[2] = 0.0
        t.model.linears[1].bias[2] = -1.0
    r = regsim.analyze(t, "coadaptation", site="fc2")
    assert r.dead[2] and r.single[2] == 0.0
    touching = (r.pair_i == 2) | (r.pair_j == 2)
    assert np.all(r.interaction[touching] == 0.0)
    live = ~r.dead
    assert r.median_single == pytest.approx(float(np.median(r.single[live])))
    keep = live[r.pair_i] & live[r.pair_j]
    assert r.mean_abs_interaction == pytest.approx(float(np.abs(r.interaction[keep]).mean()))
    assert "dead" in r.note


def test_sampled_pairs_are_distinct_and_uniform_over_all_pairs() -> None:
    i, j, every = coadaptation.sample_pairs(6, 15, seed=0)
    assert every and list(zip(i, j)) == list(itertools.combinations(range(6), 2))
    i, j, every = coadaptation.sample_pairs(40, 300, seed=3)
    assert not every and len(set(zip(i, j))) == 300 and np.all((0 <= i) & (i < j) & (j < 40))
    # uniform: over many seeds each unit appears in about 2·count/n of the pairs
    counts = np.zeros(40)
    for s in range(20):
        a, b, _ = coadaptation.sample_pairs(40, 300, seed=s)
        counts += np.bincount(a, minlength=40) + np.bincount(b, minlength=40)
    assert np.abs(counts / 20 - 2 * 300 / 40).max() < 4.5  # binomial sd ≈ 1.7 per seed-average
    t = trained(hidden=(12,))
    r = regsim.analyze(t, "coadaptation", pairs=20, seed=1)
    assert not r.all_pairs and len(r.pair_i) == 20 and "20 of 66 pairs sampled" in r.note
    r0 = regsim.analyze(t, "coadaptation", pairs=0)
    assert len(r0.pair_i) == 0 and np.isnan(r0.mean_abs_interaction)


@pytest.mark.parametrize("params, field, allowed", [
    ({"pairs": -1}, "pairs", "[0, 100000]"),
    ({"pairs": 100_001}, "pairs", "[0, 100000]"),
    ({"pairs": 2.5}, "pairs", "[0, 100000]"),
    ({"points": "grid"}, "points", "val, train"),
    ({"seed": -3}, "seed", "[0, 2⁶³)"),
    ({"site": "input"}, "site", "hidden layer"),
    ({"site": 3}, "site", "hidden layer"),
    ({"units": 4}, "units", "known"),
])
def test_bad_requests_name_the_field_and_range(params: dict, field: str, allowed: str) -> None:
    with pytest.raises(ValueError) as err:
        regsim.analyses.spec("coadaptation").request(params)
    assert field in str(err.value) and allowed in str(err.value)


def test_wrong_site_and_conv_net_are_said() -> None:
    t = trained(hidden=(8, 6))
    with pytest.raises(ValueError, match="site = 'fc3' is not a hidden dropout site.*fc1, fc2"):
        regsim.analyze(t, "coadaptation", site="fc3")
    conv = Trainer(HParams(dataset="digits", architecture="conv", hidden=(4, 4), train_size=60,
                           dropout=0.2), device="cpu")
    with pytest.raises(NotApplicable, match="conv net"):
        regsim.analyze(conv, "coadaptation")


def test_the_run_is_left_untouched() -> None:
    t = trained(hidden=(8, 6))
    before = [p.detach().clone() for p in t.model.parameters()]
    regsim.analyze(t, "coadaptation", site="fc1")
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert t.model.training  # the live model stays in train mode
