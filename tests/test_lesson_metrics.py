"""The analysis metrics of the dropout lessons (regsim/lesson_metrics.py) against independent
computations, and how a claim on them reads where they are not measured (live runs)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from regsim import HParams, Trainer
from regsim import lesson_metrics as lm
from regsim.lessons import evaluate_claim, load_lesson, train_lesson


def test_ensemble_metrics_equal_a_brute_force_loop_over_the_masks() -> None:
    t = Trainer(HParams(dataset="moons", hidden=(6,), dropout=0.5, train_size=100, val_size=100,
                        lr=0.01), device="cpu")
    t.step(150)
    model = t.view().model
    x = torch.cat([t.x_train, t.x_val])
    with torch.no_grad():
        h = torch.relu(model.linears[0](x))
        arith, log_geo = 0.0, 0.0
        for m in range(2**6):  # every mask, weight 0.5⁶ each at p = 0.5
            bits = torch.tensor([(m >> i) & 1 for i in range(6)], dtype=torch.float32)
            z = model.out(h * bits / 0.5)
            arith = arith + torch.softmax(z, 1).double() / 64
            log_geo = log_geo + torch.log_softmax(z, 1).double() / 64
        ws = torch.softmax(model(x), 1).double()
    geo = torch.softmax(log_geo, 1)
    assert abs(lm.ensemble_geo_vs_scaled(t) - float((geo - ws).abs().max())) < 1e-6
    assert abs(lm.ensemble_arith_vs_scaled(t) - float((arith - ws).abs().max())) < 1e-6
    assert lm.ensemble_arith_vs_scaled(t) > 0.01  # not a vacuous comparison


def test_mc_ratios_equal_an_independent_loop_within_a_statistical_bound() -> None:
    t = Trainer(HParams(dataset="regression", hidden=(64, 64), dropout=0.2, lr=0.01, train_size=64),
                device="cpu")
    t.step(300)
    model = t.view().model
    x = torch.linspace(-4, 4, 400)[:, None]
    model.train()
    with torch.no_grad():  # 400 passes through the network's own dropout modules, one at a time
        outs = []
        for i in range(400):
            model.seed_dropout(7, i)
            outs.append(model(x)[:, 0].numpy())
    s, xs = np.stack(outs).std(0), x[:, 0].numpy()
    on = s[(np.abs(xs) > 1.2) & (np.abs(xs) < 2.8)].mean()
    gap, beyond = s[np.abs(xs) < 0.8].mean() / on, s[np.abs(xs) > 3.2].mean() / on
    # a ratio of two means of ~100 sample stds: T = 100 against 400 passes agree to ~10 %
    assert abs(lm.mc_std_gap_ratio(t) / gap - 1) < 0.15, (lm.mc_std_gap_ratio(t), gap)
    assert abs(lm.mc_std_beyond_ratio(t) / beyond - 1) < 0.15, (lm.mc_std_beyond_ratio(t), beyond)


def test_live_runs_do_not_judge_analysis_metrics_and_say_where_they_are() -> None:
    lesson = load_lesson("weight_scaling_is_the_geometric_mean")
    t = Trainer(lesson.runs["A"], device="cpu")
    result = evaluate_claim(lesson, {"A": t, "B": t})
    assert not result.holds and not result.due and "main.py lesson" in result.text
    from ui.lessons import judgeable

    kept, left_out = judgeable(lesson)
    assert kept is None and len(left_out) == 3


def test_train_lesson_records_the_metric_at_its_step_only() -> None:
    lesson = dataclasses.replace(load_lesson("weight_scaling_is_the_geometric_mean"), steps=20)
    lesson = dataclasses.replace(lesson, claim=tuple(dataclasses.replace(c, at_step=20)
                                                     for c in lesson.claim))
    traces, problem = train_lesson(lesson, seed=0)
    assert not problem
    geo = traces["A"].series["ensemble_geo_vs_scaled"]
    assert np.isnan(geo[:-1]).all() and geo[-1] < 1e-6  # measured once, at step 20
    assert traces["B"].series["ensemble_geo_vs_scaled"][-1] > 1e-4
