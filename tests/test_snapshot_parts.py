"""Typed snapshot parts measured on request, and snapshots that take nothing from other readers.

The batch losses are checked against a brute-force record of every training step's loss (taken by
wrapping the trainer's loss function), not against the trainer's own counters.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time

import numpy as np
import pytest
import torch
from synthetic import make_snapshot

from regsim import HParams, Trainer
from regsim.engine import engine_main
from regsim.snapshot import PARTS, History, check_parts

SMALL = HParams(dataset="moons", hidden=(16, 16), dropout=0.3, weight_decay=1e-3, lr=0.01,
                optimizer="adam", train_size=100, val_size=100, batch_size=16)


def recorded(trainer: Trainer) -> list[float]:
    """Every training-step loss from now on, recorded as it is computed (one .item() per step:
    fine in a test, never in the trainer)."""
    losses: list[float] = []
    loss = trainer._loss

    def record(out, y, reduction="mean"):
        value = loss(out, y, reduction)
        if trainer.model.training and reduction == "mean":
            losses.append(float(value.detach()))
        return value

    trainer._loss = record
    return losses


# ------------------------------------------------------------------------------- readers
def test_two_interleaved_readers_each_see_every_event_once_and_their_own_means() -> None:
    t = Trainer(SMALL, device="cpu")
    losses = recorded(t)
    readers = {"a": t.reader(), "b": t.reader()}
    seen = {name: [] for name in readers}  # events each reader was given, in order
    last = dict.fromkeys(readers, 0)  # how many losses each reader had been told about
    rng = np.random.default_rng(0)
    changes = 0
    checked = 0
    for _ in range(40):
        if rng.random() < 0.4:
            t.update(weight_decay=float(rng.choice([1e-4, 1e-3, 1e-2])))
            changes += 1
        t.step(int(rng.integers(0, 6)))  # 0 steps sometimes: an interval with no loss
        for name in [n for n in readers if rng.random() < 0.5]:
            snap = t.snapshot(reader=readers[name])
            new = losses[last[name]:]
            last[name] = len(losses)
            if new:
                assert snap.batch_loss == pytest.approx(np.mean(new), rel=1e-6, abs=1e-9)
                checked += 1
            else:
                assert math.isnan(snap.batch_loss)
            seen[name].extend(snap.events)
    for name, token in readers.items():  # a last look: what is left for each
        seen[name].extend(t.snapshot(reader=token).events)
    events = [e for e in seen["a"] if "→" in e[1]]
    assert seen["a"] == seen["b"]  # neither took the other's events
    assert len(set(seen["a"])) == len(seen["a"])  # and none twice
    assert changes > 5 and checked > 20
    # Every update that changed λ is one event (an update to the same value logs none).
    assert 0 < len(events) <= changes and all(text.startswith("λ") for _, text in events)
    snap = t.snapshot()  # the default reader, never used before: everything since the start
    assert snap.events == tuple(seen["a"])
    assert snap.batch_loss == pytest.approx(np.mean(losses), rel=1e-6)
    assert snap.counters.loss_count == len(losses) and snap.counters.steps == t.step_count
    assert snap.counters.loss_sum == pytest.approx(math.fsum(losses), rel=1e-9)


def test_counters_give_any_interval_without_a_cursor() -> None:
    t = Trainer(SMALL, device="cpu")
    losses = recorded(t)
    t.step(7)
    first = t.snapshot(reader=t.reader())
    t.step(13)
    t.snapshot()  # someone else reads in between: no effect on the totals
    second = t.snapshot(reader=t.reader())
    a, b = first.counters, second.counters
    assert b.loss_count - a.loss_count == 13 and b.steps - a.steps == 13
    assert (b.loss_sum - a.loss_sum) / 13 == pytest.approx(np.mean(losses[7:]), rel=1e-6)
    assert b.train_seconds > a.train_seconds


def test_reset_starts_every_reader_over() -> None:
    t = Trainer(SMALL, device="cpu")
    r = t.reader()
    t.step(5)
    t.update(weight_decay=0.01)
    t.step(1)
    assert len(t.snapshot(reader=r).events) == 1
    t.reset()
    losses = recorded(t)
    t.step(3)
    snap = t.snapshot(reader=r)
    assert snap.events == () and snap.counters.loss_count == 3
    assert snap.batch_loss == pytest.approx(np.mean(losses), rel=1e-6)


def test_a_divergence_undoes_its_losses_in_the_totals() -> None:
    t = Trainer(HParams(dataset="digits", train_size=200, hidden=(32, 32), optimizer="momentum",
                        lr=1000.0), device="cpu")
    for _ in range(50):
        t.step(5)
        if t.status == "diverged":
            break
    assert t.status == "diverged"
    snap = t.snapshot()
    c = snap.counters
    assert math.isfinite(c.loss_sum) and c.loss_count < c.steps
    assert any("diverged" in text for _, text in snap.events)


# ------------------------------------------------------------------------------- parts
def test_parts_are_measured_only_when_asked() -> None:
    t = Trainer(SMALL, device="cpu")
    t.step(20)
    weights = [lin.weight.detach() for lin in t.model.weight_layers()]
    norms = np.array([float(torch.linalg.vector_norm(w)) for w in weights])
    full = t.snapshot()
    assert full.measured == PARTS and full.data is not None and full.weight_hist
    assert len(full.dropout_masks) == len(full.activation_inference) == len(full.dropout_sites)
    only_eval = t.snapshot(parts={"eval"})
    assert only_eval.measured == {"eval"}
    assert only_eval.train_loss == pytest.approx(full.train_loss)
    assert only_eval.weight_hist == () and only_eval.weight_hist_fixed == ()
    assert only_eval.data is None and only_eval.dropout_masks == ()
    assert only_eval.activation_pre == only_eval.activation_post == only_eval.activation_inference == ()
    np.testing.assert_allclose(only_eval.weight_norms, norms, rtol=1e-6)  # always in
    masks = t.snapshot(parts=["masks"])
    assert masks.measured == {"masks"} and math.isnan(masks.train_loss) and math.isnan(masks.val_acc)
    assert [m.shape for m in masks.dropout_masks] == [m.shape for m in full.dropout_masks]
    hist = t.snapshot(parts={"histograms"})
    assert [int(c.sum()) for c in hist.weight_hist] == [w.numel() for w in weights]
    with pytest.raises(ValueError, match="unknown part 'grid'; allowed: data, eval, histograms, masks"):
        t.snapshot(parts={"eval", "grid"})
    assert check_parts(None) == PARTS and check_parts("eval") == {"eval"}


def test_a_part_asked_for_is_measured_at_once_even_within_the_budget() -> None:
    t = Trainer(SMALL, device="cpu")
    t.step(20)
    t.status = "running"
    first = t.snapshot(0.02, parts={"eval"})
    t.step(1)
    # Within the budget the eval measured a moment ago is reused; histograms were never measured
    # in it, so they are measured now, with the eval, at this step.
    second = t.snapshot(0.02, parts={"eval", "histograms"})
    assert second.measured == {"eval", "histograms"} and second.weight_hist
    assert second.eval_step == t.step_count != first.eval_step
    third = t.snapshot(0.02, parts={"eval"})  # reuse: fewer parts than cached is fine
    assert third.eval_step == second.eval_step and third.measured == {"eval"}


def test_history_bands_only_from_snapshots_with_histograms() -> None:
    h = History()
    with_hist = make_snapshot(step=10)
    without = dataclasses.replace(make_snapshot(step=20), measured=frozenset({"eval"}),
                                  weight_hist=(), weight_hist_edges=())
    h.add(with_hist)
    h.add(without)
    steps, bands = h.percentiles()
    assert len(h) == 2 and list(steps) == [10]
    assert bands.shape == (1, 3, len(History.PERCENTILES))


def _wait_for(out, pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kind, payload = out.get(timeout=0.5)
        except queue.Empty:
            continue
        if pred(kind, payload):
            return kind, payload
    raise AssertionError("message not seen in time")


def test_engine_measure_command() -> None:
    cmds: queue.Queue = queue.Queue()
    out: queue.Queue = queue.Queue()
    th = threading.Thread(target=engine_main, args=(cmds, out, SMALL.to_dict(), "cpu"), daemon=True)
    th.start()
    _wait_for(out, lambda k, p: k == "ready")
    cmds.put(("measure", ["masks"]))  # paused: the engine answers with a snapshot at once
    _, snap = _wait_for(out, lambda k, p: k == "snapshot" and p.measured == {"masks"})
    assert snap.weight_hist == () and snap.data is None
    cmds.put(("run", None))
    _, snap = _wait_for(out, lambda k, p: k == "snapshot" and p.step > 30)
    assert snap.measured == {"masks"} and snap.dropout_masks[1].size > 0
    cmds.put(("measure", ["bogus"]))
    _, msg = _wait_for(out, lambda k, p: k == "invalid")
    assert "unknown part 'bogus'" in msg
    cmds.put(("measure", ["eval", "histograms"]))
    _, snap = _wait_for(out, lambda k, p: k == "snapshot" and p.measured == {"eval", "histograms"})
    assert snap.dropout_masks == () and math.isfinite(snap.train_loss)
    cmds.put(("stop", None))
    _wait_for(out, lambda k, p: k == "stopped")
    th.join(5)
