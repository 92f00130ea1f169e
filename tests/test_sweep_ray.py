"""The sweep on Ray (regsim/sweep_ray.py): each batch of runs a Ray task on a local Ray instance, and
the grid equal to the local one, float for float. Skipped where Ray is not installed (an optional
extra: pip install 'regsim[ray]')."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from regsim.hparams import HParams  # noqa: E402
from regsim.sweep import SweepSpec, run_sweep  # noqa: E402
from regsim.sweep_ray import run_sweep_ray  # noqa: E402

BASE = HParams(dataset="moons", hidden=(8,), train_size=64, val_size=64, batch_size=16, dropout=0.0)


@pytest.fixture(scope="module")
def local_ray():
    from regsim.sweep_ray import connect

    connect(num_cpus=2)  # a local instance, two workers
    yield
    ray.shutdown()


@pytest.mark.slow  # starting Ray takes ~10 s here
def test_the_ray_grid_equals_the_local_grid(local_ray) -> None:
    spec = SweepSpec(BASE, lrs=(0.01, 0.1), decays=(0.0, 0.3), variants=("sgd-l2", "adamw-paper"),
                     seeds=(0, 1), steps=15)
    local = list(run_sweep(spec))[-1]
    grids = list(run_sweep_ray(spec))
    # one task per seed × optimizer family: 4 tasks of 4 runs, the grid filling in as each ends
    assert [g.done for g in grids] == [4, 8, 12, 16]
    assert [int(np.sum(~np.isnan(g.error))) for g in grids] == [4, 8, 12, 16]
    assert len(set(local.error.ravel().tolist())) > 4  # the cells differ: a mixed-up cell would show
    np.testing.assert_array_equal(grids[-1].error, local.error)
    np.testing.assert_array_equal(grids[-1].diverged, local.diverged)
    # one at a time (a base with dropout): one task per cell
    spec1 = SweepSpec(BASE.replace(dropout=0.2), lrs=(0.1,), decays=(0.0, 0.3), variants=("adamw",),
                      seeds=(0,), steps=10)
    one = list(run_sweep_ray(spec1))
    assert [g.done for g in one] == [1, 2]
    np.testing.assert_array_equal(one[-1].error, list(run_sweep(spec1))[-1].error)


@pytest.mark.slow
def test_sweep_cli_on_ray(local_ray, tmp_path, capsys) -> None:
    from regsim.cli import run_cli

    rc = run_cli(["sweep", "--set", "dataset=moons", "--set", "hidden=4", "--set", "train_size=32",
                  "--set", "val_size=32", "--set", "dropout=0", "--lrs", "0.01,0.1", "--decays", "0",
                  "--variants", "adamw", "--steps", "3", "--threads", "1", "--backend", "ray",
                  "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr()
    assert (tmp_path / "sweep.csv").read_text().count("\n") == 3
