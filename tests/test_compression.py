"""regsim.compression: the shrink factor per decay mode against closed forms and torch.optim, the
frame ring's bounds, and frames against the snapshots they were recorded from."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from regsim import compression as cz
from regsim.hparams import HParams
from regsim.optim import build_optimizer, effective_lambda, lr_at
from regsim.snapshot import History
from regsim.trainer import Trainer
from tests.synthetic import make_snapshot

SMALL = dict(dataset="moons", hidden=(16, 16), train_size=64, val_size=64, batch_size=16)


def test_schedule_and_lambda_match_regsim_optim():
    """The torch-free copies agree with the optimizer's own functions."""
    for h in (HParams(schedule="warmup_cosine", warmup_steps=7, total_steps=50, min_lr_ratio=0.2),
              HParams(schedule="constant", lr=0.3)):
        steps = np.arange(0, 80)
        np.testing.assert_allclose(cz.lr_at(h, steps), [lr_at(h, int(s)) for s in steps], rtol=1e-12)
    for h in (HParams(weight_decay=0.3), HParams(weight_decay=0.3, normalized_decay=True,
                                                 total_steps=400, batch_size=16, train_size=200)):
        assert cz.effective_lambda(h) == pytest.approx(effective_lambda(h), rel=1e-12)


def test_factor_and_half_life_closed_forms():
    h = HParams(optimizer="adam", decay_mode="decoupled", lr=0.01, weight_decay=0.5)
    s = cz.shrink_factor(h, 0.004)
    assert s.factor == pytest.approx(1 - 0.004 * 0.5) and s.exact
    assert s.half_life == pytest.approx(math.log(2) / -math.log(1 - 0.002))
    paper = cz.shrink_factor(h.replace(decay_mode="decoupled_paper"), 0.004)  # η_t = 0.4
    assert paper.factor == pytest.approx(1 - 0.4 * 0.5)
    sgd = cz.shrink_factor(h.replace(optimizer="sgd", decay_mode="l2"), 0.004)
    assert sgd.factor == pytest.approx(1 - 0.002)
    adam_l2 = cz.shrink_factor(h.replace(decay_mode="l2"))
    assert adam_l2.factor is None and "√v̂" in adam_l2.note and math.isnan(adam_l2.half_life)
    assert cz.shrink_factor(h.replace(weight_decay=0.0)).half_life == math.inf
    assert math.isnan(cz.half_life(0.0)) and math.isnan(cz.half_life(-0.5))
    assert cz.half_life(0.5) == pytest.approx(1.0)


def _idle_norms(h: HParams, steps: int) -> tuple[float, float]:
    """‖W‖ before and after `steps` torch.optim steps with a zero data gradient, the lr set per
    step by regsim.optim.lr_at as the trainer does. In float64: float32 rounds each ×(1 − lr·λ)
    by ~6e-8, and 150 of them drifted 1.4e-6 from the product (measured)."""
    t = Trainer(h, "cpu")
    t.model.double()
    opt = build_optimizer(t.model, h)
    ws = [lin.weight for lin in t.model.weight_layers()]
    n0 = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(w.detach()) for w in ws])))
    from regsim.optim import apply_decoupled_decay

    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(h, s)
        for p in t.model.parameters():
            p.grad = torch.zeros_like(p)
        apply_decoupled_decay(opt)
        opt.step()
    n1 = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(w.detach()) for w in ws])))
    return n0, n1


@pytest.mark.parametrize("h", [
    HParams(**SMALL, optimizer="adam", decay_mode="decoupled", lr=0.02, weight_decay=0.5),
    HParams(**SMALL, optimizer="adam", decay_mode="decoupled_paper", lr=0.02, weight_decay=0.01,
            schedule="warmup_cosine", warmup_steps=20, total_steps=100),
    HParams(**SMALL, optimizer="sgd", decay_mode="l2", lr=0.05, weight_decay=0.2),
    HParams(**SMALL, optimizer="momentum", decay_mode="decoupled", lr=0.05, weight_decay=0.2,
            schedule="warmup_cosine", warmup_steps=10, total_steps=120),
], ids=["adamw", "adamw_paper_cosine", "sgd_l2", "sgdw_cosine"])
def test_idle_shrink_is_the_product_of_factors(h):
    """With a zero data gradient, torch's own optimizer shrinks ‖W‖ by Π(1 − lr_s·λ) (or η_t·λ):
    what log_decay predicts, to 1e-6."""
    t = 150
    n0, n1 = _idle_norms(h, t)
    assert n1 / n0 == pytest.approx(math.exp(cz.log_decay(h, 0, t)), rel=1e-6)
    assert n1 / n0 < 0.99  # the decay really acted


