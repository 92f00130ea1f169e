"""The engine: a message loop around a Comparison of runs (commands in, snapshots out).

It runs unchanged in a thread (queue.Queue) or in a child process (multiprocessing queues): a child
process keeps the training loop from sharing the GUI's interpreter lock, which on a 2-core machine
was the difference between 0.28× and ~1.0× of the bare loop's speed.

The engine always hosts a regsim.comparison.Comparison; a single run is a Comparison of one (named
"A"). Run/pause/step act on every run (lockstep). Commands that concern one run take a "run" name;
without it they go to the *selected* run (the one the controls edit; the first unless "select"ed),
so the un-addressed forms of a single-run engine keep their meaning.

Commands are tuples (name, payload):
    ("run", None) ("pause", None) ("step", n) ("snapshot", None) ("rate", hz) ("stop", None)
    ("update", {field: value})  or  ("update", {"run": name, "changes": {field: value}})
    ("reset", hparams_dict|None)  the selected run gets the settings; every run restarts at step 0
    ("reset", {"run": name, "hparams": hparams_dict})   the same for the named run
    ("reset", {"runs": {name: hparams_dict, ...}})      a new set of runs (a lesson's), at step 0
    ("add_run", {"name": str|None, "from": name|None, "hparams": dict|None})
        "from" (default: the selected run) → a copy of that run at its step, with the live settings
        of "hparams" queued; "from": None → a fresh run built from "hparams" at step 0
    ("remove_run", name) ("rename_run", {"old": name, "new": name}) ("select", name)
    ("measure", [part, ...])   the heavy snapshot parts to measure from now on (regsim.snapshot.PARTS;
                               all until asked), for every run: the window sends what its visible
                               panel draws
    ("analyze", {"id": str, "run": str, "analysis": name, "params": {field: value}})
    ("cancel", id)
    ("explain", {"param": name, "index": i})   the parameter the update-code view explains
    ("measure_at", [step, ...]) train through these steps exactly and measure every run fresh at
                               each (a lesson's at_steps: judged on a value measured there)
    ("stop_at", step|None)     pause once the runs reach `step` (a lesson's budget: its claim is
                               judged there); "run" at or past it pauses again at once; None: off
Messages out are tuples (kind, payload):
    ("ready", {"device": name, "runs": [names], "selected": name})
    ("snapshot", Snapshot)        while the comparison holds one run (as a single-run engine did)
    ("snapshots", RunSnapshots)   with two or more: one message, every run after the same chunk
    ("runs", {"runs": [names], "selected": name})   the run set or the selection changed
    ("job", JobEvent)      an analysis job's lifecycle (regsim.analyses.jobs): started, progress,
                           partial, then result, failed or cancelled
    ("invalid", message)   a rejected command; nothing changed
    ("error", traceback)   the engine failed; it stops
    ("stopped", None)      always the last message
"""

from __future__ import annotations

import os
import queue
import sys
import time
import traceback
from typing import Any

from .hparams import HParams
from .memory import TRIM_EVERY_S, release_freed_memory

CHUNK_SECONDS = 0.008  # training time between command checks: bounds a slider's latency
SNAPSHOT_OVERHEAD = 0.02  # share of training time the heavy snapshot parts may take (≥ 0.97× speed)
# Analysis jobs run between training chunks in slices of this budget (plus at most one yield of the
# analysis): while a job runs it gets about two thirds of the loop and training a third, and the
# loop still sees commands and sends snapshots every ~25 ms. Measured (`python3 main.py bench
# --only jobs`, 2-64-64-2 moons net, a shared 2-core machine): the worst gap between snapshots
# while a 51×51 landscape computes was 56–96 ms, against 590–950 ms with the job in one piece.
JOB_SLICE_S = 0.016


def chunk_steps(chunk: int, dt: float, runs: int = 1) -> int:
    """The next chunk's steps per run, so each run's part of a chunk takes ~CHUNK_SECONDS (a
    lockstep chunk of N runs takes N × that: commands are seen within ~8 ms per run, 32 ms at
    four). Each run then takes the same steps per Trainer.step call as it would alone, with the
    same per-call cost (one host sync) and its weights hot in cache for as many steps: sizing
    the whole chunk to 8 ms instead gave each of 2 runs half the steps per call. `dt`: how long
    the last chunk of `chunk` steps per run took."""
    if dt <= 0:
        return chunk
    return max(1, min(10_000, int(chunk * CHUNK_SECONDS * max(1, runs) / dt + 0.5)))


