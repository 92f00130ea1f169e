"""The dropout chapter's analyses as engine jobs: registered, sliced by the job runner, picklable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import regsim
from regsim import HParams, Trainer
from regsim.analyses import ANALYSES
from regsim.analyses.jobs import JobRunner

NAMES = ("ensemble", "mc_dropout", "calibration")


@pytest.fixture(scope="module")
def run() -> Trainer:
    t = Trainer(HParams(dataset="moons", hidden=(16, 16), dropout=0.5, train_size=128, val_size=400),
                device="cpu")
    t.step(50)
    return t


def test_registered() -> None:
    assert set(NAMES) <= set(regsim.list_analyses())
    for name in NAMES:
        s = ANALYSES[name]
        assert s.name == name and s.title and s.description
        with pytest.raises(ValueError, match="unknown"):
            s.request({"nonsense": 1})


@pytest.mark.parametrize("name, params", [("ensemble", {}), ("mc_dropout", {"T": 100}),
                                          ("calibration", {"T": 100})])
def test_runs_as_a_sliced_job_and_pickles(run: Trainer, name: str, params: dict) -> None:
    runner = JobRunner()
    assert runner.submit("j1", "", name, params, run.view) == []
    events = []
    slices = 0
    while runner.busy:
        events += runner.run_slice(0.0)  # one yield per slice: the smallest slice there is
        slices += 1
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "result", [e.message for e in events]
    assert slices >= 3 and "progress" in kinds  # it yielded along the way
    result = events[-1].result
    again = pickle.loads(pickle.dumps(result))
    direct = regsim.analyze(run, name, **params)
    for field in ("arithmetic", "probs", "entropy"):
        if hasattr(result, field):
            np.testing.assert_array_equal(getattr(again, field), getattr(direct, field))
    if name == "calibration":
        assert again.mc.uniform.ece == direct.mc.uniform.ece


def test_a_bad_request_fails_as_an_event(run: Trainer) -> None:
    runner = JobRunner()
    [ev] = runner.submit("j2", "", "mc_dropout", {"T": 500}, run.view)
    assert ev.kind == "failed" and "T = 500" in ev.message
    runner.submit("j3", "", "ensemble", {"site": "fc7"}, run.view)
    events = []
    while runner.busy:
        events += runner.run_slice(0.0)
    assert events[-1].kind == "failed" and "fc7" in events[-1].message