def test_momentum_l2_factor_is_the_asymptotic_rate():
    """Momentum + L2 without a data gradient: the ratio of successive norms tends to the larger
    root of the recurrence (brute force with torch.optim.SGD), ≈ 1 − lr·λ/(1 − μ)."""
    h = HParams(**SMALL, optimizer="momentum", decay_mode="l2", lr=0.01, weight_decay=0.05,
                momentum=0.9)
    f = cz.shrink_factor(h).factor
    assert f == pytest.approx(1 - 0.01 * 0.05 / 0.1, rel=1e-3)  # the first-order rule
    assert f != pytest.approx(1 - 0.01 * 0.05, rel=1e-3)  # not SGDW's factor
    a = _idle_norms(h, 1500)[1]
    b = _idle_norms(h, 1501)[1]
    assert b / a == pytest.approx(f, rel=1e-6)


def _trainer_frames(h: HParams, chunks: int, every: int) -> tuple[History, list]:
    t = Trainer(h, "cpu")
    hist, snaps = History(), []
    for _ in range(chunks):
        s = t.snapshot(parts={"histograms"})
        hist.add(s)
        snaps.append(s)
        t.step(every)
    return hist, snaps


def test_frames_are_the_snapshots_fixed_histograms():
    h = HParams(**SMALL, optimizer="adam", decay_mode="decoupled", lr=0.01, weight_decay=1.0)
    hist, snaps = _trainer_frames(h, 6, 20)
    ring = hist.frames
    assert len(ring) == 6
    for f, s in zip(ring.frames, snaps, strict=True):
        assert f.step == s.eval_step
        for layer in range(len(s.layer_names)):
            np.testing.assert_array_equal(f.counts[layer], s.weight_hist_fixed[layer])
            np.testing.assert_array_equal(f.edges[layer], s.weight_hist_fixed_edges[layer])
        np.testing.assert_allclose(f.norms, s.weight_norms)
        assert f.total_norm == pytest.approx(float(np.sqrt(np.sum(np.square(s.weight_norms)))))
    # The fixed axis: counts sum to the weight count in every frame, on one set of edges.
    assert all(int(f.counts[0].sum()) == 2 * 16 for f in ring.frames)
    assert ring.frames[-1].log_decay == pytest.approx(100 * math.log(1 - 0.01))
    # History's wind-back (a divergence restored step 40) drops the later frames too.
    hist._wind_back(40)
    assert list(ring.steps()) == [0, 20, 40]
    hist.clear()
    assert len(hist.frames) == 0


def test_ring_bounds_thinning_and_newest_frame():
    ring = cz.FrameRing(max_frames=16)
    snap = make_snapshot(step=0)
    for step in range(0, 1000, 5):
        ring.add(snap, step)
        assert len(ring) <= 16
    steps = ring.steps()
    assert steps[0] == 0 and steps[-1] == 995  # the first and the newest always stay
    assert ring.thinned >= 3
    gaps = np.diff(steps[:-1])
    assert gaps.max() <= 2 * gaps.min()  # evenly spread over the run, not piled at the end
    # The byte budget: frames of 3 × 64 int32 counts = 768 B; 4 KB hold 5 of them.
    small = cz.FrameRing(max_frames=256, max_bytes=4096)
    for step in range(100):
        small.add(snap, step)
    assert len(small) <= 5 and small.nbytes <= 4096 + 5 * 3 * 8
    # Out of order or repeated steps are not frames; a different network starts the ring over.
    assert not ring.add(make_snapshot(step=10), 10)
    s = make_snapshot(step=2000)
    two = dataclasses.replace(s, weight_hist_fixed=s.weight_hist_fixed[:2],
                              weight_hist_fixed_edges=s.weight_hist_fixed_edges[:2])
    assert ring.add(two, 2000) and len(ring) == 1


def test_default_bounds():
    ring, snap = cz.FrameRing(), make_snapshot(step=0)
    for step in range(2000):
        ring.add(snap, step)
    assert len(ring) <= cz.MAX_FRAMES and ring.nbytes <= cz.MAX_BYTES