def engine_main(commands: Any, out: Any, hparams: dict | HParams, device: str = "auto",
                snapshot_hz: float = 30.0, torch_threads: int = 0, parent_pid: int = 0) -> None:
    """Run until a "stop" command, the command queue breaking, or (with `parent_pid`) the parent
    process dying: an engine never outlives its window. Never raises."""
    try:
        import torch

        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        from .comparison import Comparison
        from .trainer import device_name

        h = hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)
        comparison = Comparison({"A": h}, device)
        out.put(("ready", {"device": device_name(comparison.trainer("A").device), "runs": ["A"],
                           "selected": "A"}))
        loop = _Loop(comparison, commands, out, snapshot_hz, parent_pid)
        loop.run()
        if loop.orphaned:
            # Nobody reads our queue any more: don't let its feeder thread block our exit on a
            # full pipe.
            for q in (out, commands):
                getattr(q, "cancel_join_thread", lambda: None)()
    except Exception:  # one error path: report, then stop
        out.put(("error", traceback.format_exc()))
    finally:
        out.put(("stopped", None))
    if parent_pid:
        _exit_child(out)


def _exit_child(out: Any) -> None:
    """End the engine's process now that "stopped" is on its way, skipping the interpreter's
    teardown. A normal exit finalizes torch and every module (measured: ~0.5–1.5 s of a 2-core
    machine's time, with a core busy, all of it after the window has asked us to stop); the engine
    owns no files, so nothing is lost. The output queue is flushed first (its feeder thread writes
    what was put), so the window still reads "stopped"; if nobody reads any more, that flush is
    bounded by the window's own stop timeout, after which it kills us."""
    for flush in ("close", "join_thread"):
        try:
            getattr(out, flush, lambda: None)()
        except (OSError, ValueError, AssertionError):
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)


