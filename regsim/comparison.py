"""Runs side by side: up to four named Trainers stepped in lockstep, a controlled experiment.

    cmp = Comparison({"A": HParams(dropout=0.0), "B": HParams(dropout=0.5)})
    cmp.step(500)                       # every run takes the same 500 steps
    cmp.update("B", weight_decay=1e-2)  # safe from any thread; B only, at its next step
    cmp.add("C", source="B")            # C = a copy of B now; both continue in lockstep
    snaps = cmp.snapshots()             # {"A": Snapshot, "B": Snapshot, "C": Snapshot}

Each run is an ordinary Trainer built from its own HParams. Nothing is copied between runs at the
start: data, initial weights, batch order and dropout masks are all functions of the settings that
define them (seed, dataset, sizes, widths, batch size; see regsim/runs.py for the exact rules and
when sharing breaks), so runs that agree on those share them by construction, and the setting being
compared is the only difference. Two runs with identical settings stay bit-identical at every step.

Lockstep: `step(n)` gives every run n steps, one run after another (each Trainer.step call keeps its
single host sync per call; interleaving step by step would multiply those syncs by n). A run that is
behind the leader (it diverged and was restored to an earlier step, or it was added fresh at step 0
while the others were further on) catches up: it takes up to n extra steps per call until aligned,
so snapshots compare the runs at the same step. A diverged run waits (its Trainer skips steps) until
it is resumed.

A single run is a Comparison of one: the engine always hosts one.
"""

from __future__ import annotations

import threading
from typing import Any

from .hparams import HParams
from .runs import MAX_RUNS, check_name, next_name
from .snapshot import Snapshot
from .trainer import Trainer


