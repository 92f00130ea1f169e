"""The (lr × λ) sweep on a Ray cluster: each group of runs (one batch: one seed × one optimizer
family; or one cell, when the base cannot batch) is one Ray task.

Where a grid outgrows one machine (a real-scale L&H Fig. 2: hundreds of cells × thousands of steps)
the scheduling, placement and retries are Ray's, not ours: this module only turns
`regsim.sweep.sweep_groups` into `ray.remote` calls of `regsim.sweep.train_group` (the same function
the local sweep runs, so a cell's error is the same float, checked in tests/test_sweep_ray.py) and
collects the results with `ray.wait` as they finish, yielding the partial grid after each.

Ray is an optional extra (`pip install regsim[ray]`); importing this module does not import it.
`address`: "" or "local" starts a local Ray instance; "auto" joins the cluster this machine belongs
to; "ray://host:10001" (Ray Client) or "host:6379" connects to a remote head. The workers get this
checkout's `regsim` package (runtime_env py_modules), so a cluster needs only torch and numpy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .sweep import SweepGrid, SweepSpec, can_batch, sweep_groups, train_group


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray: pip install 'regsim[ray]' (or pip install ray)") \
            from None
    return ray


def connect(address: str = "", num_cpus: int | None = None) -> Any:
    """`ray.init` once (a second call reuses the connection); returns the ray module."""
    ray = _ray()
    if not ray.is_initialized():
        pkg = str(Path(__file__).resolve().parent)  # this checkout's regsim, for every worker
        kwargs: dict[str, Any] = {"runtime_env": {"py_modules": [pkg]}, "include_dashboard": False,
                                  "log_to_driver": False}
        if address and address != "local":
            kwargs["address"] = address
        elif num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    return ray


def run_sweep_ray(spec: SweepSpec, address: str = "", device: str = "cpu", batched: bool | None = None,
                  num_cpus: int | None = None) -> Iterator[SweepGrid]:
    """The sweep with each group of runs as a Ray task; yields the partial grid each time a task
    finishes (in the order they finish), the last one complete. Each task asks for one CPU (Ray
    then sets its torch threads to 1), so a node runs as many groups at once as it has cores."""
    if batched is None:
        batched = can_batch(spec.base)
    groups = sweep_groups(spec, batched)  # validates `batched` before anything starts
    ray = connect(address, num_cpus)
    task = ray.remote(num_cpus=1)(train_group)
    spec_ref = ray.put(spec)
    pending = {task.remote(spec_ref, cells, device, batched): cells for cells in groups}
    error = np.full(spec.shape, np.nan)
    diverged = np.zeros(spec.shape, dtype=bool)
    t0, done = time.perf_counter(), 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cells = pending.pop(ref)
                for (v, i, j, s), (e, d) in zip(cells, ray.get(ref)):
                    error[v, i, j, s], diverged[v, i, j, s] = e, d
                done += len(cells)
            yield SweepGrid(spec, error.copy(), diverged.copy(), done, time.perf_counter() - t0)
    finally:
        for ref in pending:  # stopped early (Ctrl-C, a closed generator): drop the rest
            ray.cancel(ref)
