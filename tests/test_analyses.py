"""Analyses: the registry and contract, `regsim.analyze`, the job runner, and jobs in the engine."""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import regsim
from regsim import HParams, Trainer
from regsim.analyses import ANALYSES, AnalysisSpec, Progress, RunView, spec
from regsim.analyses.jobs import JobRunner
from regsim.analyses.landscape import LandscapeRequest, LandscapeResult
from regsim.analyses.landscape_math import make_directions
from regsim.engine import engine_main

SMALL = HParams(dataset="moons", hidden=(16, 16), train_size=128, dropout=0.3, optimizer="adam",
                weight_decay=0.01, decay_mode="decoupled")


@pytest.fixture(scope="module")
def trained() -> Trainer:
    t = Trainer(SMALL, device="cpu")
    for _ in range(8):
        t.step(10)
    return t


def state_of(t: Trainer) -> dict:
    """Everything a job must leave alone, copied: weights, optimizer state, random streams, step."""
    return {"model": {k: v.clone() for k, v in t.model.state_dict().items()},
            "optimizer": copy.deepcopy(t.optimizer.state_dict()),
            "torch_rng": torch.get_rng_state(), "generator": t.generator.get_state(),
            "step": t.step_count, "training": t.model.training, "grad": torch.is_grad_enabled(),
            "path": len(t.history_path())}


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["training"] == b["training"] and a["grad"] == b["grad"]
    assert a["path"] == b["path"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert torch.equal(a["generator"], b["generator"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


# ------------------------------------------------------------------------------ registry, contract


def test_registry_lists_the_landscape() -> None:
    assert regsim.list_analyses() == list(ANALYSES) and "landscape" in regsim.list_analyses()
    land = ANALYSES["landscape"]
    assert land.Request is LandscapeRequest and land.Result is LandscapeResult
    assert land.title and land.description
    with pytest.raises(ValueError, match="analysis = 'nope' is not known; choose one of: landscape"):
        spec("nope")


@pytest.mark.parametrize("field,value,message", [
    ("resolution", 2, r"resolution = 2 is out of range; allowed: \[3, 201\]"),
    ("resolution", 5.5, r"resolution = 5.5 is out of range"),
    ("span", 0, r"span = 0 is out of range; allowed: \(0, 10\]"),
    ("span", "wide", r"span = 'wide' is out of range"),
    ("points", 0, r"points = 0 is out of range; allowed: \[1, ∞\)"),
    ("directions", "up", r"directions = 'up' is not allowed; choose one of: pca, random"),
    ("preview", 2, r"preview = 2 is out of range; allowed: 0 or \[3, 51\]"),
    ("seed", -1, r"seed = -1 is out of range"),
    ("size", 3, r"unknown landscape setting 'size'; known: directions, points, preview"),
])
def test_request_validation_names_the_field(field, value, message) -> None:
    with pytest.raises(ValueError, match=message):
        spec("landscape").request({field: value})
    with pytest.raises(ValueError, match=message):
        regsim.analyze(object(), "landscape", **{field: value})  # before the run is looked at


def test_requests_and_results_are_frozen() -> None:
    req = LandscapeRequest()
    with pytest.raises(AttributeError):
        req.resolution = 3  # type: ignore[misc]


# ------------------------------------------------------------------------------ analyze()


def test_analyze_equals_brute_force_and_leaves_no_trace(trained) -> None:
    """Grid points of `regsim.analyze` against a deep copy of the network moved by α·d₁ + β·d₂ and
    evaluated the plain way (eval mode, whole 128-example split), and the trainer untouched."""
    before = state_of(trained)
    res = regsim.analyze(trained, "landscape", resolution=7, span=0.6, directions="random",
                         seed=3, preview=0)
    assert_same_state(before, state_of(trained))
    assert isinstance(res, LandscapeResult) and res.loss.shape == (7, 7) and not res.coarse
    assert res.step == trained.step_count
    params = list(trained.model.parameters())
    d1, d2, used = make_directions(params, [], "random", 3)
    assert used == res.directions == "random"
    for i, j in ((3, 3), (0, 0), (6, 1), (2, 5), (5, 6)):
        twin = copy.deepcopy(trained.model).eval()
        with torch.no_grad():
            for p, u, v in zip(twin.parameters(), d1, d2):
                p.add_(float(res.alphas[j]) * u + float(res.betas[i]) * v)
            want = torch.nn.functional.cross_entropy(twin(trained.x_train), trained.y_train).item()
        assert res.loss[i, j] == pytest.approx(want, rel=1e-4, abs=1e-6), (i, j)
    assert res.loss[3, 3] == pytest.approx(res.center_loss, rel=1e-5)


def test_view_is_a_copy(trained) -> None:
    view = trained.view()
    assert isinstance(view, RunView) and view.step == trained.step_count
    assert not view.model.training and trained.model.training
    live = list(trained.model.parameters())
    for p, q in zip(view.model.parameters(), live):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
    assert view.optimizer == "adam" and [g["name"] for g in view.param_groups] == ["decay",
                                                                                    "no_decay"]
    state = view.param_groups[0]["state"][0]["exp_avg_sq"]
    assert state.data_ptr() != trained.optimizer.state[live[0]]["exp_avg_sq"].data_ptr()
    assert [s for s, _ in view.trajectory] == [s for s, _ in trained.history_path()]


# ------------------------------------------------------------------------------ the job runner


@dataclass(frozen=True)
class BoomRequest:
    after: int = 2  # yields before the failure

    def __post_init__(self) -> None:
        if not (isinstance(self.after, int) and self.after >= 0):
            raise ValueError(f"after = {self.after!r} is out of range; allowed: [0, ∞)")


def boom(run: RunView, request: BoomRequest) -> Generator[Progress, None, None]:
    for k in range(request.after):
        yield Progress(k, request.after + 1)
    raise RuntimeError("the analysis broke on purpose")


BOOM = AnalysisSpec("boom", "Boom", "fails after a few yields (tests)", BoomRequest, dict, boom)


def run_to_end(runner: JobRunner, between=None, budget: float = 0.0, limit: int = 100_000) -> list:
    events = []
    for _ in range(limit):
        if not runner.busy:
            return events
        events += runner.run_slice(budget)
        if between is not None:
            between()
    raise AssertionError("the runner never finished")


def kinds(events, job_id=None) -> list[str]:
    return [e.kind for e in events if job_id is None or e.id == job_id]


def test_job_result_equals_analyze_while_training_continues_between_slices() -> None:
    """The job reads one RunView, taken when it starts: training between its slices changes
    neither its result nor the step it reports."""
    t = Trainer(SMALL, device="cpu")
    t.step(60)
    want = regsim.analyze(t, "landscape", resolution=9, preview=5)
    runner = JobRunner()
    assert runner.submit("j1", "", "landscape", {"resolution": 9, "preview": 5}, t.view) == []
    events = run_to_end(runner, between=lambda: t.step(2))
    assert t.step_count >= 60 + 2 * 5  # training really ran between the slices (≥ 5 of them)
    assert kinds(events)[0] == "started" and kinds(events)[-1] == "result"
    assert set(kinds(events)) <= {"started", "progress", "partial", "result"}
    previews = [e.result for e in events if e.kind == "partial" and e.result.coarse
                and e.result.done == e.result.total]
    assert len(previews) == 1 and previews[0].loss.shape == (5, 5)  # the preview is a partial
    done = [e.done for e in events if e.kind in ("progress", "partial")]
    assert done == sorted(done) and all(e.total == 25 + 81 for e in events if e.total)
    got = events[-1].result
    assert got.step == want.step == 60
    # Equal up to BLAS rounding (a buffer's alignment can change the last bit of a float64 dot
    # product); two training steps move these by ~1e-3. The path's coordinates are O(0.1–1) in α
    # units, and the oldest point's sits near 0, where a relative bound means nothing: an absolute
    # 1e-12 (after test_engine_cli changed torch's thread count, ~1e-15 differences appeared).
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.penalty, want.penalty, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.path, want.path, rtol=1e-12, atol=1e-12)


def test_cancelled_job_leaves_no_trace() -> None:
    t = Trainer(SMALL, device="cpu")
    t.step(40)
    before = state_of(t)
    runner = JobRunner()
    runner.submit("j1", "", "landscape", {"resolution": 31, "preview": 0}, t.view)
    events = []
    while not any(e.kind == "progress" and e.done > 0 for e in events):  # mid-way: a few chunks in
        events += runner.run_slice(0.0)
    assert 0 < events[-1].done < events[-1].total
    events += runner.cancel("j1")
    assert kinds(events)[-1] == "cancelled" and not runner.busy
    assert runner.run_slice(0.01) == [] and runner.cancel("j1") == []
    assert "result" not in kinds(events)
    assert_same_state(before, state_of(t))
    t.step(5)  # and the run trains on as if nothing happened: same as an untouched twin
    twin = Trainer(SMALL, device="cpu")
    twin.step(45)
    for p, q in zip(t.model.parameters(), twin.model.parameters()):
        assert torch.equal(p, q)


def test_a_newer_request_supersedes_the_older(trained) -> None:
    runner = JobRunner()
    runner.submit("a", "", "landscape", {"resolution": 21, "preview": 0}, trained.view)
    first = runner.run_slice(0.001)
    assert kinds(first)[0] == "started"
    runner.submit("other-run", "B", "landscape", {"resolution": 5, "preview": 0}, trained.view)
    events = runner.submit("b", "", "landscape", {"resolution": 5, "preview": 0}, trained.view)
    assert [(e.id, e.kind, e.message) for e in events] == [("a", "cancelled", "superseded by b")]
    assert runner.job_ids() == ["other-run", "b"]  # another run's job is not superseded
    events = run_to_end(runner)
    assert "a" not in {e.id for e in events}
    results = {e.id: e.result for e in events if e.kind == "result"}
    assert set(results) == {"other-run", "b"} and results["b"].loss.shape == (5, 5)


def test_a_failing_analysis_reports_failed_and_the_runner_goes_on(trained, monkeypatch) -> None:
    monkeypatch.setitem(ANALYSES, "boom", BOOM)
    runner = JobRunner()
    runner.submit("x", "", "boom", {"after": 3}, trained.view)
    runner.submit("y", "", "landscape", {"resolution": 5, "preview": 0}, trained.view)
    events = run_to_end(runner)
    failed = [e for e in events if e.kind == "failed"]
    assert [e.id for e in failed] == ["x"]
    assert failed[0].message == "Boom failed: RuntimeError: the analysis broke on purpose"
    assert kinds(events, "y")[-1] == "result"
    # Bad requests fail at once, with the field named; nothing is queued.
    bad = runner.submit("z", "", "boom", {"after": -1}, trained.view)
    assert [(e.kind, e.message) for e in bad] == [("failed", "after = -1 is out of range; "
                                                              "allowed: [0, ∞)")]
    bad = runner.submit("w", "", "nope", {}, trained.view)
    assert bad[0].kind == "failed" and "choose one of: landscape" in bad[0].message
    assert not runner.busy


# ------------------------------------------------------------------------------ jobs in the engine


class Engine:
    """The real engine in a thread, as the window's thread mode runs it; messages kept in order."""

    def __init__(self, hparams: HParams = SMALL) -> None:
        self.cmds: queue.Queue = queue.Queue()
        self.out: queue.Queue = queue.Queue()
        self.seen: list[tuple[str, object]] = []
        self.thread = threading.Thread(target=engine_main, daemon=True,
                                       args=(self.cmds, self.out, hparams.to_dict(), "cpu"))
        self.thread.start()
        self.wait(lambda k, p: k == "ready")

    def send(self, name: str, payload=None) -> None:
        self.cmds.put((name, payload))

    def wait(self, pred, timeout: float = 60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                kind, payload = self.out.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append((kind, payload))
            if pred(kind, payload):
                return payload
        raise AssertionError("message not seen in time")

    def stop(self) -> None:
        self.send("stop")
        self.wait(lambda k, p: k == "stopped")
        self.thread.join(5)
        assert not self.thread.is_alive()


ENDS = ("result", "failed", "cancelled")  # the kinds that end a job


def analyze_cmd(job_id: str, analysis: str, **params) -> dict:
    return {"id": job_id, "run": "", "analysis": analysis, "params": params}


def test_a_failing_analysis_reports_failed_and_the_engine_keeps_training(monkeypatch) -> None:
    monkeypatch.setitem(ANALYSES, "boom", BOOM)
    eng = Engine()
    try:
        eng.send("run")
        first = eng.wait(lambda k, p: k == "snapshot" and p.step > 5)
        eng.send("analyze", analyze_cmd("b1", "boom", after=4))
        failed = eng.wait(lambda k, p: k == "job" and p.kind in ("failed", "result"))
        assert (failed.id, failed.kind, failed.analysis) == ("b1", "failed", "boom")
        assert "RuntimeError: the analysis broke on purpose" in failed.message
        later = eng.wait(lambda k, p: k == "snapshot" and p.step > first.step + 50)
        assert later.status == "running"
        # A bad request fails the same way, naming the field; the engine goes on.
        eng.send("analyze", analyze_cmd("b2", "landscape", resolution=2))
        bad = eng.wait(lambda k, p: k == "job" and p.id == "b2")
        assert bad.kind == "failed" and bad.message.startswith("resolution = 2 is out of range")
        eng.wait(lambda k, p: k == "snapshot" and p.step > later.step + 20)
        assert not any(k in ("error", "invalid") for k, _ in eng.seen)
    finally:
        eng.stop()


def test_snapshots_keep_arriving_while_a_landscape_job_runs() -> None:
    """A 51×51 landscape (preview first) computed while training: snapshots arrive between its
    "started" and "result" events, and their steps keep growing."""
    eng = Engine(HParams(dataset="moons", hidden=(64, 64), train_size=512))
    try:
        eng.send("run")
        eng.wait(lambda k, p: k == "snapshot" and p.step > 20)
        eng.send("analyze", analyze_cmd("L1", "landscape", resolution=51))
        eng.wait(lambda k, p: k == "job" and p.id == "L1" and p.kind in ("result", "failed"))
        kinds_seen = [(k, getattr(p, "kind", None)) for k, p in eng.seen]
        start = kinds_seen.index(("job", "started"))
        end = kinds_seen.index(("job", "result"))
        during = [p for k, p in eng.seen[start:end] if k == "snapshot"]
        assert len(during) >= 3, kinds_seen[start:end]
        assert [s.step for s in during] == sorted(s.step for s in during)
        assert during[-1].step > during[0].step  # training went on
        assert ("job", "partial") in kinds_seen[start:end]  # the preview came first
        result = eng.seen[end][1].result
        assert result.loss.shape == (51, 51) and np.isfinite(result.loss).all()
    finally:
        eng.stop()


def test_engine_cancel_supersede_and_reset() -> None:
    eng = Engine()
    try:
        eng.send("step", 30)
        eng.wait(lambda k, p: k == "snapshot" and p.step == 30)
        # Paused: the job gets the whole loop, yet commands are seen between its slices.
        eng.send("analyze", analyze_cmd("a", "landscape", resolution=201, preview=0))
        eng.wait(lambda k, p: k == "job" and p.id == "a" and p.kind == "progress" and p.done > 0)
        eng.send("analyze", analyze_cmd("b", "landscape", resolution=201, preview=0))
        superseded = eng.wait(lambda k, p: k == "job" and p.id == "a" and p.kind in ENDS)
        assert (superseded.kind, superseded.message) == ("cancelled", "superseded by b")
        eng.wait(lambda k, p: k == "job" and p.id == "b" and p.kind == "progress" and p.done > 0)
        eng.send("cancel", "b")
        cancelled = eng.wait(lambda k, p: k == "job" and p.id == "b" and p.kind in ENDS)
        assert cancelled.kind == "cancelled"
        eng.send("analyze", analyze_cmd("c", "landscape", resolution=201, preview=0))
        eng.wait(lambda k, p: k == "job" and p.id == "c" and p.kind == "started")
        eng.send("reset", None)
        reset = eng.wait(lambda k, p: k == "job" and p.id == "c" and p.kind in ENDS)
        assert (reset.kind, reset.message) == ("cancelled", "the run was reset")
        eng.wait(lambda k, p: k == "snapshot" and p.step == 0)
        eng.send("snapshot")
        eng.wait(lambda k, p: k == "snapshot")
        assert not any(k == "job" and p.kind == "result" for k, p in eng.seen)
    finally:
        eng.stop()