class Comparison:
    """Named Trainers in lockstep. `trainers` is ordered: the first run is the reference."""

    def __init__(self, runs: dict[str, HParams] | HParams | None = None,
                 device: str = "auto") -> None:
        if runs is None or isinstance(runs, HParams):
            runs = {"A": runs or HParams()}
        if not runs:
            raise ValueError("a comparison needs at least one run")
        if len(runs) > MAX_RUNS:
            raise ValueError(f"{len(runs)} runs ({', '.join(runs)}) is too many; a comparison "
                             f"holds 1 to {MAX_RUNS} runs")
        self.device = device
        self._lock = threading.Lock()  # guards the run set: add/remove/rename vs step/update
        self.trainers: dict[str, Trainer] = {}
        for name, h in runs.items():
            if not isinstance(h, HParams):
                raise ValueError(f"run {name!r}: expected HParams, got {type(h).__name__}")
            self.trainers[check_name(name, tuple(self.trainers))] = Trainer(h, device)
        self._share_time()

    def _share_time(self) -> None:
        """Each run trains 1/N of the time: its snapshot budgets shrink to match (Trainer)."""
        for t in self.trainers.values():
            t.time_share = 1.0 / len(self.trainers)

    # ----------------------------------------------------------------------------------- runs
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.trainers)

    @property
    def hparams(self) -> dict[str, HParams]:
        return {name: t.hparams for name, t in self.trainers.items()}

    def trainer(self, name: str) -> Trainer:
        """The run called `name`, or a ValueError naming the runs there are."""
        try:
            return self.trainers[name]
        except (KeyError, TypeError):
            raise ValueError(f"no run named {name!r}; runs: {', '.join(self.trainers)}") from None

    def add(self, name: str | None = None, hparams: HParams | None = None,
            source: str | None = None) -> str:
        """Add a run; returns its name (the next free of A–D when `name` is None).

        With `source`, the new run is a copy of that run at its current step (Trainer.fork: weights,
        optimizer moments, step, batch position) and `hparams`, if given, may differ from the
        source's in live settings only (queued, applied at the next step): the GUI's "Compare"
        duplicates the current run this way. Without `source` it is a fresh run at step 0 built
        from `hparams` (default: the first run's settings); it shares the others' initial weights
        and data wherever its settings allow, and catches up to their step (see step())."""
        with self._lock:
            taken = tuple(self.trainers)
            if len(taken) >= MAX_RUNS:
                raise ValueError(f"cannot add run {name or next_name(taken)!r}: a comparison holds "
                                 f"at most {MAX_RUNS} runs (now: {', '.join(taken)})")
            name = check_name(next_name(taken) if name is None else name, taken)
        if source is not None:
            src = self.trainer(source)
            twin = src.fork()
            if hparams is not None and hparams != src.hparams:
                changes = {k: v for k, v in hparams.to_dict().items()
                           if getattr(hparams, k) != getattr(src.hparams, k)}
                try:
                    twin.update(**changes)
                except ValueError as e:
                    raise ValueError(f"run {name!r} copies {source!r}: {e}") from None
        else:
            first = next(iter(self.trainers.values()))
            twin = Trainer(hparams or first.hparams, self.device)
        with self._lock:
            if len(self.trainers) >= MAX_RUNS or name in self.trainers:  # lost a race
                raise ValueError(f"cannot add run {name!r}: runs are now {', '.join(self.trainers)}")
            self.trainers[name] = twin
            self._share_time()
        return name

    def remove(self, name: str) -> None:
        """Drop a run (not the last one: a comparison always holds at least one)."""
        with self._lock:
            self.trainer(name)
            if len(self.trainers) == 1:
                raise ValueError(f"cannot remove run {name!r}: it is the only run")
            del self.trainers[name]
            self._share_time()

    def rename(self, old: str, new: str) -> str:
        """Rename a run, keeping its place in the order; returns the (stripped) new name."""
        with self._lock:
            self.trainer(old)
            if new == old:
                return old
            new = check_name(new, tuple(n for n in self.trainers if n != old))
            self.trainers = {(new if n == old else n): t for n, t in self.trainers.items()}
        return new

    # ----------------------------------------------------------------------------------- steering
    def update(self, name: str, **changes: Any) -> None:
        """Queue setting changes for run `name` only (Trainer.update: any thread, next step,
        invalid values raise a ValueError naming the field and nothing is queued)."""
        t = self.trainer(name)
        try:
            t.update(**changes)
        except ValueError as e:
            raise ValueError(f"run {name!r}: {e}") from None

    def reset(self, hparams: dict[str, HParams] | None = None) -> None:
        """Start every run over at step 0 (runs named in `hparams` with those settings), so the
        runs are aligned again and share whatever their settings allow."""
        unknown = sorted(set(hparams or {}) - set(self.trainers))
        if unknown:
            raise ValueError(f"no run named {unknown[0]!r}; runs: {', '.join(self.trainers)}")
        for name, t in list(self.trainers.items()):
            t.reset((hparams or {}).get(name))
        self._share_time()  # a reset rebuilds the Trainer's state, its time share included

    # ----------------------------------------------------------------------------------- training
    def step(self, n: int = 1) -> None:
        """n steps for every run. A run behind the leader takes up to n extra steps per call until
        it is aligned; a diverged run takes none until resumed."""
        with self._lock:
            runs = list(self.trainers.values())
        lead = max(t.step_count for t in runs)
        for t in runs:
            t.step(n + min(n, lead - t.step_count))

    def resume(self) -> None:
        for t in self.trainers.values():
            t.resume()

    @property
    def step_count(self) -> int:
        """The leader's step (the step every aligned run is at)."""
        return max(t.step_count for t in self.trainers.values())

    def snapshots(self, max_overhead: float | None = None, parts: Any = None) -> dict[str, Snapshot]:
        """One Snapshot per run, in run order (Trainer.snapshot; `max_overhead` per run, `parts`
        the heavy parts to measure, None = all: see regsim.snapshot.PARTS)."""
        with self._lock:
            runs = list(self.trainers.items())
        return {name: t.snapshot(max_overhead, parts=parts) for name, t in runs}