class _Loop:
    def __init__(self, comparison: Any, commands: Any, out: Any, hz: float,
                 parent_pid: int = 0) -> None:
        from .analyses.jobs import JobRunner

        self.comparison = comparison
        self.selected = comparison.names[0]  # the run un-addressed commands go to
        self.commands = commands
        self.out = out
        self.period = 1.0 / hz
        self.jobs = JobRunner()
        self.running = False
        self.chunk = 1
        self.next_snapshot = 0.0
        self.stop = False
        self.parent_pid = parent_pid
        self.last_parent_check = time.monotonic()
        self.orphaned = False
        self.next_trim = time.perf_counter() + TRIM_EVERY_S
        self.parts: Any = None  # the snapshot parts to measure (None = all)
        self.stop_at: int | None = None  # pause when the runs reach this step (None: never)
        self.measure_at: tuple[int, ...] = ()  # steps a chunk lands on and measures fresh at

    @property
    def trainer(self) -> Any:
        """The selected run's Trainer."""
        return self.comparison.trainer(self.selected)

    def parent_gone(self) -> bool:
        """True once the process that started us has died (we were re-parented)."""
        if not self.parent_pid:
            return False
        now = time.monotonic()
        if now - self.last_parent_check < 0.25:
            return False
        self.last_parent_check = now
        return os.getppid() != self.parent_pid

    def run(self) -> None:
        self.send_snapshot()
        while not self.stop:
            if self.parent_gone():
                self.orphaned = True
                break
            self.drain(block=not self.running and not self.jobs.busy)
            if self.stop:
                break
            if self.running:
                self.train_chunk()
            if self.jobs.busy:
                self.send_jobs(self.jobs.run_slice(JOB_SLICE_S))
            now = time.perf_counter()
            if self.running and now >= self.next_snapshot:
                # Deadline-based, so chunk granularity does not drag the rate below `hz`: a
                # snapshot sent a chunk late does not push back the ones after it (only a stall
                # longer than a period resets the cadence).
                self.next_snapshot += self.period
                if self.next_snapshot <= now:
                    self.next_snapshot = now + self.period
                self.send_snapshot()
            if now >= self.next_trim:  # freed heap back to the OS: RSS stays flat over a lecture
                self.next_trim = now + TRIM_EVERY_S
                release_freed_memory()

    def drain(self, block: bool) -> None:
        """Handle every waiting command; when idle, wait briefly for one."""
        try:
            cmd = self.commands.get(timeout=0.1) if block else self.commands.get_nowait()
        except queue.Empty:
            return
        except (EOFError, OSError):  # the other side is gone
            self.stop = True
            return
        while True:
            self.handle(*cmd)
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return

    def handle(self, name: str, payload: Any) -> None:
        c = self.comparison
        try:
            if name == "stop":
                self.stop = True
            elif name == "run":
                c.resume()
                self.running = True
                self.set_status("running")
            elif name == "pause":
                self.running = False
                self.set_status("paused")
                self.send_snapshot()
            elif name == "step":
                self.running = False
                c.resume()
                c.step(int(payload or 1))
                self.set_status("paused")
                self.send_snapshot()
            elif name == "update":
                run, changes = self.addressed(payload, "changes")
                c.update(run, **changes)
                if not self.running:
                    self.send_snapshot()
            elif name == "reset":
                self.reset(payload)
            elif name in ("add_run", "remove_run", "rename_run", "select"):
                self.edit_runs(name, payload)
            elif name == "analyze":
                # The job analyses the run named in the payload ("": the selected run); its events
                # carry the name as given. Validation failures come back as a "failed" job event.
                job = payload if isinstance(payload, dict) else {}
                run = str(job.get("run") or "")
                view = c.trainer(run or self.selected).view
                self.send_jobs(self.jobs.submit(job.get("id"), run, job.get("analysis"),
                                                job.get("params"), view))
            elif name == "cancel":
                self.send_jobs(self.jobs.cancel(str(payload)))
            elif name == "snapshot":
                self.send_snapshot()
            elif name == "measure":
                from .snapshot import check_parts

                parts = check_parts(payload)
                if parts != self.parts:
                    self.parts = parts
                    self.send_snapshot()  # the panel just shown gets its parts now, not next frame
            elif name == "explain":  # the update-code view's parameter, for every run it fits
                spec = payload if isinstance(payload, dict) else {}
                for run, t in c.trainers.items():
                    try:
                        t.pick_parameter(str(spec.get("param", "")), spec.get("index"))
                    except ValueError:
                        if run == self.selected:
                            raise
                if not self.running:
                    self.send_snapshot()
            elif name == "stop_at":
                if payload is not None and (isinstance(payload, bool) or not isinstance(payload, int)
                                            or payload < 1):
                    raise ValueError(f"stop_at = {payload!r} must be a step ≥ 1 or None")
                self.stop_at = payload
            elif name == "measure_at":
                steps = list(payload or ())
                if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in steps):
                    raise ValueError(f"measure_at = {payload!r} must be a list of steps ≥ 1")
                self.measure_at = tuple(sorted(set(steps)))
            elif name == "rate":
                self.period = 1.0 / max(0.1, float(payload))
            else:
                self.out.put(("invalid", f"unknown engine command {name!r}"))
        except (ValueError, TypeError) as e:
            self.out.put(("invalid", str(e)))
            self.send_snapshot()

    # ------------------------------------------------------------------------------- runs
    def addressed(self, payload: Any, key: str) -> tuple[str, Any]:
        """(run, value) of a command that may name its run: {"run": name, key: value}, or the
        bare value for the selected run."""
        if isinstance(payload, dict) and key in payload and set(payload) <= {"run", key}:
            run = payload.get("run") or self.selected
            self.comparison.trainer(run)  # an unknown name: a ValueError naming the runs
            return run, payload[key]
        return self.selected, payload

    def set_status(self, status: str) -> None:
        """Every run's status, except a diverged run's (it waits for "run" to resume it)."""
        for t in self.comparison.trainers.values():
            if t.status != "diverged":
                t.status = status

    def reset(self, payload: Any) -> None:
        """Every run restarts at step 0 (lockstep from the start), with new settings for one run
        or a whole new set of runs. Invalid settings change nothing."""
        c = self.comparison
        if isinstance(payload, dict) and set(payload) == {"runs"}:
            runs = {str(n): HParams.from_dict(d or {}) for n, d in dict(payload["runs"]).items()}
            from .comparison import Comparison

            new = Comparison(runs, c.device)  # validated and built before the old one goes
            self.send_jobs(self.jobs.cancel_run(None, "the runs were replaced"))
            self.comparison = new
            self.selected = new.names[0]
            self.send_runs()
        else:
            run, hp = self.addressed(payload, "hparams")
            new_h = {run: HParams.from_dict(hp)} if hp else None
            self.send_jobs(self.jobs.cancel_run(None, "the run was reset"))
            c.reset(new_h)
        self.running = False
        self.set_status("paused")
        self.send_snapshot()

    def edit_runs(self, name: str, payload: Any) -> None:
        """add_run / remove_run / rename_run / select; then the new run set goes out."""
        c = self.comparison
        if name == "add_run":
            spec = payload if isinstance(payload, dict) else {}
            hp = spec.get("hparams")
            source = spec["from"] if "from" in spec else self.selected
            base = c.trainer(self.selected if source is None else source).hparams
            hparams = HParams.from_dict(hp, base=base) if hp else None
            added = c.add(spec.get("name"), hparams, source=source)
            t = c.trainer(added)
            t.status = "running" if self.running else "paused"
        elif name == "remove_run":
            run = str(payload)
            c.remove(run)
            self.send_jobs(self.jobs.cancel_run(run, "the run was removed"))
            if run == self.selected:
                self.send_jobs(self.jobs.cancel_run("", "the run was removed"))
                self.selected = c.names[0]
        elif name == "rename_run":
            spec = payload if isinstance(payload, dict) else {}
            old = spec.get("old")
            new = c.rename(old, spec.get("new"))
            if old == self.selected:
                self.selected = new
        else:
            c.trainer(payload)
            self.selected = payload
        self.send_runs()
        self.send_snapshot()

    def send_runs(self) -> None:
        self.out.put(("runs", {"runs": list(self.comparison.names), "selected": self.selected}))

    def train_chunk(self) -> None:
        c = self.comparison
        n = self.chunk if self.stop_at is None else min(self.chunk, self.stop_at - c.step_count)
        mark = next((m for m in self.measure_at if m > c.step_count), None)
        if mark is not None:  # nor passes a measure_at step: it is measured there, not near it
            n = min(n, mark - c.step_count)
        if n > 0:  # a chunk never passes stop_at: the runs stop exactly at the budget
            t0 = time.perf_counter()
            c.step(n)
            self.chunk = chunk_steps(n, time.perf_counter() - t0, len(c.trainers))
        if c.step_count in self.measure_at and c.step_count != self.stop_at:
            self.send_snapshot(fresh=True)  # (at stop_at the paused snapshot below is fresh)
        if self.stop_at is not None and c.step_count >= self.stop_at:
            self.running = False
            self.set_status("paused")
            self.send_snapshot()
        elif any(t.status == "diverged" for t in c.trainers.values()):
            # One run blew up: all stop, so the banner names it while the others wait in step.
            self.running = False
            self.set_status("paused")
            self.send_snapshot()

    def send_jobs(self, events: list) -> None:
        for event in events:
            self.out.put(("job", event))
            if event.kind in ("result", "failed", "cancelled"):
                release_freed_memory()  # a landscape's grid buffers are tens of MB

    def send_snapshot(self, fresh: bool = False) -> None:
        """`fresh`: every heavy part measured now (no overhead budget), as at a measure_at step."""
        from .runs import RunSnapshots

        snaps = self.comparison.snapshots(None if fresh else SNAPSHOT_OVERHEAD, parts=self.parts)
        if len(snaps) == 1:
            self.out.put(("snapshot", snaps[self.selected]))
        else:
            self.out.put(("snapshots", RunSnapshots(snaps, self.selected)))
