"""The (lr × λ) sweep (regsim/sweep.py): a cell is the run trained alone; the files it writes."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from regsim.cli import run_cli
from regsim.hparams import HParams
from regsim.sweep import SweepSpec, run_sweep, train_cell
from regsim.trainer import Trainer

BASE = HParams(dataset="moons", hidden=(16,), train_size=64, val_size=64, batch_size=16, dropout=0.1)


def test_a_sweep_cell_equals_the_run_trained_alone() -> None:
    spec = SweepSpec(BASE, lrs=(0.01, 0.1), decays=(0.0, 0.3), variants=("sgd-l2", "adamw-paper"),
                     seeds=(0, 1), steps=40)
    grids = list(run_sweep(spec))
    assert [g.done for g in grids] == list(range(1, 17)) and grids[-1].total == 16
    assert np.isnan(grids[3].error).sum() == 12  # partial grids: the rest still NaN
    grid = grids[-1]
    # the cell (adamw-paper, lr 0.1, λ 0.3, seed 1), trained alone by hand
    alone = Trainer(BASE.replace(optimizer="adam", decay_mode="decoupled_paper", lr=0.1,
                                 weight_decay=0.3, seed=1), device="cpu")
    alone.step(40)
    _, _, _, acc = alone.evaluate()
    assert grid.error[1, 1, 1, 1] == pytest.approx(1 - acc, abs=1e-12)
    assert grid.error[1, 1, 1, 1] == train_cell(spec.cell_hparams("adamw-paper", 0.1, 0.3, 1), 40)[0]
    # the cells differ (the test can see a wrong cell), the stats are the numpy ones
    assert len(set(grid.error.ravel().tolist())) > 4
    np.testing.assert_allclose(grid.mean(), grid.error.mean(axis=3))
    np.testing.assert_allclose(grid.std(), grid.error.std(axis=3, ddof=1))
    best = grid.best_decay_per_lr()
    np.testing.assert_array_equal(best, np.argmin(grid.error.mean(axis=3), axis=2))


def test_bad_sweep_input_names_the_field() -> None:
    with pytest.raises(ValueError, match="variants: 'adamx'"):
        SweepSpec(BASE, lrs=(0.1,), decays=(0.0,), variants=("adamx",))
    with pytest.raises(ValueError, match="lr = -1.0 is out of range"):
        SweepSpec(BASE, lrs=(-1.0,), decays=(0.0,))
    with pytest.raises(ValueError, match="weight_decay = -0.5 is out of range"):
        SweepSpec(BASE, lrs=(0.1,), decays=(-0.5,))


def test_sweep_cli_writes_csv_and_json(tmp_path, capsys) -> None:
    out = tmp_path / "grid"
    rc = run_cli(["sweep", "--set", "dataset=moons", "--set", "hidden=8", "--set", "train_size=64",
                  "--set", "val_size=64", "--set", "batch_size=16", "--lrs", "0.01,0.1", "--decays", "0,0.1",
                  "--variants", "adam-l2,adamw", "--steps", "10", "--threads", "1", "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["variant"] for r in rows} == {"adam-l2", "adamw"}
    data = json.loads((out / "sweep.json").read_text())
    assert data["done"] == data["total"] == 8 and len(data["mean_val_error"]) == 2
    cell = next(r for r in rows if r["variant"] == "adamw" and float(r["lr"]) == 0.1
                and float(r["weight_decay"]) == 0.1)
    assert math.isclose(float(cell["val_error"]), data["mean_val_error"][1][1][1])
    assert not list(out.glob("*.tmp*"))  # atomic: no leftovers
    rc = run_cli(["sweep", "--lrs", "0.1,x", "--decays", "0", "--out", str(out)])
    assert rc == 2 and "--lrs" in capsys.readouterr().err


def test_a_batched_sweep_cell_equals_the_run_trained_alone() -> None:
    """The vmapped path: every run's weights after 30 steps equal Trainer(h).step(30)'s, and the grid
    equals the one-at-a-time grid."""
    from regsim.sweep import train_batched

    base = BASE.replace(dropout=0.0, activation="tanh", schedule="warmup_cosine", warmup_steps=5,
                        total_steps=40)
    spec = SweepSpec(base, lrs=(0.01, 0.1), decays=(0.0, 0.3),
                     variants=("sgd-l2", "sgdw-paper", "adam-l2", "adamw", "adamw-paper"), seeds=(2,),
                     steps=30)
    hs = [spec.cell_hparams(v, lr, lam, 2) for v in ("adam-l2", "adamw", "adamw-paper")
          for lr in spec.lrs for lam in spec.decays]
    _, bad, params = train_batched(hs, 30)
    assert not any(bad)
    for k, h in enumerate(hs):
        alone = Trainer(h, device="cpu")
        alone.step(30)
        for n, p in alone.model.named_parameters():
            torch.testing.assert_close(params[n][k], p.detach(), atol=1e-5, rtol=0, msg=f"{k} {n}")
    one = list(run_sweep(spec, batched=False))[-1]
    batched = list(run_sweep(spec, batched=True))
    assert len(batched) == 2  # one partial grid per optimizer family
    np.testing.assert_array_equal(batched[-1].error, one.error)
    with pytest.raises(ValueError, match="dropout = 0"):
        next(run_sweep(SweepSpec(BASE, lrs=(0.1,), decays=(0.0,)), batched=True))
