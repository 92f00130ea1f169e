"""How many CPU threads torch may use: one policy for every entry point (app engine, CLI, export).

Torch's default is one OpenMP thread per core. OpenMP workers spin while they wait for each other,
so when any other process keeps one core busy (the GUI, a second run, a lecture's screen recorder)
every step waits for a worker that the scheduler has parked behind that process. Measured on a
2-core machine with one core busy elsewhere: `python main.py train` ran at 20–23 steps/s with torch's
default of 2 threads and at 454 steps/s with 1; the engine's bare loop at 4.8 steps/s with 2 and
150 steps/s with 1. Giving torch the spare cores only (all but one) costs at most 1/n of the
compute on an idle n-core machine and avoids that cliff everywhere.

No torch and no Qt here: the UI imports this module, and it must not pull torch into the GUI
process. Applying the count is `regsim.trainer.set_threads`.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it, e.g. in a
    container or under `taskset`), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def spare_threads() -> int:
    """The automatic count: one thread per spare core, i.e. all cores but one (at least one)."""
    return max(1, available_cores() - 1)


def engine_threads(requested: int = 0) -> int:
    """Torch threads to use: `requested` when positive, else the automatic `spare_threads()`."""
    return requested if requested > 0 else spare_threads()


def check_threads(value: int, flag: str = "--threads") -> int:
    """Validate a user's thread count; returns the count to use (0 = automatic is resolved).

    Raises ValueError naming `flag` and the allowed range. More threads than cores would only
    oversubscribe them (the cliff above), so the range stops at the core count.
    """
    cores = available_cores()
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} = {value!r} is not a whole number; allowed: 0 (automatic: "
                         f"{spare_threads()} here) or [1, {cores}]") from None
    if not 0 <= n <= cores:
        raise ValueError(f"{flag} = {n} is out of range; allowed: 0 (automatic: "
                         f"{spare_threads()} here) or [1, {cores}] (this machine's cores)")
    return engine_threads(n)
