"""Runs side by side (regsim.comparison): lockstep is a controlled experiment, checked against solo
Trainers and an independent replay of the batch order."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from regsim import Comparison, HParams, Trainer
from regsim.runs import MAX_RUNS, config_diff, sharing, sharing_text

SMALL = HParams(dataset="moons", hidden=(32, 32), train_size=100, val_size=50, batch_size=16, seed=3)


def weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def record_batches(t: Trainer) -> list[torch.Tensor]:
    """Wrap the trainer's batch draw to keep a copy of every minibatch's inputs."""
    seen: list[torch.Tensor] = []
    draw = t._next_batch

    def wrapped():
        x, y = draw()
        seen.append(x.clone())
        return x, y

    t._next_batch = wrapped
    return seen


# ---------------------------------------------------------------------------------- lockstep


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_identical_settings_give_identical_weights(p: float) -> None:
    h = SMALL.replace(dropout=p, input_dropout=p / 2, weight_decay=1e-3)
    cmp = Comparison({"A": h, "B": h}, device="cpu")
    masks = {name: [] for name in cmp.names}
    for name, t in cmp.trainers.items():
        hook = t.model.drops[0].register_forward_hook(
            lambda m, _i, _o, name=name: masks[name].append(None if m.last_mask is None
                                                            else m.last_mask.clone()))
        t._hook = hook
    cmp.step(120)
    cmp.step(80)
    a, b = cmp.trainers["A"], cmp.trainers["B"]
    assert a.step_count == b.step_count == 200
    assert same(weights(a), weights(b))
    # Lockstep changes nothing about a run: each equals a Trainer trained alone.
    solo = Trainer(h, "cpu")
    solo.step(200)
    assert same(weights(a), weights(solo))
    if p > 0:
        assert len(masks["A"]) == 200
        assert all(torch.equal(ma, mb) for ma, mb in zip(masks["A"], masks["B"]))
        # and the masks are real dropout: about p dropped, different from step to step
        dropped = torch.stack([~m for m in masks["A"]]).float().mean().item()
        assert abs(dropped - p) < 0.03
        assert not torch.equal(masks["A"][0], masks["A"][1])


def test_different_decay_keeps_initial_weights_and_batch_order() -> None:
    cmp = Comparison({"A": SMALL, "B": SMALL.replace(weight_decay=0.5)}, device="cpu")
    a, b = cmp.trainers["A"], cmp.trainers["B"]
    assert same(weights(a), weights(b))
    batches = {name: record_batches(t) for name, t in cmp.trainers.items()}
    cmp.step(40)  # 100 examples / 16: a new shuffle every 6 steps, so several epochs
    assert len(batches["A"]) == len(batches["B"]) == 40
    assert all(torch.equal(x, y) for x, y in zip(batches["A"], batches["B"]))
    # An independent replay of the order: randperm per epoch from a generator seeded by the seed.
    g = torch.Generator().manual_seed(SMALL.seed)
    x_train = torch.as_tensor(a.data.x_train)
    expected, perm, pos = [], torch.empty(0, dtype=torch.long), 0
    for _ in range(40):
        if pos + 16 > len(perm):
            perm, pos = torch.randperm(len(x_train), generator=g), 0
        expected.append(x_train[perm[pos:pos + 16]])
        pos += 16
    assert all(torch.equal(x, e) for x, e in zip(batches["A"], expected))
    # λ is the only difference, and it matters.
    assert not same(weights(a), weights(b))
    norm = lambda t: sum(float(w.weight.detach().norm() ** 2) for w in t.model.weight_layers())  # noqa: E731
    assert norm(b) < norm(a)


def test_different_dropout_draws_coupled_masks() -> None:
    """Same (seed, step, site) stream, different p: kept(p = 0.6) ⊂ kept(p = 0.2)."""
    cmp = Comparison({"A": SMALL.replace(dropout=0.2), "B": SMALL.replace(dropout=0.6)}, "cpu")
    cmp.step(1)
    ka = cmp.trainers["A"].model.drops[0].last_mask
    kb = cmp.trainers["B"].model.drops[0].last_mask
    assert ka.shape == kb.shape == (16, 32)
    assert bool((kb <= ka).all()) and int(kb.sum()) < int(ka.sum())
    # The first site saw the same input in both runs (same weights, same batch): the masks'
    # difference is the only difference there.
    assert torch.equal(cmp.trainers["A"].model.drops[0].last_input,
                       cmp.trainers["B"].model.drops[0].last_input)


def test_update_changes_only_the_named_run() -> None:
    cmp = Comparison({"A": SMALL, "B": SMALL}, device="cpu")
    cmp.step(10)
    cmp.update("B", weight_decay=0.2, lr=3e-3)
    cmp.step(30)
    a, b = cmp.trainers["A"], cmp.trainers["B"]
    assert (a.hparams.weight_decay, a.hparams.lr) == (0.0, 1e-2)
    assert (b.hparams.weight_decay, b.hparams.lr) == (0.2, 3e-3)
    assert {g["weight_decay"] for g in b.optimizer.param_groups} == {0.2, 0.0}  # decay / no_decay
    assert {g["weight_decay"] for g in a.optimizer.param_groups} == {0.0}
    solo = Trainer(SMALL, "cpu")
    solo.step(40)
    assert same(weights(a), weights(solo))  # A is untouched by B's change
    assert not same(weights(a), weights(b))
    snaps = cmp.snapshots()
    assert list(snaps) == ["A", "B"] and snaps["B"].hparams.weight_decay == 0.2
    assert snaps["A"].step == snaps["B"].step == 40


def test_update_from_another_thread_applies_at_the_next_step() -> None:
    import threading

    cmp = Comparison({"A": SMALL, "B": SMALL}, device="cpu")
    worker = threading.Thread(target=cmp.update, args=("B",), kwargs={"dropout": 0.3})
    worker.start()
    worker.join()
    assert cmp.trainers["B"].hparams.dropout == 0.0  # queued, not applied
    cmp.step(1)
    assert cmp.trainers["B"].hparams.dropout == 0.3 and cmp.trainers["A"].hparams.dropout == 0.0


# ---------------------------------------------------------------------------------- add / remove


def test_add_as_a_copy_continues_in_lockstep() -> None:
    h = SMALL.replace(dropout=0.3, optimizer="adam")
    cmp = Comparison({"A": h}, device="cpu")
    cmp.step(50)
    assert cmp.add(source="A") == "B"
    b = cmp.trainers["B"]
    assert b.step_count == 50 and same(weights(b), weights(cmp.trainers["A"]))
    cmp.step(70)
    a = cmp.trainers["A"]
    assert a.step_count == b.step_count == 120
    assert same(weights(a), weights(b))  # weights, Adam moments, batch position, masks: all copied
    solo = Trainer(h, "cpu")
    solo.step(120)
    assert same(weights(b), weights(solo))
    # A copy with a different live setting starts from the same state and then departs.
    cmp.add("C", hparams=h.replace(weight_decay=0.3), source="A")
    cmp.step(5)
    c = cmp.trainers["C"]
    assert c.hparams.weight_decay == 0.3 and c.step_count == 125
    assert not same(weights(c), weights(a))
    with pytest.raises(ValueError, match="'D' copies 'A'.*hidden"):
        cmp.add("D", hparams=h.replace(hidden=(8,)), source="A")
    assert cmp.names == ("A", "B", "C")


def test_fresh_run_shares_initial_weights_and_catches_up() -> None:
    cmp = Comparison({"A": SMALL}, device="cpu")
    start = weights(cmp.trainers["A"])
    cmp.step(30)
    cmp.add("B", hparams=SMALL.replace(weight_decay=0.1))
    b = cmp.trainers["B"]
    assert b.step_count == 0 and same(weights(b), start)
    cmp.step(20)  # B takes 20 + 20 steps: 40 of the 30 + 20
    assert (cmp.trainers["A"].step_count, b.step_count) == (50, 40)
    cmp.step(20)
    assert (cmp.trainers["A"].step_count, b.step_count) == (70, 70)


def test_remove_and_rename() -> None:
    cmp = Comparison({"A": SMALL, "B": SMALL, "C": SMALL}, device="cpu")
    cmp.remove("B")
    assert cmp.names == ("A", "C")
    assert cmp.rename("C", " treated ") == "treated"
    assert cmp.names == ("A", "treated")
    with pytest.raises(ValueError, match="'A' is taken; runs: A"):
        cmp.rename("treated", "A")
    cmp.remove("A")
    with pytest.raises(ValueError, match="cannot remove run 'treated': it is the only run"):
        cmp.remove("treated")


def test_errors_name_the_run_and_what_is_allowed() -> None:
    cmp = Comparison({"A": SMALL}, device="cpu")
    for _ in range(MAX_RUNS - 1):
        cmp.add(source="A")
    assert cmp.names == ("A", "B", "C", "D")
    with pytest.raises(ValueError, match=r"at most 4 runs \(now: A, B, C, D\)"):
        cmp.add("E")
    with pytest.raises(ValueError, match=r"no run named 'Z'; runs: A, B, C, D"):
        cmp.update("Z", lr=0.1)
    with pytest.raises(ValueError, match=r"run 'B': dropout = 1.5 is out of range; allowed: \[0, 1\)"):
        cmp.update("B", dropout=1.5)
    with pytest.raises(ValueError, match="run 'C': hidden changes the data or the network"):
        cmp.update("C", hidden=(8,))
    with pytest.raises(ValueError, match="1 to 16"):
        cmp.rename("B", "")
    with pytest.raises(ValueError, match="1 to 4 runs"):
        Comparison({n: SMALL for n in "ABCDE"}, device="cpu")
    assert all(t.hparams == SMALL for t in cmp.trainers.values())  # nothing queued or applied
    cmp.step(1)
    assert all(t.hparams == SMALL for t in cmp.trainers.values())


def test_reset_realigns_every_run() -> None:
    cmp = Comparison({"A": SMALL, "B": SMALL.replace(lr=3e-3)}, device="cpu")
    cmp.step(20)
    cmp.reset({"B": SMALL.replace(hidden=(16,))})
    a, b = cmp.trainers["A"], cmp.trainers["B"]
    assert a.step_count == b.step_count == 0 and b.hparams.hidden == (16,)
    assert a.time_share == b.time_share == 0.5  # the snapshot budgets stay shared after a reset
    assert same(weights(a), weights(Trainer(SMALL, "cpu")))


# ---------------------------------------------------------------------------------- what is shared


def test_sharing_rules_match_what_trainers_build() -> None:
    base = Trainer(SMALL, "cpu")
    base_init = [lin.weight.detach().clone() for lin in base.model.weight_layers()]
    base_batches = record_batches(base)
    base.step(8)
    cases = {
        "layer_norm": SMALL.replace(layer_norm=True),
        "activation": SMALL.replace(activation="tanh"),
        "hidden": SMALL.replace(hidden=(32, 16)),
        "seed": SMALL.replace(seed=4),
        "noise": SMALL.replace(noise=0.3),
        "batch": SMALL.replace(batch_size=32),
    }
    for label, h in cases.items():
        t = Trainer(h, "cpu")
        said = sharing(h, SMALL)
        same_data = (t.data.x_train.shape == base.data.x_train.shape
                     and (t.data.x_train == base.data.x_train).all())
        assert said["data"] == bool(same_data), label
        lin = [(a.weight, b) for a, b in zip(t.model.weight_layers(), base_init)]
        same_init = all(a.shape == b.shape and torch.equal(a, b) for a, b in lin)
        assert said["initial weights"] == same_init, label
        batches = record_batches(t)
        t.step(8)
        same_batches = all(x.shape == y.shape and torch.equal(x, y)
                           for x, y in zip(batches, base_batches))
        assert said["batches"] == same_batches, label
    assert all(sharing(SMALL.replace(weight_decay=1.0, dropout=0.5), SMALL).values())
    text = sharing_text(SMALL.replace(hidden=(16, 16)), SMALL)
    assert "hidden widths differ" in text and "Still shared: data, batches" in text


def test_config_diff_lists_only_what_differs() -> None:
    runs = {"A": SMALL, "B": SMALL.replace(weight_decay=0.1), "C": SMALL.replace(hidden=(8, 8))}
    diff = config_diff(runs)
    assert diff == {"hidden": {"A": [32, 32], "B": [32, 32], "C": [8, 8]},
                    "weight_decay": {"A": 0.0, "B": 0.1, "C": 0.0}}
    assert config_diff({"A": SMALL}) == {} and config_diff({"A": SMALL, "B": SMALL}) == {}


def test_importing_regsim_and_runs_stays_torch_free() -> None:
    code = ("import sys, regsim, regsim.runs; regsim.HParams; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "assert regsim.Comparison.__name__ == 'Comparison' and 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------- the engine


class _Engine:
    """An engine in a thread, with the messages it sent kept in order."""

    def __init__(self, h: HParams) -> None:
        import queue
        import threading

        from regsim.engine import engine_main

        self.cmds: queue.Queue = queue.Queue()
        self.out: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=engine_main, args=(self.cmds, self.out, h.to_dict(),
                                                                 "cpu"), daemon=True)
        self.thread.start()

    def send(self, name: str, payload=None) -> None:
        self.cmds.put((name, payload))

    def wait(self, pred, timeout: float = 60.0):
        import queue
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                kind, payload = self.out.get(timeout=0.5)
            except queue.Empty:
                continue
            assert kind not in ("error",), payload
            if pred(kind, payload):
                return payload
        raise AssertionError("the engine did not send the message waited for")

    def close(self) -> None:
        self.send("stop")
        self.wait(lambda k, p: k == "stopped")
        self.thread.join(5)


def test_engine_hosts_a_comparison_with_run_addressed_commands() -> None:
    eng = _Engine(SMALL)
    try:
        ready = eng.wait(lambda k, p: k == "ready")
        assert ready["runs"] == ["A"] and ready["selected"] == "A"
        eng.send("step", 12)
        one = eng.wait(lambda k, p: k == "snapshot" and p.step == 12)  # one run: as before
        assert one.hparams == SMALL
        eng.send("add_run", {"name": "B"})  # a copy of the selected run at its step
        assert eng.wait(lambda k, p: k == "runs")["runs"] == ["A", "B"]
        both = eng.wait(lambda k, p: k == "snapshots")
        assert both.names == ("A", "B") and both.selected == "A"
        assert both.runs["B"].step == 12 and both.runs["B"].train_loss == both.runs["A"].train_loss
        eng.send("update", {"run": "B", "changes": {"weight_decay": 0.3}})
        eng.send("step", 20)
        snaps = eng.wait(lambda k, p: k == "snapshots" and p.runs["A"].step == 32)
        assert snaps.runs["B"].step == 32
        assert snaps.runs["A"].hparams.weight_decay == 0.0
        assert snaps.runs["B"].hparams.weight_decay == 0.3
        # The un-addressed form edits the selected run; "select" changes which that is.
        eng.send("select", "B")
        eng.wait(lambda k, p: k == "runs" and p["selected"] == "B")
        eng.send("update", {"lr": 0.002})
        snaps = eng.wait(lambda k, p: k == "snapshots" and p.runs["B"].hparams.lr == 0.002)
        assert snaps.runs["A"].hparams.lr == SMALL.lr and snaps.selected == "B"
        # Errors name the run and what is allowed; nothing changes.
        eng.send("update", {"run": "Q", "changes": {"lr": 0.1}})
        assert "no run named 'Q'; runs: A, B" in eng.wait(lambda k, p: k == "invalid")
        eng.send("update", {"run": "A", "changes": {"dropout": 1.0}})
        assert "run 'A': dropout = 1.0 is out of range" in eng.wait(lambda k, p: k == "invalid")
        eng.send("rename_run", {"old": "B", "new": "λ=0.3"})
        runs = eng.wait(lambda k, p: k == "runs")
        assert runs == {"runs": ["A", "λ=0.3"], "selected": "λ=0.3"}
        eng.send("add_run", {"from": None, "hparams": {"dropout": 0.2}})  # fresh, at step 0
        runs = eng.wait(lambda k, p: k == "runs")
        assert runs["runs"] == ["A", "λ=0.3", "B"]
        fresh = eng.wait(lambda k, p: k == "snapshots")
        assert fresh.runs["B"].step == 0
        assert fresh.runs["B"].hparams == SMALL.replace(lr=0.002, weight_decay=0.3, dropout=0.2)
        eng.send("remove_run", "λ=0.3")
        assert eng.wait(lambda k, p: k == "runs") == {"runs": ["A", "B"], "selected": "A"}
        eng.send("reset", {"runs": {"X": {"weight_decay": 0.1}, "Y": {"weight_decay": 0.0}}})
        assert eng.wait(lambda k, p: k == "runs") == {"runs": ["X", "Y"], "selected": "X"}
        snaps = eng.wait(lambda k, p: k == "snapshots")
        assert (snaps.runs["X"].step, snaps.runs["Y"].step) == (0, 0)
        eng.send("run")
        snaps = eng.wait(lambda k, p: k == "snapshots" and p.runs["X"].step > 30)
        assert all(s.status == "running" for s in snaps.runs.values())
        eng.send("pause")
        snaps = eng.wait(lambda k, p: k == "snapshots" and p.runs["X"].status == "paused")
        assert snaps.runs["X"].step == snaps.runs["Y"].step  # lockstep
    finally:
        eng.close()


# ---------------------------------------------------------------------------------- ghost runs


def test_ghost_run_round_trips_through_a_file(tmp_path) -> None:
    import numpy as np

    from regsim.runs import load_ghost, save_history
    from regsim.snapshot import History

    t = Trainer(SMALL, "cpu")
    hist = History()
    for _ in range(6):
        t.step(10)
        hist.add(t.snapshot())
    path = save_history(tmp_path / "lecture.npz", hist, "A", t.hparams)
    assert [p.name for p in tmp_path.iterdir()] == ["lecture.npz"]  # no temporary file left
    ghost = load_ghost(path)
    assert ghost.name == "A" and ghost.hparams == SMALL and len(ghost) == 6
    for k in History.SERIES:
        np.testing.assert_array_equal(ghost.series(k), hist.series(k))
    np.testing.assert_array_equal(ghost.series("step"), [10, 20, 30, 40, 50, 60])
    # The file is data only: numpy reads it without pickle.
    with np.load(path, allow_pickle=False) as f:
        assert "series_val_loss" in f.files
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz is not a saved regsim run"):
        load_ghost(bad)
    with pytest.raises(ValueError, match="nope.npz: no such file"):
        load_ghost(tmp_path / "nope.npz")
    with pytest.raises(ValueError):
        save_history(tmp_path / "missing" / "x.npz", hist, "A")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "lecture.npz"]
