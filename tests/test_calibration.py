"""Calibration: ECE and MCE against torchmetrics (a test-only dependency) and a numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import regsim
from regsim import HParams, Trainer
from regsim.analyses import calibration

tm = pytest.importorskip("torchmetrics.functional.classification")


def random_probs(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.3), size=n).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    # labels that agree with the top class more often than chance, so bins differ in accuracy
    labels = np.where(rng.random(n) < 0.7, probs.argmax(1), rng.integers(0, c, n))
    return probs, labels


def torchmetrics_ce(probs: np.ndarray, labels: np.ndarray, bins: int, norm: str) -> float:
    return float(tm.multiclass_calibration_error(torch.as_tensor(probs), torch.as_tensor(labels),
                                                 num_classes=probs.shape[1], n_bins=bins, norm=norm))


@pytest.mark.parametrize("bins", [5, 10, 15])
@pytest.mark.parametrize("classes", [2, 10])
def test_ece_and_mce_equal_torchmetrics(bins: int, classes: int) -> None:
    probs, labels = random_probs(600, classes, seed=bins * classes)
    rel = calibration.reliability("x", probs, labels, bins)
    assert rel.uniform.ece == pytest.approx(torchmetrics_ce(probs, labels, bins, "l1"), abs=1e-6)
    assert rel.uniform.mce == pytest.approx(torchmetrics_ce(probs, labels, bins, "max"), abs=1e-6)
    assert rel.uniform.count.sum() == 600 and rel.uniform.ece > 0.01


def brute_force_uniform(conf: np.ndarray, correct: np.ndarray, bins: int) -> tuple[float, float, list]:
    """Bin by bin, point by point: [b/B, (b+1)/B), the last bin [1 − 1/B, 1]."""
    ece, mce, counts = 0.0, 0.0, []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [i for i, c in enumerate(conf) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        counts.append(len(inside))
        if inside:
            gap = abs(np.mean(correct[inside]) - np.mean(conf[inside]))
            ece += len(inside) / len(conf) * gap
            mce = max(mce, gap)
    return ece, mce, counts


def test_confidence_of_exactly_one_lands_in_the_last_bin() -> None:
    probs, labels = random_probs(300, 3, seed=1)
    probs[:40] = np.eye(3, dtype=np.float32)[np.arange(40) % 3]  # confidence exactly 1.0
    labels[:40] = np.where(np.arange(40) < 30, np.arange(40) % 3, (np.arange(40) + 1) % 3)  # 30 right
    rel = calibration.reliability("x", probs, labels, 10)
    conf = probs.max(1).astype(np.float64)
    assert (conf == 1.0).sum() == 40
    ece, mce, counts = brute_force_uniform(conf, rel.correct, 10)
    assert rel.uniform.ece == pytest.approx(ece, abs=1e-12)
    assert rel.uniform.mce == pytest.approx(mce, abs=1e-12)
    assert rel.uniform.count.tolist() == counts and rel.uniform.count[-1] >= 40
    # torchmetrics on the same probabilities with 1.0 moved just inside the last bin (the next float32
    # below 1): the same ECE. (Given 1.0 itself it bins it past the last edge, torchmetrics #3510.)
    nudged = probs.copy()
    nudged[nudged == 1.0] = np.nextafter(np.float32(1), np.float32(0))
    assert rel.uniform.ece == pytest.approx(torchmetrics_ce(nudged, labels, 10, "l1"), abs=1e-6)
    assert rel.uniform.mce == pytest.approx(torchmetrics_ce(nudged, labels, 10, "max"), abs=1e-6)


@pytest.mark.parametrize("n, bins", [(300, 10), (101, 7), (5, 8)])
def test_equal_mass_bins_by_brute_force(n: int, bins: int) -> None:
    probs, labels = random_probs(n, 4, seed=n)
    rel = calibration.reliability("x", probs, labels, bins)
    eq = rel.equal_mass
    conf = probs.max(1).astype(np.float64)
    order = sorted(range(n), key=lambda i: (conf[i], i))  # stable by confidence
    ece, mce = 0.0, 0.0
    for b in range(bins):
        members = order[-(-b * n // bins):-(-(b + 1) * n // bins)]  # ranks [⌈bN/B⌉, ⌈(b+1)N/B⌉)
        assert eq.count[b] == len(members)
        if members:
            gap = abs(np.mean(rel.correct[members]) - np.mean(conf[members]))
            ece += len(members) / n * gap
            mce = max(mce, gap)
            assert eq.edges[b] == conf[members[0]]
    assert eq.count.sum() == n and set(eq.count.tolist()) <= {n // bins, -(-n // bins)}
    assert eq.ece == pytest.approx(ece, abs=1e-12) and eq.mce == pytest.approx(mce, abs=1e-12)
    assert eq.edges[-1] == conf.max()


def test_on_a_run_deterministic_and_mc_side_by_side() -> None:
    t = Trainer(HParams(dataset="digits", hidden=(32,), dropout=0.5, lr=0.01), device="cpu")
    t.step(150)
    rng = torch.get_rng_state()
    res = regsim.analyze(t, "calibration", T=20, bins=10)
    assert torch.equal(rng, torch.get_rng_state())
    with torch.no_grad():
        det = torch.softmax(t.view().model(t.x_val), 1).numpy()
    ref = calibration.reliability("d", det, t.y_val.numpy(), 10)
    assert res.deterministic.uniform.ece == pytest.approx(ref.uniform.ece, abs=1e-9)
    assert res.deterministic.uniform.ece == pytest.approx(
        torchmetrics_ce(det, t.y_val.numpy(), 10, "l1"), abs=1e-6)
    mc = regsim.analyze(t, "mc_dropout", T=20, points="val")  # same seed, same passes
    ref_mc = calibration.reliability("m", mc.probs, t.y_val.numpy(), 10)
    assert res.mc.uniform.ece == pytest.approx(ref_mc.uniform.ece, abs=1e-9)
    assert res.mc.uniform.ece != res.deterministic.uniform.ece
    assert res.mc.name == "mc" and res.deterministic.name == "deterministic" and res.rates[1] == 0.5
    assert 0 < res.deterministic.nll and 0 <= res.mc.brier <= 2


def test_no_dropout_mc_equals_deterministic_and_bad_input_is_named() -> None:
    t = Trainer(HParams(dataset="moons", hidden=(8,), dropout=0.0), device="cpu")
    t.step(20)
    res = regsim.analyze(t, "calibration", T=3)
    assert "no dropout" in res.note
    np.testing.assert_allclose(res.mc.confidence, res.deterministic.confidence, atol=1e-6)
    for params, field in (({"bins": 1}, "bins"), ({"T": 0}, "T"), ({"points": "grid"}, "points")):
        with pytest.raises(ValueError, match=field):
            regsim.analyze(t, "calibration", **params)
    r = Trainer(HParams(dataset="regression", hidden=(8,)), device="cpu")
    with pytest.raises(ValueError, match="classification"):
        regsim.analyze(r, "calibration")
