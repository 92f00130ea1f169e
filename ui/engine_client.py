"""The bridge between the window and the engine: commands out, snapshots back, on the GUI's clock.

The engine (regsim.engine.engine_main) runs in a child process by default: measured on a 2-core
machine, a training thread inside the GUI process trained at 0.28× the bare loop's speed and made the
UI lag 142 ms at p99 (the two share one interpreter lock), while a child process trained at ~1.0×
with the GUI holding 30 fps. A thread mode remains for tests and for platforms where spawning is
costly. Either way no QWidget is ever touched off the GUI thread: the engine's queue is drained here,
on the GUI thread, and what is found is re-emitted as Qt signals. A child process's queue is watched
with a QSocketNotifier on its pipe, so a snapshot is handled the moment it arrives (a 10 ms polling
timer delayed it by 5 ms on average and, beating against the frame clock, dropped ~7% of frames); a
thread's queue.Queue has no file descriptor and is polled.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

from regsim.engine import engine_main
from regsim.hparams import HParams
from regsim.runs import RunSnapshots
from regsim.threads import engine_threads  # the one thread policy, shared with the CLI

POLL_MS = 10  # how often the GUI drains a thread engine's queue (a process's pipe is watched)
MAX_MESSAGES_PER_POLL = 200  # bound the work per poll so a flood cannot freeze the GUI
# A child's pipe and sentinel are file descriptors QSocketNotifier can watch, except on Windows
# (handles there): then the queue is polled every POLL_MS as a thread's is.
WATCH_PIPES = sys.platform != "win32"
# How long close() waits for the engine to stop by itself before terminating it. With the 0.5 s of
# terminate and kill after it and the window's own teardown, closing stays within 2 s.
STOP_TIMEOUT = 0.8


class EngineClient(QObject):
    ready = Signal(dict)  # {"device": name, "runs": [names], "selected": name}
    snapshot = Signal(object)  # regsim.snapshot.Snapshot of the selected run
    # regsim.runs.RunSnapshots: every run's snapshot of one tick (also for a single run), emitted
    # just before `snapshot`
    snapshots = Signal(object)
    runs_changed = Signal(dict)  # {"runs": [names], "selected": name}: the run set changed
    job = Signal(object)  # regsim.analyses.jobs.JobEvent: an analysis job's progress or result
    invalid = Signal(str)  # a rejected command: the message names the field and range
    died = Signal(str)  # the engine failed or its process vanished; restart() brings it back
    stopped = Signal()

    def __init__(self, mode: str = "process", device: str = "auto", snapshot_hz: float = 30.0,
                 torch_threads: int = 0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if mode not in ("process", "thread"):
            raise ValueError(f"mode = {mode!r} is not allowed; choose one of: process, thread")
        self.mode = mode
        self.device = device
        self.snapshot_hz = snapshot_hz
        self.torch_threads = torch_threads
        self.hparams: HParams | None = None
        self._worker: Any = None  # mp.Process or threading.Thread
        self._commands: Any = None
        self._out: Any = None
        self._alive = False
        self._closing = False
        self._started_at = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._notifiers: list[QSocketNotifier] = []  # process mode: the queue's pipe and the sentinel
        self._job_ids = itertools.count(1)
        self.run_names: list[str] = ["A"]  # the engine's runs, in order (its "runs" messages)
        self.selected = "A"  # the run un-addressed commands edit

    # ------------------------------------------------------------------------------- lifecycle
    def start(self, hparams: HParams) -> None:
        """Start an engine for `hparams` (stopping any previous one first)."""
        if self._worker is not None:
            self.close()
        self.hparams = hparams
        self.run_names, self.selected = ["A"], "A"  # a new engine hosts one run, "A"
        self._closing = False
        args = (hparams.to_dict(), self.device, self.snapshot_hz, engine_threads(self.torch_threads))
        if self.mode == "process":
            args = (*args, os.getpid())  # the child exits by itself if this process dies
            ctx = mp.get_context("spawn")  # never fork a process that runs Qt
            self._commands, self._out = ctx.Queue(), ctx.Queue()
            self._worker = ctx.Process(target=engine_main, args=(self._commands, self._out, *args),
                                       name="regsim-engine", daemon=True)
        else:
            self._commands, self._out = queue.Queue(), queue.Queue()
            self._worker = threading.Thread(target=engine_main,
                                            args=(self._commands, self._out, *args),
                                            name="regsim-engine", daemon=True)
        self._worker.start()
        self._alive = True
        self._started_at = time.monotonic()
        fds = self._watchable_fds()
        if fds:
            for fd in fds:
                notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
                notifier.activated.connect(self._poll)
                self._notifiers.append(notifier)
        else:
            self._timer.start()

    def _watchable_fds(self) -> list[int]:
        """File descriptors that become readable when the engine has something for us: the output
        pipe (a message) and the process sentinel (it ended). Empty in thread mode, on Windows
        (there both are handles, which QSocketNotifier cannot watch), or if this Python's
        multiprocessing.Queue hides its pipe; then a timer polls instead."""
        if self.mode != "process" or not WATCH_PIPES:
            return []
        try:
            return [self._out._reader.fileno(), self._worker.sentinel]
        except (AttributeError, OSError, ValueError):
            return []

    def _stop_watching(self) -> None:
        self._timer.stop()
        for notifier in self._notifiers:
            notifier.setEnabled(False)
            notifier.deleteLater()
        self._notifiers = []

    def restart(self) -> None:
        self.start(self.hparams or HParams())

    @property
    def alive(self) -> bool:
        return self._alive

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the engine within timeout + 0.5 s at most: ask politely, then terminate, then kill.
        Idempotent.

        A healthy engine sees "stop" within one training chunk (~8 ms) and its process exits
        without the interpreter's teardown (regsim.engine._exit_child): measured 0.05–0.2 s with
        a core busy. One busy inside a long command (a full loss surface) or hung does not answer;
        it is not waited for beyond `timeout`: the window's close must end within 2 s."""
        self._closing = True
        self._stop_watching()
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            self._commands.put(("stop", None))
        except (OSError, ValueError):
            pass
        try:
            deadline = time.monotonic() + timeout
            while worker.is_alive() and time.monotonic() < deadline:
                self._discard_output()  # keep the pipe flowing so the engine can exit
                worker.join(0.02)
            if self.mode == "process" and worker.is_alive():
                worker.terminate()
                worker.join(0.3)
                if worker.is_alive():
                    worker.kill()
                    worker.join(0.2)
        finally:
            if self.mode == "process":
                for q in (self._commands, self._out):
                    q.cancel_join_thread()
                    q.close()
            self._alive = False

    def _discard_output(self) -> None:
        try:
            while True:
                self._out.get_nowait()
        except (queue.Empty, OSError, ValueError, EOFError):
            pass

    # ------------------------------------------------------------------------------- commands
    def send(self, name: str, payload: Any = None) -> None:
        if self._worker is None or not self._alive:
            return
        try:
            self._commands.put((name, payload))
        except (OSError, ValueError) as e:  # the queue is closed: the engine is gone
            self._report_death(f"cannot reach the engine: {e}")

    def run(self) -> None:
        self.send("run")

    def pause(self) -> None:
        self.send("pause")

    def step(self, n: int = 1) -> None:
        self.send("step", int(n))

    def update(self, run: str | None = None, **changes: Any) -> None:
        """Live setting changes for run `run` (None: the selected run), at its next step."""
        self.send("update", changes if run is None else {"run": run, "changes": changes})

    def reset(self, hparams: HParams | None = None, run: str | None = None) -> None:
        """Every run restarts at step 0; `hparams` (if given) for run `run` (None: selected)."""
        if hparams is not None and (run is None or run == self.selected):
            self.hparams = hparams
        data = hparams.to_dict() if hparams is not None else None
        self.send("reset", data if run is None else {"run": run, "hparams": data})

    def reset_runs(self, runs: dict[str, HParams]) -> None:
        """Replace the runs by these (a lesson's comparison), all at step 0."""
        self.send("reset", {"runs": {name: h.to_dict() for name, h in runs.items()}})

    def add_run(self, name: str | None = None, source: str | None = "",
                hparams: HParams | None = None) -> None:
        """Add a run: a copy of `source` ("" = the selected run) at its current step, or with
        `source=None` a fresh run from `hparams` at step 0 (see regsim.engine)."""
        spec: dict[str, Any] = {"name": name}
        if source != "":
            spec["from"] = source
        if hparams is not None:
            spec["hparams"] = hparams.to_dict()
        self.send("add_run", spec)

    def remove_run(self, name: str) -> None:
        self.send("remove_run", name)

    def rename_run(self, old: str, new: str) -> None:
        self.send("rename_run", {"old": old, "new": new})

    def select_run(self, name: str) -> None:
        self.send("select", name)

    def analyze(self, analysis: str, params: dict | None = None, job_id: str | None = None,
                run: str = "") -> str:
        """Ask the engine to run analysis `analysis` (regsim.analyses) in the background; returns
        the job id its `job` events carry. A newer request of the same analysis for the same run
        supersedes this one."""
        job_id = job_id or f"job{next(self._job_ids)}"
        self.send("analyze", {"id": job_id, "run": run, "analysis": analysis,
                              "params": dict(params or {})})
        return job_id

    def cancel_job(self, job_id: str) -> None:
        self.send("cancel", job_id)

    # ------------------------------------------------------------------------------- messages
    def _poll(self) -> None:
        for _ in range(MAX_MESSAGES_PER_POLL):
            try:
                kind, payload = self._out.get_nowait()
            except queue.Empty:
                break
            except (OSError, ValueError, EOFError):
                self._report_death("the engine's queue broke")
                return
            self._dispatch(kind, payload)
        if (self._worker is not None and self._alive and not self._closing
                and not self._worker.is_alive()):
            # Drained, yet the worker is gone without saying "stopped": it crashed or was killed.
            code = getattr(self._worker, "exitcode", None)
            self._report_death(f"the engine process ended unexpectedly (exit code {code})")

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "snapshot":  # a comparison of one
            self._emit_snapshots(RunSnapshots({self.run_names[0]: payload}, self.run_names[0]))
        elif kind == "snapshots":
            self._emit_snapshots(payload)
        elif kind == "runs":
            self.run_names, self.selected = list(payload["runs"]), payload["selected"]
            self.runs_changed.emit(payload)
        elif kind == "job":
            self.job.emit(payload)
        elif kind == "ready":
            self.run_names = list(payload.get("runs", ["A"]))
            self.selected = payload.get("selected", self.run_names[0])
            self.ready.emit(payload)
        elif kind == "invalid":
            self.invalid.emit(str(payload))
        elif kind == "error":
            self._report_death(str(payload).strip().splitlines()[-1] if payload else "error")
        elif kind == "stopped":
            self._alive = False
            self._stop_watching()
            self.stopped.emit()

    def _emit_snapshots(self, runs: RunSnapshots) -> None:
        if set(runs.runs) != set(self.run_names) or runs.selected != self.selected:
            # A snapshot sent before a "runs" message we have not read yet cannot happen (the
            # engine sends "runs" first); one naming other runs is stale: trust what it says.
            self.run_names, self.selected = list(runs.runs), runs.selected
        current = runs.current
        self.hparams = current.hparams
        self.snapshots.emit(runs)
        self.snapshot.emit(current)

    def _report_death(self, message: str) -> None:
        if self._closing:
            return
        self._alive = False
        self._stop_watching()
        self.died.emit(message)
