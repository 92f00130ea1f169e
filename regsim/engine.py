"""The engine: a message loop around a Trainer (commands in, snapshots out).

It runs unchanged in a thread (queue.Queue) or in a child process (multiprocessing queues): a child
process keeps the training loop from sharing the GUI's interpreter lock, which on a 2-core machine
was the difference between 0.28× and ~1.0× of the bare loop's speed.

Commands are tuples (name, payload):
    ("run", None) ("pause", None) ("step", n) ("update", {field: value}) ("reset", hparams_dict|None)
    ("snapshot", None) ("rate", hz) ("stop", None)
    ("analyze", {"id": str, "run": str, "analysis": name, "params": {field: value}})
    ("cancel", id)
Messages out are tuples (kind, payload):
    ("ready", {"device": name}) ("snapshot", Snapshot)
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
# loop still sees commands and sends snapshots every ~25 ms. Measured (`python3 main.py bench`,
# row "max gap between snapshots while a 51×51 landscape computes"): see regsim/bench.py.
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
        from .trainer import Trainer, device_name

        h = hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)
        trainer = Trainer(h, device)
        out.put(("ready", {"device": device_name(trainer.device)}))
        loop = _Loop(trainer, commands, out, snapshot_hz, parent_pid)
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
    def __init__(self, trainer: Any, commands: Any, out: Any, hz: float, parent_pid: int = 0) -> None:
        from .analyses.jobs import JobRunner

        self.trainer = trainer
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
        t = self.trainer
        try:
            if name == "stop":
                self.stop = True
            elif name == "run":
                t.resume()
                self.running = t.status != "diverged"
                t.status = "running"
            elif name == "pause":
                self.running = False
                if t.status != "diverged":
                    t.status = "paused"
                self.send_snapshot()
            elif name == "step":
                self.running = False
                t.resume()
                t.step(int(payload or 1))
                if t.status != "diverged":
                    t.status = "paused"
                self.send_snapshot()
            elif name == "update":
                t.update(**payload)
                if not self.running:
                    self.send_snapshot()
            elif name == "reset":
                new = HParams.from_dict(payload) if payload else None
                self.send_jobs(self.jobs.cancel_run(None, "the run was reset"))
                t.reset(new)
                self.running = False
                t.status = "paused"
                self.send_snapshot()
            elif name == "analyze":
                # One trainer for now: the payload's "run" is carried into the events, not used
                # to pick a trainer. Validation failures come back as a "failed" job event.
                job = payload if isinstance(payload, dict) else {}
                self.send_jobs(self.jobs.submit(job.get("id"), job.get("run", ""),
                                                job.get("analysis"), job.get("params"), t.view))
            elif name == "cancel":
                self.send_jobs(self.jobs.cancel(str(payload)))
            elif name == "snapshot":
                self.send_snapshot()
            elif name == "rate":
                self.period = 1.0 / max(0.1, float(payload))
            else:
                self.out.put(("invalid", f"unknown engine command {name!r}"))
        except (ValueError, TypeError) as e:
            self.out.put(("invalid", str(e)))
            self.send_snapshot()

    def train_chunk(self) -> None:
        t0 = time.perf_counter()
        self.trainer.step(self.chunk)
        self.chunk = chunk_steps(self.chunk, time.perf_counter() - t0)
        if self.trainer.status == "diverged":
            self.running = False
            self.send_snapshot()

    def send_jobs(self, events: list) -> None:
        for event in events:
            self.out.put(("job", event))
            if event.kind in ("result", "failed", "cancelled"):
                release_freed_memory()  # a landscape's grid buffers are tens of MB

    def send_snapshot(self) -> None:
        self.out.put(("snapshot", self.trainer.snapshot(SNAPSHOT_OVERHEAD)))
