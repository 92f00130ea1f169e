"""Analyses as background jobs: a Qt-free runner that advances analysis generators in time slices.

The engine's loop calls `run_slice(budget_s)` between training chunks; the runner advances the running
job's generator (regsim.analyses.base: `compute` yields Progress every few ms) until the budget is
spent, and returns what happened as `JobEvent`s for the engine to send. So a 51×51 loss surface no
longer stops training and snapshots for its whole computation (0.35–0.8 s on a CPU): it shares the
loop with them.

- Jobs have ids (the caller's), run one at a time, first come first served.
- A newer request of the same analysis for the same run supersedes the older: the older is cancelled
  (its "cancelled" event is sent), queued or running.
- `cancel(id)` closes the generator: nothing of the job survives (an analysis works on the RunView,
  a copy, so there is nothing to undo on the run), no result is sent.
- An exception inside an analysis becomes a "failed" event with its message; it never escapes into
  the engine.

Events per job: "started", then any number of "progress" (at most one per slice, the newest) and
"partial" (each partial result the analysis offers, e.g. the landscape's coarse preview), then exactly
one of "result", "failed", "cancelled". A request that fails validation gets "failed" at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import ANALYSES
from .base import AnalysisSpec, NotApplicable, Progress, RunView

DEFAULT_SLICE_S = 0.015  # a slice's budget; the engine passes its own (regsim.engine.JOB_SLICE_S)

KINDS = ("started", "progress", "partial", "result", "failed", "cancelled")


@dataclass(frozen=True)
class JobEvent:
    """One step in a job's life, as the engine sends it: ("job", JobEvent). Numpy only, picklable."""

    id: str  # the job's id, as submitted
    run: str  # the run it analyses ("" while the engine hosts one run)
    analysis: str  # the registry name, e.g. "landscape"
    kind: str  # one of KINDS
    done: int = 0  # progress, in the analysis's units (e.g. grid points)
    total: int = 0  # units in all (0 until the analysis has said)
    result: Any | None = None  # "partial": a Result worth showing already; "result": the Result
    message: str = ""  # "failed": what went wrong; "cancelled": why (e.g. "superseded by j7")


class _Job:
    def __init__(self, job_id: str, run: str, spec: AnalysisSpec, request: Any,
                 view: Callable[[], RunView]) -> None:
        self.id = job_id
        self.run = run
        self.spec = spec
        self.request = request
        self.view = view
        self.gen: Any = None  # the compute generator, once started
        self.progress: Progress | None = None  # the newest progress the analysis yielded
        self.sent: tuple[int, int] = (-1, -1)  # (done, total) of the last event sent for it

    def event(self, kind: str, done: int = 0, total: int = 0, result: Any = None,
              message: str = "") -> JobEvent:
        return JobEvent(self.id, self.run, self.spec.name, kind, done, total, result, message)


class JobRunner:
    """Runs analysis jobs one slice at a time (see the module docstring). Not thread-safe: one
    thread (the engine's) submits, cancels and runs slices."""

    def __init__(self, registry: Mapping[str, AnalysisSpec] | None = None) -> None:
        # Looked up at each submit, so an analysis registered later (a test's) is found.
        self.registry = ANALYSES if registry is None else registry
        self._jobs: list[_Job] = []  # the running job first, then the queue
        self._counter = 0

    @property
    def busy(self) -> bool:
        """True while a job is running or queued."""
        return bool(self._jobs)

    def job_ids(self) -> list[str]:
        return [j.id for j in self._jobs]

    def submit(self, job_id: str | None, run: str, analysis: str, params: Mapping[str, Any] | None,
               view: Callable[[], RunView]) -> list[JobEvent]:
        """Queue a job; `view()` is called when it starts (so it analyses the run as it is then).

        Returns the events this causes at once: "failed" for a bad request (unknown analysis, bad
        settings: the message names the field and its range), "cancelled" for the job it
        supersedes. Never raises."""
        self._counter += 1
        job_id = str(job_id) if job_id not in (None, "") else f"job{self._counter}"
        run = str(run or "")
        spec = self.registry.get(analysis) if isinstance(analysis, str) else None
        if spec is None:
            known = ", ".join(self.registry)
            return [JobEvent(job_id, run, str(analysis), "failed",
                             message=f"analysis = {analysis!r} is not known; choose one of: {known}")]
        try:
            request = spec.request(params or {})
        except (ValueError, TypeError) as e:
            return [JobEvent(job_id, run, spec.name, "failed", message=str(e))]
        events = []
        for old in [j for j in self._jobs if (j.run, j.spec.name) == (run, spec.name) or j.id == job_id]:
            events += self._drop(old, f"superseded by {job_id}")
        self._jobs.append(_Job(job_id, run, spec, request, view))
        return events

    def cancel(self, job_id: str) -> list[JobEvent]:
        """Cancel a job, queued or running; [] if there is no such job (it may have just ended)."""
        for job in self._jobs:
            if job.id == str(job_id):
                return self._drop(job, "cancelled")
        return []

    def cancel_run(self, run: str | None = None, why: str = "the run was reset") -> list[JobEvent]:
        """Cancel every job of `run` (None: of all runs), e.g. when its weights are replaced."""
        events = []
        for job in [j for j in self._jobs if run is None or j.run == run]:
            events += self._drop(job, why)
        return events

    def _drop(self, job: _Job, why: str) -> list[JobEvent]:
        self._jobs.remove(job)
        if job.gen is not None:
            try:
                job.gen.close()  # GeneratorExit inside compute: its buffers are freed
            except Exception:  # a misbehaving analysis must not take the engine down
                pass
        return [job.event("cancelled", message=why)]

    def run_slice(self, budget_s: float = DEFAULT_SLICE_S) -> list[JobEvent]:
        """Advance jobs until `budget_s` seconds are used (checked between two yields of the
        analysis, so one yield's work may overrun it a little); returns the events in order."""
        events: list[JobEvent] = []
        deadline = time.perf_counter() + budget_s
        while self._jobs:
            job = self._jobs[0]
            try:
                if job.gen is None:
                    events.append(job.event("started"))
                    gen = job.spec.compute(job.view(), job.request)
                    if not hasattr(gen, "send"):  # a plain function: its value is the result
                        self._jobs.pop(0)
                        events.append(job.event("result", result=gen))
                        continue
                    job.gen = gen
                p = next(job.gen)
            except StopIteration as stop:
                self._jobs.pop(0)
                total = job.progress.total if job.progress is not None else 0
                events.append(job.event("result", total, total, result=stop.value))
                continue
            except Exception as e:  # reported as "failed", never raised
                self._jobs.pop(0)
                if job.gen is not None:
                    job.gen.close()
                message = str(e) if isinstance(e, NotApplicable) else (
                    f"{job.spec.title} failed: {type(e).__name__}: {e}")
                events.append(job.event("failed", message=message))
                continue
            if isinstance(p, Progress):
                job.progress = p
                if p.partial is not None:
                    events.append(job.event("partial", p.done, p.total, result=p.partial))
                    job.sent = (p.done, p.total)
            if time.perf_counter() >= deadline:
                break
        if self._jobs and self._jobs[0].progress is not None:
            job = self._jobs[0]
            now = (job.progress.done, job.progress.total)
            if now != job.sent:  # the newest progress of the slice, once
                events.append(job.event("progress", *now))
                job.sent = now
        return events
