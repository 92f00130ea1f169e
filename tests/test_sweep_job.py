"""The sweep as an engine job (regsim/analyses/sweep.py): partial grids in order, the final grid equal
to run_sweep's, cancellation, a newer request superseding the older, the per-cell statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from regsim.analyses.jobs import JobRunner
from regsim.analyses.sweep import SweepRequest, result_of, spec_of
from regsim.hparams import HParams
from regsim.sweep import SweepGrid, SweepSpec, run_sweep
from regsim.trainer import Trainer

RUN = HParams(dataset="moons", hidden=(8,), train_size=64, val_size=64, batch_size=16, dropout=0.2,
              optimizer="adam", lr=0.01)
PARAMS = {"lrs": (0.01, 0.1), "decays": (0.3,), "variants": ("sgd-l2", "adamw-paper"), "seeds": 2,
          "steps": 12}


def drive(runner: JobRunner, limit: int = 100_000) -> list:
    events = []
    for _ in range(limit):
        if not runner.busy:
            break
        events += runner.run_slice(0.0)  # one yield per slice: every event the job can send
    return events


def test_partial_grids_arrive_in_order_and_the_last_equals_run_sweep() -> None:
    t = Trainer(RUN, device="cpu")
    runner = JobRunner()
    assert runner.submit("s1", "", "sweep", PARAMS, t.view) == []
    events = drive(runner)
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "result" and kinds.count("result") == 1
    partial = [e for e in events if e.kind == "partial"]
    # batched (dropout off in every cell): one partial per seed × optimizer family, but the last
    assert [e.result.done for e in partial] == [2, 4, 6]
    assert all(not np.isnan(p.result.mean).all() for p in partial)
    assert [int(np.sum(~np.isnan(p.result.error))) for p in partial] == [2, 4, 6]
    progress = [e.done for e in events if e.kind in ("progress", "partial")]
    assert progress == sorted(progress) and len(progress) > 3 * 12  # a step at a time, never back
    final = events[-1].result
    assert final.complete and final.done == final.total == 8
    # the same grid by run_sweep on the same settings, independently
    spec = spec_of(t.view(), SweepRequest(**PARAMS))
    assert spec.base.dropout == 0 and spec.base.lr == RUN.lr  # the run's settings, dropout off
    grid = list(run_sweep(spec))[-1]
    np.testing.assert_array_equal(final.error, grid.error)
    np.testing.assert_array_equal(final.mean, grid.error.mean(axis=3))
    assert t.step_count == 0  # the live run untouched


def test_cancel_stops_the_sweep_and_a_newer_request_supersedes() -> None:
    t = Trainer(RUN, device="cpu")
    runner = JobRunner()
    runner.submit("s1", "", "sweep", PARAMS, t.view)
    events = []
    while not any(e.kind == "partial" for e in events):
        events += runner.run_slice(0.0)
    superseded = runner.submit("s2", "", "sweep", dict(PARAMS, steps=5), t.view)
    assert [(e.id, e.kind) for e in superseded] == [("s1", "cancelled")]
    assert "superseded by s2" in superseded[0].message
    events = []
    for _ in range(3):
        events += runner.run_slice(0.0)
    assert events[0].kind == "started" and events[0].id == "s2"
    cancelled = runner.cancel("s2")
    assert [e.kind for e in cancelled] == ["cancelled"] and not runner.busy
    assert runner.run_slice(0.0) == []  # nothing runs on


@pytest.mark.parametrize("params, field", [({"lrs": (0.1, -1.0)}, "lrs: -1 is out of range"),
                                           ({"decays": ()}, "decays: give at least one"),
                                           ({"variants": ("sgd", )}, "variants: 'sgd'"),
                                           ({"seeds": 0}, "seeds = 0"),
                                           ({"steps": 10**6}, "steps = 1000000"),
                                           ({"lrs": tuple(np.linspace(0.01, 0.1, 20)), "decays":
                                             tuple(np.linspace(0, 1, 20)), "seeds": 4}, "the grid has")])
def test_bad_requests_fail_with_the_field_named(params, field) -> None:
    t = Trainer(RUN, device="cpu")
    events = JobRunner().submit("bad", "", "sweep", params, t.view)
    assert [e.kind for e in events] == ["failed"] and field in events[0].message


def test_result_statistics_against_numpy() -> None:
    """SE, n, near-best and the top 10 of a hand-made grid (one cell missing a seed), by brute force."""
    spec = SweepSpec(HParams(dataset="moons"), lrs=(0.01, 0.1, 1.0), decays=(0.0, 0.1, 0.2, 0.3, 0.4),
                     variants=("sgd-l2", "adamw"), seeds=(0, 1, 2), steps=5)
    rng = np.random.default_rng(3)
    error = rng.uniform(0.1, 0.5, spec.shape)
    error[0, 1, 2] = [0.05, 0.07, 0.06]  # a clear best in variant 0
    error[0, 1, 3] = [0.055, 0.075, 0.065]  # its neighbour: 0.005 worse, the SE of that 0.008
    error[1, 2, 4, 2] = np.nan  # not trained yet
    r = result_of(SweepGrid(spec, error, np.zeros(spec.shape, bool), 29, 1.0), False, True)
    assert r.n[1, 2, 4] == 2 and r.n[0, 0, 0] == 3
    assert r.se[1, 2, 4] == pytest.approx(np.std(error[1, 2, 4, :2], ddof=1) / math.sqrt(2))
    assert r.se[0, 0, 0] == pytest.approx(np.std(error[0, 0, 0], ddof=1) / math.sqrt(3))
    for v in range(2):
        m = np.nanmean(error[v], axis=2)
        order = np.argsort(m.ravel(), kind="stable")[:10]
        assert [tuple(c) for c in r.top[v]] == [divmod(int(k), 5) for k in order]
        b = divmod(int(order[0]), 5)
        near = {(i, j) for i in range(3) for j in range(5)
                if m[i, j] - m[b] <= math.sqrt(r.se[v, i, j] ** 2 + r.se[v][b] ** 2)}
        assert {tuple(c) for c in np.argwhere(r.near_best[v])} == near
        np.testing.assert_array_equal(r.best_decay[v], np.argmin(m, axis=1))
    assert tuple(r.top[0, 0]) == (1, 2) and r.near_best[0, 1, 3] and not r.resolved[0]
    error[0, 1, 3] += 0.02  # now 0.025 worse: more than one SE, the best is resolved
    r = result_of(SweepGrid(spec, error, np.zeros(spec.shape, bool), 29, 1.0), False, True)
    assert not r.near_best[0, 1, 3] and r.resolved[0]
    assert r.names == ("SGD+L2", "AdamW")
